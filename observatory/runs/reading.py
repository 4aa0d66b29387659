"""The stage ``read``: the EPCI composition, the communes and the census flows.

Three threads and a process share the work, and no result depends on which
ends first:

- this thread reads the EPCI composition, then the communes;
- ``reproject`` puts the communes in their territories' CRS (PROJ, no GIL);
- a helper process reads the census base flux, current vintage then earlier
  (:mod:`observatory.runs.census_reading`, with a GIL of its own), and the
  thread ``read-flows`` waits for it and checks what it read.

:func:`read_inputs` returns once the composition and the communes are read:
the run builds the territories meanwhile, and :class:`InputTables` waits for
the census flows where they are first needed (the stage ``flows``). Their
reading time is kept as ``read_flows``; an error in them is still one of the
stage ``read``.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from observatory.config import Config
from observatory.core.errors import DataError, ObservatoryError
from observatory.readers.base_flux import CommuneFlows
from observatory.readers.communes import (
    in_territory_crs,
    read_communes,
    split_by_territory,
)
from observatory.readers.epci import EpciComposition, read_epci_composition
from observatory.readers.operations import OPERATIONS_FILE, ProjOperations
from observatory.readers.polygons import RepairPolicy
from observatory.runs.census import CURRENT, PREVIOUS
from observatory.runs.census_reading import CensusReading
from observatory.sources.inputs import ResolvedInput, cache_dir, role_inputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CensusTables:
    """The census flows of a run: the current vintage, the earlier one, their warnings."""

    flows: CommuneFlows
    previous: CommuneFlows | None
    vintage: int | None
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class InputTables:
    """The inputs of a run, read: communes by territory, EPCI, census flows.

    ``flows_paths`` names the file each census flows table was read from, by
    role (``flows``, ``flows_previous``). Two of them are still being made in
    threads of their own when the run gets this: the communes put in each
    territory's CRS (``projecting``, through :attr:`communes`) and the census
    flows (``reading``, through :attr:`flows`, :attr:`previous`,
    :attr:`vintage`); each property waits for its thread, and raises its error.
    """

    projecting: Future[dict[str, gpd.GeoDataFrame]]
    composition: EpciComposition
    reading: Future[CensusTables]
    geography_warnings: list[str]
    flows_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def communes(self) -> dict[str, gpd.GeoDataFrame]:
        """Commune polygons by territory, each in its official projected CRS.

        Raises
        ------
        DataError
            A layer that cannot be put in its territory's CRS.
        """
        return self.projecting.result()

    @property
    def census(self) -> CensusTables:
        """The census flows, once read.

        Raises
        ------
        DataError
            A base flux that cannot be read (its ``stage`` is ``read``).
        """
        return self.reading.result()

    @property
    def flows(self) -> CommuneFlows:
        """The census flows of the run's vintage."""
        return self.census.flows

    @property
    def previous(self) -> CommuneFlows | None:
        """The census flows of the earlier vintage compared with, if any."""
        return self.census.previous

    @property
    def vintage(self) -> int | None:
        """The census vintage of the run (``[inputs] flows_vintage`` or the file's)."""
        return self.census.vintage

    @property
    def previous_vintage(self) -> int | None:
        """Census vintage of the earlier flows compared with, if any."""
        return self.previous.vintage if self.previous is not None else None

    @property
    def warnings(self) -> list[str]:
        """Warnings of the geography, then of the census flows."""
        return [*self.geography_warnings, *self.census.warnings]


#: Communes whose census flows INSEE flags, by census vintage: (code, name, note).
FLAGGED_COMMUNES = {
    2023: (
        (
            "55328",
            "Maxey-sur-Vaise",
            "INSEE reports an uncorrected workplace-coding anomaly for this "
            "commune in RP 2023 (reported second-hand, by the public project "
            "Jpmartinslag/neural-temporal-relational-model; INSEE's own wording "
            "was not found)",
        ),
    ),
}


def flagged_communes(flows: CommuneFlows, vintage: int | None, path: Path) -> list[str]:
    """Return a warning for each commune INSEE flags in this vintage that carries flows."""
    warnings = []
    for code, name, note in FLAGGED_COMMUNES.get(vintage or 0, ()):
        touching = flows.touching([code])  # a lookup in the book, not the rows
        if touching.any():
            workers = float(pd.Series(flows.workers[touching]).sum())
            warnings.append(
                f"{path}: {name} ({code}) carries {workers:,.0f} workers in RP "
                f"{vintage}: {note}; read its flows with caution"
            )
    return warnings


