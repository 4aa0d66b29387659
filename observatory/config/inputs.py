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
    "aav",
)


#: The point of a commune where flow lines end and distances start
#: (``[inputs] commune_points``): a point inside its polygon, or the mean of its
#: inhabitants' places on the population grid (observatory.land.points).
COMMUNE_POINTS = ("representative", "population_weighted")


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
    #: INSEE's attraction areas (AAV 2020) by commune, in their own geography
    #: (observatory.readers.aav); harmonised through ``commune_passage``.
    aav: Path | SourceRef | None = None
    fd_vintage: int | None = None
    communes_layer: str | None = None
    epci_list: Path | None = None
    flows_vintage: int | None = None
    geography: int | None = None
    #: Largest share of workers whose commune matches no EPCI after harmonisation
    #: before a run fails: more means the inputs are in different geographies.
    max_unmatched_share: float = 0.005
    #: Add up the workers of a (CODGEO, DCLT) pair written on several lines of a
    #: base flux file, with a warning, rather than refuse the file: INSEE's files
    #: have one line per pair, so repeats mean files concatenated upstream.
    allow_duplicate_pairs: bool = False
    #: Keep every repair of an invalid commune polygon whatever it does to the
    #: area; otherwise a repair changing an area by more than
    #: ``max_repair_area_change`` (a share of it) stops the run.
    repair_geometry: bool = False
    max_repair_area_change: float = 0.01
    geographies: dict[str, int] = field(default_factory=dict, metadata={"toml": False})
    #: Land rasters (observatory.land): one file, or several tiles of one grid.
    land_cover: Path | SourceRef | tuple[Path | SourceRef, ...] | None = None
    #: The class table of ``land_cover`` (``configs/land/*.toml``): codes -> groups.
    land_cover_classes: Path | None = None
    #: Year of ``land_cover``; default: a year of the table's ``vintages`` in its name.
    land_cover_vintage: int | None = None
    built_up: Path | SourceRef | tuple[Path | SourceRef, ...] | None = None
    built_up_previous: Path | SourceRef | tuple[Path | SourceRef, ...] | None = None
    population_grid: Path | SourceRef | tuple[Path | SourceRef, ...] | None = None
    population_grid_previous: Path | SourceRef | tuple[Path | SourceRef, ...] | None = (
        None
    )
    #: GHSL epochs of ``built_up`` and ``built_up_previous`` (and of the population
    #: grids beside them); default: read from the GHSL file names (``_E2020_``).
    built_up_epochs: tuple[int, ...] = ()
    #: Where flow lines end and distances start: each commune's representative
    #: point, or its population-weighted centre (needs ``population_grid``).
    commune_points: str = "representative"

    def check(self, where: str) -> None:
        """Refuse a gate on unmatched workers, or a bound on repairs, outside [0, 1]."""
        if not 0.0 <= self.max_unmatched_share <= 1.0:
            msg = (
                f"{where} max_unmatched_share must lie in [0, 1], "
                f"got {self.max_unmatched_share:g}"
            )
            raise ConfigError(msg)
        if not 0.0 <= self.max_repair_area_change <= 1.0:
            msg = (
                f"{where} max_repair_area_change must lie in [0, 1], "
                f"got {self.max_repair_area_change:g}"
            )
            raise ConfigError(msg)
        _check_land(self, where)


def _check_land(inputs: InputsSection, where: str) -> None:
    """Refuse land rasters missing what they need (observatory.land)."""
    needs = {
        "land_cover_classes": ("land_cover", inputs.land_cover_classes),
        "land_cover_vintage": ("land_cover", inputs.land_cover_vintage),
        "built_up_previous": ("built_up", inputs.built_up_previous),
        "population_grid_previous": (
            "population_grid",
            inputs.population_grid_previous,
        ),
        "built_up_epochs": ("built_up", inputs.built_up_epochs or None),
    }
    for key, (needed, value) in needs.items():
        if value is not None and getattr(inputs, needed) is None:
            msg = f"{where} {key} is set but {needed} is not"
            raise ConfigError(msg)
    if inputs.commune_points not in COMMUNE_POINTS:
        msg = f"{where} commune_points must be one of {list(COMMUNE_POINTS)}, got {inputs.commune_points!r}"
        raise ConfigError(msg)
    weighted = inputs.commune_points == "population_weighted"
    if weighted and inputs.population_grid is None:
        msg = f'{where} commune_points = "population_weighted" needs population_grid'
        raise ConfigError(msg)
    if inputs.land_cover is not None and inputs.land_cover_classes is None:
        msg = (
            f"{where} land_cover needs land_cover_classes, its class table "
            '(e.g. "configs/land/oso-2018.toml")'
        )
        raise ConfigError(msg)
    epochs = inputs.built_up_epochs
    if epochs and len(epochs) != 1 + (inputs.built_up_previous is not None):
        msg = (
            f"{where} built_up_epochs must give one epoch per built-up input "
            f"(built_up, then built_up_previous), got {list(epochs)}"
        )
        raise ConfigError(msg)
    if len(set(epochs)) != len(epochs) or not all(
        type(e) is int and 1975 <= e <= 2030 for e in epochs
    ):
        msg = f"{where} built_up_epochs must be distinct GHSL epochs in 1975-2030, got {list(epochs)}"
        raise ConfigError(msg)
