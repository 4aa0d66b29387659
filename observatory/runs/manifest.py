"""What a run did, as typed records, and their one serialisation: ``manifest.json``.

:class:`RunRecord` holds everything the manifest tells (inputs, systems, reports
of each stage, warnings); :meth:`RunRecord.manifest` and
:meth:`RunRecord.provenance` turn it into the JSON content of ``manifest.json``
and of each layer file's metadata. :class:`RunReport` is what a run returns.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

from observatory import __version__
from observatory.config import Config
from observatory.core.files import sha256_file
from observatory.readers.fd_mobpro import FdReadReport
from observatory.sources.inputs import ResolvedInput, input_files
from observatory.sources.provenance import Provenance
from observatory.systems.base_flux_check import BaseFluxCheck
from observatory.systems.crowns import MembershipReport
from observatory.systems.flows import FlowsReport
from observatory.systems.harmonise import HarmonisationReport


class SystemSummary(TypedDict):
    """One métropole system: where it is and how many EPCI each crown holds."""

    metropole_code: str
    metropole_name: str | None
    territory: str
    epci_per_crown: dict[int, int]


class TerritorySummary(TypedDict):
    """One territory of the communes file(s) and the systems built in it."""

    name: str
    crs: str
    communes: int
    epci: int
    systems: list[str]


class TerritoriesReport(MembershipReport):
    """How communes were placed in EPCI, and each territory's summary."""

    territories: dict[str, TerritorySummary]


class DetailedFlowsReport(TypedDict):
    """What reading FD_MOBPRO found, and its check against the base flux."""

    read: FdReadReport
    base_flux_check: BaseFluxCheck


