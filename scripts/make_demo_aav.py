"""Write the demo's SYNTHETIC attraction areas (AAV 2020 look-alike, issue 15).

INSEE's AAV file cannot be shipped from ``../shared`` and no public package
carries it, so the demo gets a look-alike made from its own inputs: the real
communes of ``data/demo/COMMUNE.shp`` and the SYNTHETIC RP 2022 flows of
``data/demo/demo-synthetic-base-flux-2022.zip``, by a simplified version of
INSEE's method (INSEE Première 1827; docs/sources-evidence.md §9). **Every area
is SYNTHETIC**: it says where the synthetic commuters go, not what INSEE
publishes for Bretagne.

Method
------
1. Jobs by commune: the synthetic workers whose work place is the commune.
2. Pole communes: at least ``--pole-min-jobs`` jobs (1,500, INSEE's threshold
   for a pole) and at least ``--pole-min-ratio`` jobs per employed resident.
   Touching pole communes make one pole; its commune with most jobs is the
   commune-centre (CATEAAV2020 11), the others 12. (At 0.9 job per resident,
   suburbs chain the poles of the Loire estuary into one; 1.0 keeps them apart.)
3. Secondary poles: a pole whose employed residents send at least 15 % of
   themselves to a pole with more jobs joins that pole's area (category 13).
4. Crown: every other commune sending at least 15 % of its employed residents
   to the main pole of an area (its 11 and 12 communes together) is in that
   area's crown (20); to several, the one it sends most to. INSEE's later
   steps (enclaves filled, detached communes removed) are left out.
5. The rest is outside any area (``000``, category 30).

Areas are coded ``S01``, ``S02``... by decreasing population (``S`` for
synthetic: INSEE's codes are digits) and named "Aire synthétique de <centre>".

Files (``--output``, default ``data/demo/aav/``)
-----------------------------------------------
- ``demo-synthetic-aav2020-2025.zip``: one CSV in the columns of INSEE's
  ``Composition_communale`` sheet (``CODGEO, LIBGEO, AAV2020, LIBAAV2020,
  CATEAAV2020, DEP, REG``), the demo's communes in the geography of 2025.
- ``README.md``: what it is, how it was made, the areas.

The script also writes a short section at the end of ``data/demo/README.md``
(between two markers) pointing to it; rerun it after ``scripts/make_demo.py``,
which rewrites that README and the flows the areas come from.

Usage::

    python scripts/make_demo_aav.py          # a few seconds
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from observatory.readers.base_flux import read_base_flux  # noqa: E402

DEMO = ROOT / "data" / "demo"
COMMUNES = DEMO / "COMMUNE.shp"
FLOWS = DEMO / "demo-synthetic-base-flux-2022.zip"
OUTPUT = DEMO / "aav"
FILE_NAME = "demo-synthetic-aav2020-2025.zip"
MEMBER = "demo-synthetic-aav2020-2025.csv"
MARK_START = "<!-- demo AAV: written by scripts/make_demo_aav.py -->"
MARK_END = "<!-- end of demo AAV -->"

#: INSEE's share of employed residents working in the pole (crown, secondary pole).
CROWN_MIN_SHARE = 0.15


def commune_table(communes: gpd.GeoDataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """Return code, name, DEP, REG, population, employed residents and jobs by commune."""
    out = pd.DataFrame(
        {
            "code": communes["INSEE_COM"].astype(str),
            "name": communes["NOM"].astype(str),
            "dep": communes["INSEE_DEP"].astype(str),
            "reg": communes["INSEE_REG"].astype(str),
            "population": communes["POPULATION"].astype(float),
        }
    )
    residents = flows.groupby("origin_commune")["workers"].sum()
    jobs = flows.groupby("destination_commune")["workers"].sum()
    out["residents"] = out["code"].map(residents).fillna(0.0)
    out["jobs"] = out["code"].map(jobs).fillna(0.0)
    return out


def pole_clusters(
    communes: gpd.GeoDataFrame, table: pd.DataFrame, min_jobs: float, min_ratio: float
) -> pd.Series:
    """Give each pole a number (touching pole communes together); -1 outside any pole."""
    candidate = (table["jobs"] >= min_jobs) & (
        table["jobs"] >= min_ratio * table["residents"].clip(lower=1)
    )
    index = np.flatnonzero(candidate.to_numpy())
    shapes = communes.geometry.iloc[index].buffer(1.0).reset_index(drop=True)
    frame = gpd.GeoDataFrame(geometry=shapes, crs=communes.crs)
    pairs = gpd.sjoin(frame, frame, predicate="intersects")
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(pairs.index, pairs["index_right"], strict=True):
        parent[root(int(a))] = root(int(b))
    cluster = np.full(len(table), -1)
    roots = [root(i) for i in range(len(index))]
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    cluster[index] = [numbers[r] for r in roots]
    return pd.Series(cluster, index=table.index)


def shares_to(
    flows: pd.DataFrame, table: pd.DataFrame, group: pd.Series
) -> pd.DataFrame:
    """Share of each commune's employed residents working in each group (commune -> group)."""
    by_code = pd.Series(group.to_numpy(), index=table["code"])
    work = flows.assign(group=flows["destination_commune"].map(by_code))
    work = work[work["group"].notna() & (work["group"] >= 0)]
    sums = (
        work.groupby(["origin_commune", "group"])["workers"].sum().unstack(fill_value=0)
    )
    residents = table.set_index("code")["residents"]
    return sums.div(residents.reindex(sums.index).where(lambda r: r > 0), axis=0)


