"""A run from its inputs to its published folder: the stages, in order, each timed.

The stages themselves are :mod:`observatory.runs.stages`; the manifest is
:mod:`observatory.runs.manifest`'s, publication :mod:`observatory.runs.publish`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from observatory.config import Config
from observatory.core.timing import StageTimings, new_run_id, stage
from observatory.runs.census_reading import CensusReading
from observatory.runs.documents import with_documents
from observatory.runs.flow_systems import flow_systems, with_flow_layers
from observatory.runs.geopackage_writing import GeoPackageWriting
from observatory.runs.land import (
    RunLand,
    distance_points,
    has_land,
    land_stage,
    with_land_layers,
)
from observatory.runs.manifest import RunReport
from observatory.runs.publish import publish
from observatory.runs.reading import InputTables, read_inputs
from observatory.runs.stages import (
    CensusFlows,
    DetailedFlows,
    Passage,
    Territories,
    build_layers,
    build_territories,
    census_flows,
    detailed_flows,
    export_files,
    read_passage,
    record_run,
)
from observatory.sources.inputs import ResolvedInput, resolve_inputs
from observatory.systems.classify import classify_epci
from observatory.systems.modes import with_metropole_modes

__all__ = ["RunReport", "run"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _in_stage(
    name: str, timings: dict[str, float], func: Callable[..., T], *args: Any
) -> T:
    # Call func(*args) as stage ``name`` (in a thread of its own).
    with stage(name, timings):
        return func(*args)


def _read_and_sum(
    config: Config,
    offline: bool,
    inputs: dict[str, ResolvedInput] | None,
    timings: dict[str, float],
    census_reading: CensusReading | None,
) -> tuple[dict[str, ResolvedInput], InputTables, Passage, Territories, CensusFlows]:
    """Resolve and read the inputs, build the territories, sum the census flows.

    Two cores: the census flows are read by a helper process from the start
    of ``read``, or earlier (``census_reading``, see
    :func:`~observatory.runs.reading.read_inputs`); the territories are built in
    a thread as soon as the communes are read, and each vintage's flows are
    harmonised and summed by EPCI (which needs no crowns) once read:
    ``read_flows``, ``territories`` and ``flows`` overlap.
    """
    if inputs is None:
        with stage("fetch", timings):
            inputs = resolve_inputs(config, offline=offline)
    with stage("read", timings):
        tables = read_inputs(config, inputs, timings, census_reading)
    passage = Passage()
    if "commune_passage" in inputs:
        with stage("harmonise", timings):
            passage = read_passage(config, inputs, tables.composition)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="territories") as pool:
        building = pool.submit(
            _in_stage, "territories", timings, build_territories, config, tables
        )
        with stage("flows", timings):
            census = census_flows(
                config, tables, lambda: building.result().crowns, passage
            )
        return inputs, tables, passage, building.result(), census


def _land(
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    territories: Territories,
    timings: dict[str, float],
) -> RunLand | None:
    # The stage land, timed only when the config names land rasters.
    if not has_land(inputs):
        return None
    with stage("land", timings):
        return land_stage(config, inputs, tables, territories)


def _detailed(
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    passage: Passage,
    land: RunLand | None,
    timings: dict[str, float],
) -> DetailedFlows | None:
    # Modes and distances from the detailed file, when the config names one.
    if "fd_mobpro" not in inputs:
        return None
    with stage("fd_mobpro", timings):
        points = distance_points(land, tables)
        return detailed_flows(config, inputs, tables, passage, points)


def run(
    config: Config,
    output_dir: Path,
    offline: bool = False,
    *,
    inputs: dict[str, ResolvedInput] | None = None,
    run_id: str | None = None,
    started: datetime | None = None,
    timings: dict[str, float] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    census_reading: CensusReading | None = None,
) -> RunReport:
    """Run the whole job described by ``config`` and publish its run folder.

    The layers are published as ``output_dir/<run_id>/``; pointing ``latest`` at
    it is left to :func:`observatory.runs.execute.execute_job`, which calls this.

    Parameters
    ----------
    config
        A loaded configuration.
    output_dir
        Folder holding the run folders.
    offline
        Take catalogue sources from the download cache only.
    inputs
        Inputs resolved already (by the caller's fetch stage); resolved here when None.
    run_id, started
        Identity of the run (made up here when None).
    timings
        The caller's stage timings so far; each stage adds its own as it ends.
    manifest_extra
        Keys added to the manifest (the refresh fingerprint, the reasons).
    census_reading
        The census flows being read already (started by the caller before
        importing this module, for these inputs); read here when None.
    """
    started = started or datetime.now(UTC)
    run_id = run_id or new_run_id(started)
    timings = StageTimings() if timings is None else timings
    logger.info("run %s: config %s", run_id, config.path)
    front = _read_and_sum(config, offline, inputs, timings, census_reading)
    # Started now: it imports its libraries on the core the rest of the run,
    # on one core from here, leaves idle.
    geopackage = (
        GeoPackageWriting.start(output_dir, run_id)
        if "geopackage" in config.output.formats
        else None
    )
    try:
        return _systems_and_files(
            config, output_dir, (run_id, started), timings, manifest_extra,
            front, geopackage,
        )  # fmt: skip
    finally:
        if geopackage is not None:
            geopackage.stop()


def _systems_and_files(
    config: Config,
    output_dir: Path,
    run: tuple[str, datetime],
    timings: dict[str, float],
    manifest_extra: Mapping[str, Any] | None,
    front: tuple[
        dict[str, ResolvedInput], InputTables, Passage, Territories, CensusFlows
    ],
    geopackage: GeoPackageWriting | None,
) -> RunReport:
    # The stages after the census flows; the GeoPackage's helper is asked to
    # write as soon as the tables are exported, before the documents.
    inputs, tables, passage, territories, census = front
    run_id, started = run
    with stage("flow_systems", timings):
        systems = flow_systems(config, inputs, tables, territories, passage, census)
    land = _land(config, inputs, tables, territories, timings)
    detailed = _detailed(config, inputs, tables, passage, land, timings)
    modes = detailed.pair_modes if detailed is not None else None
    indicators = with_metropole_modes(systems.indicators(census.indicators), modes)
    with stage("classify", timings):
        indicators = classify_epci(indicators, config.classification)
    with stage("layers", timings):
        layers = build_layers(
            config,
            tables,
            systems.territories(territories),
            systems.census(census),
            indicators,
            detailed,
        )
        layers = with_flow_layers(config, layers, systems, territories, tables.vintage)
        layers = with_land_layers(layers, land, tables)
    with stage("export", timings):
        record = record_run(
            (run_id, started),
            config,
            inputs,
            tables,
            territories,
            passage,
            census,
            detailed,
            layers,
        )
        record = systems.recorded(record)
        record = land.recorded(record) if land is not None else record
        files = export_files(config, record, layers)
        if geopackage is not None:
            geopackage.write(files)
    manifest = record.manifest(timings, manifest_extra)  # publish adds the writing
    with stage("report", timings):
        files = with_documents(config, layers, files, manifest)
    manifest["timings_s"]["report"] = timings["report"]
    with stage("write", timings):
        published = publish(
            output_dir, run_id, files, manifest, config.output.formats, geopackage
        )
    return record.report(output_dir / run_id, published, files.rows(), timings)