@dataclass(frozen=True, slots=True)
class CensusInput:
    """The census vintage of a flows input, and whether its figures are synthetic."""

    vintage: int | None
    synthetic: bool


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One input file as the manifest describes it.

    ``census`` is told for census flows only, ``geography`` (the 1 January of the
    file's commune codes: its catalogue entry's or the one stated beside its path)
    for every input that states one, ``source`` and ``provenance`` for an input
    fetched from the catalogue.
    """

    role: str
    path: str
    size: int
    sha256: str
    census: CensusInput | None = None
    geography: int | None = None
    source: str | None = None
    provenance: Provenance | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the record as written in the manifest (absent fields left out)."""
        record: dict[str, Any] = {
            "role": self.role,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.census is not None:
            record["vintage"] = self.census.vintage
            record["synthetic"] = self.census.synthetic
        if self.geography is not None:
            record["geography"] = self.geography
        if self.source is not None:
            record["source"] = self.source
            record["provenance"] = (
                self.provenance.to_dict() if self.provenance is not None else {}
            )
        return record


def describe_inputs(
    inputs: Mapping[str, ResolvedInput],
    config: Config,
    vintages: Mapping[str, int | None],
) -> list[InputRecord]:
    """Return path, size, sha256 and provenance of every input file.

    A shapefile counts all its parts; an input fetched from the catalogue carries
    the provenance recorded at download (URL, final URL, ETag, fetch time...).
    A file whose sha256 was measured already (``ResolvedInput.digests``, by the
    fetch or the refresh fingerprint) is not hashed again. ``vintages`` gives
    the census vintage of the flows inputs, by role.
    """
    return [
        InputRecord(
            role=role,
            path=str(part),
            size=part.stat().st_size,
            sha256=resolved.digests.get(str(part)) or sha256_file(part),
            census=(
                CensusInput(vintages[role], config.run.synthetic_flows)
                if role in vintages
                else None
            ),
            geography=resolved.geography,
            source=resolved.source_id or None,
            provenance=resolved.provenance,
        )
        for role, resolved in inputs.items()
        for part in input_files(resolved)
    ]


def systems_summary(
    crowns: pd.DataFrame, names: pd.Series, territories: Mapping[str, str]
) -> list[SystemSummary]:
    """Summarise each métropole system: its name, territory and crown sizes."""
    summary: list[SystemSummary] = []
    for metropole, part in crowns.groupby("metropole_code", sort=True):
        counts = part["crown"].value_counts()
        summary.append(
            {
                "metropole_code": str(metropole),
                "metropole_name": names.get(metropole),
                "territory": territories[str(metropole)],
                "epci_per_crown": {
                    int(k): int(counts[k]) for k in sorted(counts.index) if k > 0
                },
            }
        )
    return summary


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything the manifest of a run tells, typed; serialised by :meth:`manifest`."""

    run_id: str
    started: datetime
    config: Config
    vintage: int | None
    previous_vintage: int | None
    inputs: list[InputRecord]
    systems: list[SystemSummary]
    territories: TerritoriesReport
    flows: FlowsReport
    flows_previous: FlowsReport | None
    fd: DetailedFlowsReport | None
    harmonisation: dict[str, HarmonisationReport]
    warnings: list[str]
    #: The stage flow_systems (issue 15): crown rule, dominant weight, AAV input.
    flow_systems: Mapping[str, Any] | None = None
    #: The stage land (issue 14): rasters, coverage, crowns; None without land keys.
    land: Mapping[str, Any] | None = None

    def report(
        self,
        output_dir: Path,
        files: dict[str, Path],
        rows: dict[str, int],
        timings: dict[str, float],
    ) -> RunReport:
        """Return what the run tells its caller once its folder is published."""
        return RunReport(
            run_id=self.run_id,
            output_dir=output_dir,
            files=files,
            rows=rows,
            systems=self.systems,
            flows=self.flows,
            flows_previous=self.flows_previous,
            fd=self.fd,
            timings=timings,
            warnings=self.warnings,
            synthetic_flows=self.config.run.synthetic_flows,
        )

    def provenance(self) -> dict[str, Any]:
        """Return the record stored in the metadata of every layer file."""
        return {
            "run_id": self.run_id,
            "package": f"observatory {__version__}",
            "created": self.started.isoformat(timespec="seconds"),
            "config": str(self.config.path),
            "config_sha256": self.config.sha256,
            "flows_vintage": self.vintage,
            "synthetic_flows": self.config.run.synthetic_flows,
            "inputs": [
                {"role": r.role, "path": r.path, "sha256": r.sha256}
                for r in self.inputs
            ],
        }

    def manifest(
        self, timings: Mapping[str, float], extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return the content of ``manifest.json``, before publication adds its keys.

        ``extra`` keys (the refresh fingerprint, its reasons) follow the
        warnings; ``timings`` are the stage timings so far (publication adds the
        time spent writing, the files and their row counts).
        """
        config = self.config
        return {
            "run_id": self.run_id,
            "package": {"name": "observatory", "version": __version__},
            "python": platform.python_version(),
            "started": self.started.isoformat(timespec="seconds"),
            "config": {
                "path": str(config.path),
                "sha256": config.sha256,
                "content": config.raw,
            },
            "classification": {
                "path": str(config.classification.source),
                "rules": [
                    {"class": r.class_code, "when": r.describe()}
                    for r in config.classification.rules
                ],
            },
            "synthetic_flows": config.run.synthetic_flows,
            "flows_vintage": self.vintage,
            "previous_vintage": self.previous_vintage,
            "geography": config.inputs.geography,
            "inputs": [record.as_json() for record in self.inputs],
            "systems": self.systems,
            "territories": self.territories,
            "flows": self.flows,
            "flows_previous": self.flows_previous or {},
            "fd_mobpro": self.fd or {},
            "harmonisation": self.harmonisation,
            "flow_systems": self.flow_systems or {},
            **({"land": self.land} if self.land is not None else {}),
            "warnings": self.warnings,
            **(extra or {}),
            "timings_s": dict(timings),
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did: its outputs, the systems it built, timings and warnings.

    ``output_dir`` is the run folder ``<output>/<run_id>/`` the files were
    published in; ``timings`` is the caller's dict when it passed one.
    """

    run_id: str
    output_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    systems: list[SystemSummary]
    flows: FlowsReport
    flows_previous: FlowsReport | None
    fd: DetailedFlowsReport | None
    timings: dict[str, float]
    warnings: list[str]
    synthetic_flows: bool
