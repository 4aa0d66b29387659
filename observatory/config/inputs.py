"""The ``[inputs]`` table: input files, local or from the sources catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from observatory.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SourceRef:
    """An input taken from the sources catalogue rather than from a local path.

    Written in TOML as ``{ source = "insee_epci_2025", member = "EPCI.xlsx" }``;
    ``member`` picks one extracted file of an archive (by name or ending);
    ``fallback`` names another catalogue source used when the first cannot be
    fetched (HTTP error, network failure; never on a checksum mismatch).
    """

    source: str
    member: str | None = None
    fallback: str | None = None


#: Inputs whose local path may carry its geography:
#: ``{ path = "file", geography = 2025 }`` (a bare path takes ``[inputs] geography``).
LOCATED_ROLES = (
    "communes",
    "epci_composition",
    "flows",
    "flows_previous",
    "commune_passage",
    "fd_mobpro",
)


@dataclass(frozen=True, slots=True)
class InputsSection:
    """Input files: local paths (relative to the config) or catalogue sources.

    ``communes`` may list several files, e.g. ADMIN EXPRESS's mainland and
    overseas editions, each in its own CRS. ``geography`` is the target
    geography, the EPCI composition's (taken from its catalogue entry or inline
    geography when unset, by :func:`observatory.sources.inputs.check_geography`);
    ``geographies`` holds the geography written beside a local path, by input key
    (``flows``, ``communes[2]``...).
    """

    communes: Path | SourceRef | tuple[Path | SourceRef, ...]
    epci_composition: Path | SourceRef
    flows: Path | SourceRef
    flows_previous: Path | SourceRef | None = None
    commune_passage: Path | SourceRef | None = None
    fd_mobpro: Path | SourceRef | None = None
    fd_vintage: int | None = None
    communes_layer: str | None = None
    epci_list: Path | None = None
    flows_vintage: int | None = None
    geography: int | None = None
    #: Largest share of workers whose commune matches no EPCI after harmonisation
    #: before a run fails: more means the inputs are in different geographies.
    max_unmatched_share: float = 0.005
    geographies: dict[str, int] = field(default_factory=dict, metadata={"toml": False})

    def check(self, where: str) -> None:
        """Refuse a gate on unmatched workers outside [0, 1]."""
        if not 0.0 <= self.max_unmatched_share <= 1.0:
            msg = (
                f"{where} max_unmatched_share must lie in [0, 1], "
                f"got {self.max_unmatched_share:g}"
            )
            raise ConfigError(msg)
