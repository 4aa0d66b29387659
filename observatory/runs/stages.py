"""The stages of a run, one function each, from input files to the files to publish.

Each stage takes what it needs and returns a typed result, with the warnings it
has for the manifest; :func:`observatory.runs.pipeline.run` calls them in order,
each inside :func:`observatory.core.timing.stage`. The computing itself is in
``systems`` and ``layers`` (the flows' dask graph in :mod:`observatory.runs.census`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from observatory.config import Config
from observatory.core.errors import DataError
from observatory.geography import TERRITORY_CRS, TERRITORY_NAMES, territory_of
from observatory.layers.build import (
    epci_names,
    named_indicators,
    named_matrix,
    territory_layers,
)
from observatory.layers.files import RunFiles, run_files
from observatory.readers.epci import EpciComposition
from observatory.readers.fd_mobpro import read_fd
from observatory.readers.passage import read_commune_passage
from observatory.runs.census import CURRENT, PREVIOUS, coded_flows, systems_by_vintage
from observatory.runs.manifest import (
    DetailedFlowsReport,
    RunRecord,
    TerritoriesReport,
    describe_inputs,
    systems_summary,
)
from observatory.runs.reading import InputTables
from observatory.sources.inputs import ResolvedInput
from observatory.systems.base_flux_check import compare_with_base_flux
from observatory.systems.codebook import CodedFlows
from observatory.systems.crowns import (
    crowns_by_territory,
    epci_by_territory,
    select_metropoles,
)
from observatory.systems.distances import commune_points, person_km
from observatory.systems.flows import (
    ORDER_OF_MAGNITUDE,
    UNMATCHED_LISTED,
    FlowsReport,
    compare_vintages,
    flows_epci_by_mode,
    flows_with_previous,
    unmatched,
)
from observatory.systems.harmonise import HarmonisationReport, harmonise_mode_flows
from observatory.systems.modes import pair_modes

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------- territories
@dataclass(frozen=True, slots=True)
class Territories:
    """EPCI polygons by territory, the métropole systems and their crowns."""

    epci: dict[str, gpd.GeoDataFrame]
    attributes: pd.DataFrame  # epci_code, epci_name, epci_nature, n_communes
    crowns: pd.DataFrame
    centres: dict[str, list[str]]  # the métropoles of each territory, in order
    report: TerritoriesReport
    warnings: list[str]

    def system_territories(self) -> dict[str, str]:
        """Return the territory of each métropole system."""
        return {c: t for t, codes in self.centres.items() for c in codes}


def build_territories(config: Config, tables: InputTables) -> Territories:
    """Dissolve EPCI in each territory, choose the métropoles, build their crowns."""
    composition = tables.composition
    epci, membership = epci_by_territory(
        tables.communes, composition.composition, composition.epci
    )
    warnings = []
    if orphans := membership["communes_without_epci"]:
        warnings.append(
            f"{len(orphans)} commune polygon(s) in no EPCI: " + ", ".join(orphans[:10])
        )
    attributes = pd.concat([frame.drop(columns="geometry") for frame in epci.values()])
    t = config.territories
    metropoles = select_metropoles(attributes, t.metropoles, t.poles)
    if not metropoles:
        msg = (
            "no métropole (NATURE_EPCI ME or METLYON) has a polygon in the "
            "communes file(s), and [territories] poles is empty"
        )
        raise DataError(msg)
    crowns, centres = crowns_by_territory(
        epci, metropoles, t.crown_depth, t.contiguity_tolerance_m, t.min_shared_border_m
    )
    report: TerritoriesReport = {
        **membership,
        "territories": {
            territory: {
                "name": TERRITORY_NAMES[territory],
                "crs": TERRITORY_CRS[territory],
                "communes": len(tables.communes[territory]),
                "epci": len(frame),
                "systems": sorted(centres.get(territory, [])),
            }
            for territory, frame in epci.items()
        },
    }
    return Territories(epci, attributes, crowns, centres, report, warnings)


# --------------------------------------------------------------------- harmonise
@dataclass(frozen=True, slots=True)
class Passage:
    """The commune passage that takes every input to the target geography, if any."""

    passage: pd.DataFrame | None = None
    target: set[str] | None = None
    warnings: tuple[str, ...] = ()

    def pair(self) -> tuple[pd.DataFrame | None, set[str] | None]:
        """Return ``(passage, target codes)``: both None when nothing is harmonised."""
        return self.passage, self.target


def read_passage(
    config: Config, inputs: dict[str, ResolvedInput], composition: EpciComposition
) -> Passage:
    """Read the commune passage up to the target geography's 1 January."""
    # Events after the target geography's 1 January would move codes to
    # communes that do not exist yet in the composition.
    geography = config.inputs.geography
    until = date(geography, 1, 1) if geography else None
    warnings: tuple[str, ...] = ()
    if until is None:
        warnings = (
            "[inputs] geography is not set: every event of the commune passage "
            "file is applied, whatever its date",
        )
    passage = read_commune_passage(inputs["commune_passage"].path, until=until)
    return Passage(passage, set(composition.composition["commune_code"]), warnings)


