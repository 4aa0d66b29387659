"""A run from its inputs to its published folder: the stages, in order, each timed.

The stages themselves are :mod:`observatory.runs.stages`; the manifest is
:mod:`observatory.runs.manifest`'s, publication :mod:`observatory.runs.publish`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from observatory.config import Config
from observatory.core.timing import StageTimings, new_run_id, stage
from observatory.runs.documents import with_documents
from observatory.runs.manifest import RunReport
from observatory.runs.publish import publish
from observatory.runs.stages import (
    Passage,
    build_layers,
    build_territories,
    census_flows,
    detailed_flows,
    export_files,
    read_inputs,
    read_passage,
    record_run,
)
from observatory.sources.inputs import ResolvedInput, resolve_inputs
from observatory.systems.classify import classify_epci
from observatory.systems.modes import with_metropole_modes

__all__ = ["RunReport", "run"]

logger = logging.getLogger(__name__)


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
    """
    started = started or datetime.now(UTC)
    run_id = run_id or new_run_id(started)
    timings = StageTimings() if timings is None else timings
    logger.info("run %s: config %s", run_id, config.path)
    if inputs is None:
        with stage("fetch", timings):
            inputs = resolve_inputs(config, offline=offline)
    with stage("read", timings):
        tables = read_inputs(config, inputs)
    with stage("territories", timings):
        territories = build_territories(config, tables)
    passage = Passage()
    if "commune_passage" in inputs:
        with stage("harmonise", timings):
            passage = read_passage(config, inputs, tables.composition)
    with stage("flows", timings):
        census = census_flows(config, tables, territories.crowns, passage)
    detailed = None
    if "fd_mobpro" in inputs:
        with stage("fd_mobpro", timings):
            detailed = detailed_flows(config, inputs, tables, passage)
    modes = detailed.pair_modes if detailed is not None else None
    indicators = with_metropole_modes(census.indicators, modes)
    with stage("classify", timings):
        indicators = classify_epci(indicators, config.classification)
    with stage("layers", timings):
        layers = build_layers(config, tables, territories, census, indicators, detailed)
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
        files = export_files(config, record, layers)
    manifest = record.manifest(timings, manifest_extra)  # publish adds the writing
    with stage("report", timings):
        files = with_documents(config, layers, files, manifest)
    manifest["timings_s"]["report"] = timings["report"]
    with stage("write", timings):
        published = publish(output_dir, run_id, files, manifest, config.output.formats)
    return record.report(output_dir / run_id, published, files.rows(), timings)