def read_inputs(
    config: Config,
    inputs: dict[str, ResolvedInput],
    timings: dict[str, float] | None = None,
    census: CensusReading | None = None,
) -> InputTables:
    """Read the EPCI composition and the communes; the census flows are read meanwhile.

    The census base flux files are read by a helper process (``census``, when
    the caller started it early for these files, else started here): it has a
    GIL of its own. A thread waits for them and checks them, from now until
    the run first needs them. ``timings`` gets their reading time as
    ``read_flows``.
    """
    paths = {role: inputs[role].path for role in (CURRENT, PREVIOUS) if role in inputs}
    allow = config.inputs.allow_duplicate_pairs
    own = None
    if census is None or not census.matches(paths, allow):
        census = own = CensusReading(paths, allow)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-flows")
    reading = pool.submit(_read_census, config, census, own is not None, timings)
    pool.shutdown(wait=False)  # the thread ends with its task
    try:
        composition, projecting, warnings = _read_geography(config, inputs)
    except BaseException:
        if own is not None:
            own.stop()  # not needed any more
        raise
    return InputTables(projecting, composition, reading, warnings, paths)


def _read_census(
    config: Config,
    census: CensusReading,
    own: bool,
    timings: dict[str, float] | None,
) -> CensusTables:
    # The census flows read by the helper process, checked; ``own``: started
    # by read_inputs, stopped here (else by whoever started it).
    try:
        flows = census.result()
    finally:
        if own:
            census.stop()
    assert census.seconds is not None  # set by result()
    logger.info("read_flows: the census flows read in %.2f s", census.seconds)
    if timings is not None:
        timings["read_flows"] = round(census.seconds, 3)
    try:
        return _census(config, census.paths, flows)
    except ObservatoryError as exc:
        # Met by the stage that first needs the flows: it is still a read error.
        exc.stage = exc.stage or "read"
        raise


def _census(
    config: Config, paths: dict[str, Path], read: dict[str, CommuneFlows]
) -> CensusTables:
    flows, previous = read[CURRENT], read.get(PREVIOUS)
    vintage = config.inputs.flows_vintage or flows.vintage
    if previous is not None and previous.vintage == vintage:
        msg = (
            f"{paths[PREVIOUS]}: the previous flows have the same "
            f"vintage ({vintage}) as {paths[CURRENT]}"
        )
        raise DataError(msg)
    warnings = [*flows.warnings, *(previous.warnings if previous else ())]
    warnings += flagged_communes(flows, vintage, paths[CURRENT])
    if previous is not None:
        warnings += flagged_communes(previous, previous.vintage, paths[PREVIOUS])
    return CensusTables(flows, previous, vintage, warnings)


def _read_geography(
    config: Config, inputs: dict[str, ResolvedInput]
) -> tuple[EpciComposition, Future[dict[str, gpd.GeoDataFrame]], list[str]]:
    # The EPCI composition, then the communes by territory, and their warnings.
    # The communes are put in their territories' CRS in a thread of their own:
    # PROJ's choice of operation for each overseas territory is kept in the
    # download cache (readers/operations), searched again (0.2 CPU-s each,
    # without the GIL) only when PROJ or its data changed.
    epci_list = inputs["epci_list"].path if "epci_list" in inputs else None
    composition = read_epci_composition(inputs["epci_composition"].path, epci_list)
    logger.info(
        "%s: %d EPCI, %d communes",
        inputs["epci_composition"].path,
        len(composition.epci),
        len(composition.composition),
    )
    warnings = []
    layers = []
    epci_codes = set(composition.epci["epci_code"])
    for resolved in role_inputs(inputs, "communes"):
        layer = read_communes(
            resolved.path,
            config.inputs.communes_layer,
            target_crs=None,
            epci_codes=epci_codes,
            repairs=RepairPolicy(
                config.inputs.repair_geometry, config.inputs.max_repair_area_change
            ),
        )
        logger.info("%s: %d communes (%s)", resolved.path, len(layer), layer.crs)
        layers.append((resolved.path, layer))
    parts, outside = split_by_territory(layers)
    if outside:
        warnings.append(
            f"{len(outside)} commune(s) outside the territories of ADMIN EXPRESS "
            "(overseas collectivities) set aside: " + ", ".join(outside[:10])
        )
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reproject")
    operations = ProjOperations(cache_dir(config) / OPERATIONS_FILE)
    projecting = pool.submit(in_territory_crs, parts, operations)
    pool.shutdown(wait=False)  # the thread ends with its task
    return composition, projecting, warnings