# --------------------------------------------------------------------- flows
@dataclass(frozen=True, slots=True)
class CensusFlows:
    """The EPCI flows and indicators of the current vintage, beside the earlier one."""

    pairs: pd.DataFrame  # flows_with_previous: both vintages pair by pair
    matrix: pd.DataFrame
    indicators: pd.DataFrame  # with the earlier vintage and the change
    report: FlowsReport
    previous_report: FlowsReport | None
    harmonisation: dict[str, HarmonisationReport]
    warnings: list[str]


def listed_volumes(codes: dict[str, float]) -> str:
    """Return ``code (workers), ...`` for the codes of a report, in its order."""
    return ", ".join(f"{code} ({workers:,.0f})" for code, workers in codes.items())


def unmatched_warning(key: str, report: FlowsReport, path: Path | None) -> str:
    """Name the commune codes of one vintage that match no EPCI, largest first.

    For each side (origin, destination), the number of codes, their workers
    (kept as ``UNMATCHED``) and the :data:`UNMATCHED_LISTED` largest codes with
    their workers; empty when every code matched.
    """
    sides = []
    for side, codes, workers in unmatched(report):
        if not codes:
            continue
        largest = dict(list(codes.items())[:UNMATCHED_LISTED])
        more = len(codes) - len(largest)
        sides.append(
            f"{len(codes)} {side} commune code(s) match no EPCI ({workers:,.0f} "
            f"workers kept as UNMATCHED): {listed_volumes(largest)}"
            + (f" and {more} more" if more > 0 else "")
        )
    return f"{path or key}: " + "; ".join(sides) if sides else ""


def check_unmatched(
    config: Config, tables: InputTables, key: str, report: FlowsReport
) -> None:
    """Fail the run when too many workers of one vintage match no EPCI.

    The gate is ``[inputs] max_unmatched_share``, applied after harmonisation;
    abroad codes are never unmatched. Above it, the flows and the composition
    are almost surely in different geographies, and publishing would spread
    the error silently.

    Raises
    ------
    DataError
        Naming the flows file, the share, the largest unmatched codes with
        their workers and the likely cause.
    """
    gate = config.inputs.max_unmatched_share
    share = report["unmatched_share"]
    if share <= gate:
        return
    path = tables.flows_paths.get(key) or f"[inputs] {key}"
    geography = config.inputs.geography
    stated = f" (geography {geography})" if geography else ""
    vintage = tables.vintage if key == CURRENT else tables.previous_vintage
    census = f" (RP {vintage})" if vintage else ""
    msg = (
        f"{path}: {share:.2%} of the workers ({report['unmatched_workers']:,.0f} of "
        f"{report['workers_total']:,.0f}) live or work in a commune that matches "
        f"no EPCI of the composition{stated}, above [inputs] max_unmatched_share "
        f"= {gate:.2%}; largest unmatched codes (workers): "
        f"{listed_volumes(report['unmatched_largest'])}; the flows{census} and the "
        "EPCI composition are probably in different geographies: RP N is published "
        "in the geography of 1 January N+3; give a commune_passage or the "
        "composition of that year"
    )
    raise DataError(msg, path=tables.flows_paths.get(key), source=key)