def secondary_poles(
    flows: pd.DataFrame, table: pd.DataFrame, cluster: pd.Series
) -> dict[int, int]:
    """Return the main pole of each pole: itself, or the larger pole it sends 15 % to.

    Poles are taken by decreasing jobs, so a larger pole's main pole is known
    when a smaller one joins it.
    """
    pole_of = pd.Series(cluster.to_numpy(), index=table["code"])
    origin = flows["origin_commune"].map(pole_of).fillna(-1).astype(int)
    destination = flows["destination_commune"].map(pole_of).fillna(-1).astype(int)
    keep = (origin >= 0) & (destination >= 0) & (origin != destination)
    sent = flows[keep].groupby([origin[keep], destination[keep]])["workers"].sum()
    residents = table["residents"].groupby(cluster).sum()
    jobs = table["jobs"].groupby(cluster).sum().drop(-1, errors="ignore")
    main: dict[int, int] = {}
    for pole in jobs.sort_values(ascending=False, kind="stable").index:
        main[pole] = pole
        larger = [q for q in main if q != pole and jobs[q] > jobs[pole]]
        share = {q: sent.get((pole, q), 0.0) / residents[pole] for q in larger}
        best = max(share, key=lambda q: share[q], default=None)
        if best is not None and share[best] >= CROWN_MIN_SHARE:
            main[pole] = main[best]
    return main


def attraction_areas(
    communes: gpd.GeoDataFrame,
    table: pd.DataFrame,
    flows: pd.DataFrame,
    args: argparse.Namespace,
) -> pd.DataFrame:
    """Return the area (a main pole's number, -1 outside) and category of every commune."""
    cluster = pole_clusters(communes, table, args.pole_min_jobs, args.pole_min_ratio)
    main = secondary_poles(flows, table, cluster)
    area = cluster.map(lambda c: main.get(c, -1))
    category = pd.Series("30", index=table.index)
    for pole in set(main.values()):
        members = cluster[cluster == pole].index
        category[members] = "12"
        category[table.loc[members, "jobs"].idxmax()] = "11"
    category[(cluster >= 0) & (area != cluster)] = "13"
    # Crowns: the share of each other commune's residents working in a main pole.
    main_only = cluster.where(cluster.map(lambda c: main.get(c) == c), -1)
    shares = shares_to(flows, table, main_only)
    top = table["code"].map(shares.max(axis=1)).fillna(0.0)
    best = table["code"].map(shares.idxmax(axis=1))
    crown = (cluster < 0) & (top >= CROWN_MIN_SHARE)
    area[crown] = best[crown].astype(int)
    category[crown] = "20"
    return pd.DataFrame({"area": area, "category": category})


def _of(name: str) -> str:
    # "de Brest", "d'Angers" (French elision before a vowel).
    return f"d'{name}" if name[:1].upper() in "AEIOUYÉÈÎ" else f"de {name}"


