"""Resolve the inputs of a config to local files, through the sources catalogue.

An input is either a local path or a reference to a catalogue entry
(``{ source = "insee_epci_2025", member = "EPCI_au_01-01-2025.xlsx" }``); the
latter is fetched into the cache (or taken from it with ``offline=True``) by
:mod:`observatory.sources.cache`, and its provenance follows it into the run manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from observatory.config import Config, SourceRef, configs_dir, default_cache_dir
from observatory.core.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from observatory.sources.cache import FetchResult
    from observatory.sources.catalogue import Source
    from observatory.sources.provenance import Provenance


logger = logging.getLogger(__name__)


INPUT_ROLES = (
    "communes",
    "epci_composition",
    "flows",
    "flows_previous",
    "commune_passage",
    "epci_list",
    "fd_mobpro",
)


#: Inputs in the target geography (``[inputs] geography``): boundaries, composition.
GEOGRAPHY_ROLES = ("communes", "epci_composition")


SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """A local file ready to be read, and where it came from."""

    role: str
    path: Path
    source_id: str | None = None
    #: the provenance of a catalogue source's file (None for a local path)
    provenance: Provenance | None = None
    #: sha256 measured by the fetch (downloaded file, extracted members), by path
    digests: dict[str, str] = field(default_factory=dict)


def input_files(resolved: ResolvedInput) -> list[Path]:
    """Return the files an input is read from: every part of a shapefile, else its path."""
    path = resolved.path
    if path.suffix.lower() != ".shp":
        return [path]
    return [p for ext in SHAPEFILE_PARTS if (p := path.with_suffix(ext)).exists()]


def catalogue_path(config: Config) -> Path:
    """Return the catalogue a config uses (the shipped ``sources.toml`` by default)."""
    return config.sources.catalogue or configs_dir() / "sources.toml"


def cache_dir(config: Config) -> Path:
    """Return the download cache a config uses."""
    return config.sources.cache_dir or default_cache_dir()


def load_config_catalogue(config: Config) -> dict[str, Source]:
    """Load the catalogue of ``config`` and check that every referenced id exists."""
    from observatory.sources.catalogue import load_catalogue

    path = catalogue_path(config)
    catalogue = load_catalogue(path)
    for role, ref in source_refs(config).items():
        if ref.source not in catalogue:
            msg = (
                f"{config.path}: [inputs] {role}: source {ref.source!r} is not in the "
                f"catalogue {path}; known: {sorted(catalogue)}"
            )
            raise ConfigError(msg, path=config.path, source=ref.source)
    return catalogue


def configured_inputs(config: Config) -> dict[str, tuple[str, Path | SourceRef]]:
    """Return every input a config names: ``{key: (role, path or source)}``.

    The key is the role, or ``role[i]`` (from 1) for a role given as a list, such
    as several ``communes`` files (one per territory).
    """
    out: dict[str, tuple[str, Path | SourceRef]] = {}
    for role in INPUT_ROLES:
        value = getattr(config.inputs, role)
        if isinstance(value, tuple):
            out.update({f"{role}[{i}]": (role, v) for i, v in enumerate(value, 1)})
        elif value is not None:
            out[role] = (role, value)
    return out


def role_inputs(inputs: dict[str, ResolvedInput], role: str) -> list[ResolvedInput]:
    """Return the resolved inputs of one role, in the config's order."""
    return [resolved for resolved in inputs.values() if resolved.role == role]


def source_refs(config: Config) -> dict[str, SourceRef]:
    """Return the inputs of ``config`` that name a catalogue source, by key."""
    return {
        key: value
        for key, (_, value) in configured_inputs(config).items()
        if isinstance(value, SourceRef)
    }


def fetch_config_sources(
    config: Config, offline: bool = False
) -> dict[str, FetchResult]:
    """Fetch (or find in the cache) every source a config names, by source id."""
    from observatory.sources.cache import fetch_source

    catalogue = load_config_catalogue(config)
    results: dict[str, FetchResult] = {}
    for ref in source_refs(config).values():
        if ref.source not in results:
            results[ref.source] = fetch_source(
                catalogue[ref.source], cache_dir(config), offline=offline
            )
    return results


def pick_member(result: FetchResult, member: str | None) -> Path:
    """Return the file of a fetched source to read: the archive member asked for."""
    if not result.members:
        return result.path
    names = sorted(result.members)
    if member is None:
        if len(names) == 1:
            return result.members[names[0]]
        msg = (
            f"source {result.source.id!r} holds several files {names}: "
            'say which one with member = "..." in [inputs]'
        )
        raise ConfigError(msg, source=result.source.id, path=result.path)
    matches = [n for n in names if n == member or PurePosixPath(n).name == member]
    if len(matches) != 1:
        msg = (
            f"source {result.source.id!r}: member {member!r} matches "
            f"{matches or 'nothing'} among {names}"
        )
        raise SourceError(msg, source=result.source.id, path=result.path)
    return result.members[matches[0]]


def _fetched_digests(result: FetchResult) -> dict[str, str]:
    """sha256 the fetch measured (and verified) on this run, by path."""
    record = result.provenance
    digests = {str(result.path): record.sha256} if record.sha256 else {}
    extracted = record.extracted
    members = extracted.sha256 if extracted is not None else None
    if members is not None:
        for name, path in result.members.items():
            if isinstance(members.get(name), str):
                digests[str(path)] = members[name]
    return digests


def resolve_inputs(config: Config, offline: bool = False) -> dict[str, ResolvedInput]:
    """Return every input of ``config`` as a local file, fetching sources as needed.

    Parameters
    ----------
    config
        A loaded configuration.
    offline
        Use the download cache only; a source missing from it is an error naming
        it.
    """
    fetched = fetch_config_sources(config, offline) if source_refs(config) else {}
    resolved = {}
    for key, (role, value) in configured_inputs(config).items():
        if isinstance(value, SourceRef):
            result = fetched[value.source]
            resolved[key] = ResolvedInput(
                role,
                pick_member(result, value.member),
                value.source,
                result.provenance,
                _fetched_digests(result),
            )
        else:
            resolved[key] = ResolvedInput(role, value)
    return resolved