def census_flows(
    config: Config,
    tables: InputTables,
    crowns: pd.DataFrame | Callable[[], pd.DataFrame],
    passage: Passage,
) -> CensusFlows:
    """Sum each vintage by EPCI, compute every system, compare the vintages.

    ``crowns`` may be a function returning them, called once every vintage is
    summed by EPCI (:func:`observatory.runs.census.systems_by_vintage`).
    """

    def flows() -> dict[str, CodedFlows]:
        # Called once dask is ready: the census flows may still be being read.
        coded = {CURRENT: coded_flows(tables.flows)}
        if tables.previous is not None:
            coded[PREVIOUS] = coded_flows(tables.previous)
        return coded

    by_vintage = systems_by_vintage(
        flows, passage.pair(), tables.composition.composition, crowns, config
    )
    for key, result in by_vintage.items():
        check_unmatched(config, tables, key, result.report)
    current = by_vintage[CURRENT]
    earlier = by_vintage.get(PREVIOUS)
    assert current.matrix is not None  # the current vintage always has one
    warnings = [
        warning
        for key, result in by_vintage.items()
        if (
            warning := unmatched_warning(
                key, result.report, tables.flows_paths.get(key)
            )
        )
    ]
    return CensusFlows(
        pairs=flows_with_previous(
            current.flows, earlier.flows if earlier is not None else None
        ),
        matrix=current.matrix,
        indicators=compare_vintages(
            current.indicators, earlier.indicators if earlier is not None else None
        ),
        report=current.report,
        previous_report=earlier.report if earlier is not None else None,
        harmonisation={
            key: result.harmonisation
            for key, result in by_vintage.items()
            if result.harmonisation is not None
        },
        warnings=warnings,
    )


# --------------------------------------------------------------------- fd_mobpro
@dataclass(frozen=True, slots=True)
class DetailedFlows:
    """Modes, distances and person-km by EPCI pair, from FD_MOBPRO."""

    pair_modes: pd.DataFrame
    report: DetailedFlowsReport
    warnings: list[str]


def detailed_flows(
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    passage: Passage,
    points: pd.DataFrame | None = None,
) -> DetailedFlows:
    """Read FD_MOBPRO out of core and return modes, distances and person-km by EPCI pair.

    The file is checked against the base flux as read (before harmonisation).
    Distances join the communes' ``points`` (default: representative points;
    population-weighted centres from :func:`observatory.runs.land.distance_points`).
    """
    path = inputs["fd_mobpro"].path
    by_mode, read_report = read_fd(
        path,
        config.inputs.fd_vintage,
        scheduler=config.compute.scheduler,
        blocksize=config.compute.blocksize,
        progress=True,  # shown only on a terminal (observatory.core.compute)
    )
    check = compare_with_base_flux(by_mode, tables.flows.table)
    warnings = []
    if read_report.get("vintage") != tables.vintage:
        warnings.append(
            f"{path}: the detailed file is RP {read_report.get('vintage')}, the base "
            f"flux RP {tables.vintage}: modal shares come from another census"
        )
    elif not check["consistent"]:
        warnings.append(
            f"{path}: flows summed from the detailed file differ from the base flux "
            f"on {check['pairs_above_tolerance']} commune pair(s) (largest gap "
            f"{check['max_abs_gap']:.1f} workers); see the manifest (fd_mobpro)"
        )
    if passage.passage is not None and passage.target is not None:
        by_mode = harmonise_mode_flows(by_mode, passage.passage, passage.target)
    # Each territory's points in its own CRS (metres that mean something there).
    if points is None:
        points = pd.concat(
            [commune_points(frame, crs=None) for frame in tables.communes.values()]
        )
    km = person_km(by_mode, points)
    # Points of two territories are in two CRS: no straight line between them.
    across = territory_of(km["origin_commune"]) != territory_of(
        km["destination_commune"]
    )
    km.loc[across.fillna(False).to_numpy(), ["distance_km", "person_km"]] = np.nan
    by_pair = flows_epci_by_mode(km, tables.composition.composition)
    report: DetailedFlowsReport = {"read": read_report, "base_flux_check": check}
    return DetailedFlows(pair_modes(by_pair), report, warnings)