def label_areas(table: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """Code and name the areas: ``S01``... by decreasing population; ``000`` outside."""
    inside = areas["area"] >= 0
    population = (
        table.loc[inside, "population"].groupby(areas.loc[inside, "area"]).sum()
    )
    order = population.sort_values(ascending=False, kind="stable").index
    codes = {a: f"S{n:02d}" for n, a in enumerate(order, start=1)}
    centre = table.loc[areas["category"] == "11"].set_index(
        areas.loc[areas["category"] == "11", "area"]
    )["name"]
    names = {a: f"Aire synthétique {_of(centre[a])}" for a in order}
    return pd.DataFrame(
        {
            "CODGEO": table["code"],
            "LIBGEO": table["name"],
            "AAV2020": areas["area"].map(lambda a: codes.get(a, "000")),
            "LIBAAV2020": areas["area"].map(
                lambda a: names.get(a, "Commune hors attraction des villes")
            ),
            "CATEAAV2020": areas["category"],
            "DEP": table["dep"],
            "REG": table["reg"],
        }
    ).sort_values("CODGEO", ignore_index=True)


def write_zip(rows: pd.DataFrame, path: Path) -> int:
    """Write the CSV (``;``-separated, UTF-8) in a zip with a fixed date; return its size."""
    text = rows.to_csv(sep=";", index=False, lineterminator="\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(MEMBER, date_time=(2025, 1, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, text.encode("utf-8"))
    path.write_bytes(buffer.getvalue())
    return path.stat().st_size


def summary_rows(rows: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Markdown rows of the areas: code, name, communes by category, population."""
    merged = rows.merge(
        table[["code", "population"]], left_on="CODGEO", right_on="code"
    )
    lines = []
    for code, part in merged.groupby("AAV2020", sort=True):
        count = part["CATEAAV2020"].value_counts()
        lines.append(
            f"| `{code}` | {part['LIBAAV2020'].iloc[0]} | "
            + " | ".join(
                str(int(count.get(c, 0))) for c in ("11", "12", "13", "20", "30")
            )
            + f" | {part['population'].sum():,.0f} |"
        )
    return lines


def readme(
    rows: pd.DataFrame, table: pd.DataFrame, size: int, args: argparse.Namespace
) -> str:
    """Return the README written beside the file."""
    return "\n".join(
        [
            "# Demo attraction areas (AAV 2020 look-alike): SYNTHETIC",
            "",
            "Made by `python scripts/make_demo_aav.py` from the demo's real communes and its",
            "**SYNTHETIC** RP 2022 flows, by a simplified version of INSEE's method (the",
            "script's docstring). **Every area is SYNTHETIC**: it follows the synthetic",
            "commuters, not INSEE's zoning of Bretagne. Do not edit by hand: rerun the script",
            "(after `scripts/make_demo.py`, whose flows it reads).",
            "",
            f"- `{FILE_NAME}` ({size:,} bytes): one CSV `{MEMBER}` in the columns of INSEE's",
            "  `Composition_communale` sheet (`CODGEO;LIBGEO;AAV2020;LIBAAV2020;CATEAAV2020;DEP;REG`),",
            f"  {len(rows):,} communes in the geography of 1 January 2025, `;`-separated, UTF-8.",
            f"- Poles: communes with at least {args.pole_min_jobs:,.0f} jobs and "
            f"{args.pole_min_ratio:g} job per employed resident,",
            "  touching ones together; crowns and secondary poles at 15 % of the employed",
            "  residents, as INSEE's rule. Areas coded `S01`... (`S`: synthetic; INSEE's codes",
            "  are digits), `000` outside any area.",
            "",
            "| AAV2020 | LIBAAV2020 | 11 | 12 | 13 | 20 | 30 | population |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *summary_rows(rows, table),
            "",
            'In `configs/demo.toml`: `aav = { path = "../data/demo/aav/'
            f'{FILE_NAME}", geography = 2025 }}`.',
            "",
        ]
    )


def demo_readme_section(size: int) -> str:
    """Return the section of ``data/demo/README.md`` naming the synthetic AAV."""
    return "\n".join(
        [
            MARK_START,
            "## Synthetic attraction areas (NOT INSEE data)",
            "",
            f"`aav/{FILE_NAME}` ({size:,} bytes) is a **SYNTHETIC** look-alike of INSEE's",
            "attraction areas of cities (AAV 2020), drawn from the synthetic RP 2022 flows",
            "by `scripts/make_demo_aav.py` (method and areas: `aav/README.md`). It gives",
            "the AAV columns of `epci_indicators` and `metropoles` in the demo.",
            MARK_END,
            "",
        ]
    )


def update_demo_readme(path: Path, section: str) -> None:
    """Put ``section`` at the end of the demo README, replacing an earlier one."""
    text = path.read_text(encoding="utf-8")
    if MARK_START in text:
        before, _, rest = text.partition(MARK_START)
        _, _, after = rest.partition(MARK_END)
        text = before.rstrip("\n") + "\n\n" + section + after.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Write the demo's synthetic AAV, its README and the demo README's section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communes", type=Path, default=COMMUNES)
    parser.add_argument("--flows", type=Path, default=FLOWS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--pole-min-jobs", type=float, default=1500.0)
    parser.add_argument("--pole-min-ratio", type=float, default=1.0)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    communes = gpd.read_file(args.communes).reset_index(drop=True)
    flows = read_base_flux(args.flows).table
    table = commune_table(communes, flows)
    rows = label_areas(table, attraction_areas(communes, table, flows, args))
    size = write_zip(rows, args.output / FILE_NAME)
    (args.output / "README.md").write_text(
        readme(rows, table, size, args), encoding="utf-8"
    )
    if args.output.resolve() == OUTPUT.resolve():
        update_demo_readme(DEMO / "README.md", demo_readme_section(size))
    sys.stdout.write(rows["CATEAAV2020"].value_counts().sort_index().to_string() + "\n")
    sys.stdout.write(f"{rows['AAV2020'].nunique() - 1} areas, {size:,} bytes\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