# --------------------------------------------------------------------- layers
@dataclass(frozen=True, slots=True)
class RunLayers:
    """The map layers of each territory and the named flow matrix."""

    territories: dict[str, dict[str, gpd.GeoDataFrame]]
    matrix: pd.DataFrame
    names: pd.Series  # EPCI names by SIREN
    warnings: list[str]


def build_layers(
    config: Config,
    tables: InputTables,
    territories: Territories,
    census: CensusFlows,
    indicators: pd.DataFrame,
    detailed: DetailedFlows | None,
) -> RunLayers:
    """Name the classified indicators and build every territory's layers."""
    names = epci_names(tables.composition.epci)
    vintages = (tables.vintage, tables.previous_vintage)
    indicators = named_indicators(indicators, names, territories.attributes, vintages)
    crowns = territories.crowns
    layers = {
        territory: territory_layers(
            territories.epci[territory],
            crowns[crowns["metropole_code"].isin(codes)],
            indicators[indicators["metropole_code"].isin(codes)],
            census.pairs,
            detailed.pair_modes if detailed is not None else None,
            names,
            vintages,
            config.reliability,
            config.classification,
        )
        for territory, codes in territories.centres.items()
    }
    reliability = pd.concat([part["flows"]["reliability"] for part in layers.values()])
    warnings = []
    if fragile := int((reliability == ORDER_OF_MAGNITUDE).sum()):
        warnings.append(
            f"{fragile} of {len(reliability)} flow line(s) are below INSEE's usable "
            f"threshold ({config.reliability.usable_min:g} workers): an order of "
            "magnitude only (reliability = order_of_magnitude)"
        )
    return RunLayers(layers, named_matrix(census.matrix, names), names, warnings)


# --------------------------------------------------------------------- export
def record_run(
    identity: tuple[str, datetime],
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    territories: Territories,
    passage: Passage,
    census: CensusFlows,
    detailed: DetailedFlows | None,
    layers: RunLayers,
) -> RunRecord:
    """Gather what every stage found into the record of the run (its manifest).

    ``identity`` is the run id and start time. Input files not hashed yet are
    hashed here; the warnings of the stages are kept in the order they ran.
    """
    run_id, started = identity
    vintages = {"flows": tables.vintage, "flows_previous": tables.previous_vintage}
    return RunRecord(
        run_id=run_id,
        started=started,
        config=config,
        vintage=tables.vintage,
        previous_vintage=tables.previous_vintage,
        inputs=describe_inputs(inputs, config, vintages),
        systems=systems_summary(
            territories.crowns, layers.names, territories.system_territories()
        ),
        territories=territories.report,
        flows=census.report,
        flows_previous=census.previous_report,
        fd=detailed.report if detailed is not None else None,
        harmonisation=census.harmonisation,
        warnings=[
            *tables.warnings,
            *territories.warnings,
            *passage.warnings,
            *census.warnings,
            *(detailed.warnings if detailed is not None else []),
            *layers.warnings,
        ],
    )


def export_files(config: Config, record: RunRecord, layers: RunLayers) -> RunFiles:
    """Turn the layers into the tables and styles of the run folder, with provenance."""
    return run_files(
        layers.territories,
        layers.matrix,
        config.classification,
        config.reliability,
        record.provenance(),
    )
