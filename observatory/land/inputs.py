"""The land rasters of a run: files, class table, vintage and epochs, checked.

:meth:`LandRasters.from_config` turns ``[inputs]`` (its land keys) and the
local files each key resolved to into one frozen record, deciding the
land-cover vintage and the GHSL epochs, before any pixel is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from observatory.config.inputs import InputsSection
from observatory.core.errors import ConfigError
from observatory.land.classes import ClassTable, load_class_table
from observatory.land.grid import ghsl_epoch, year_in_name
from observatory.sources.inputs import LAND_ROLES

#: The ``[inputs]`` keys of land rasters, in the order they are processed (the
#: roles :mod:`observatory.sources.inputs` resolves to local files).
RASTER_ROLES = LAND_ROLES


@dataclass(frozen=True, slots=True)
class LandRasters:
    """The land rasters of a run (each a file or its tiles) and what they are."""

    land_cover: tuple[Path, ...] = ()
    classes: ClassTable | None = None
    land_cover_vintage: int | None = None
    built_up: tuple[Path, ...] = ()
    built_up_previous: tuple[Path, ...] = ()
    population_grid: tuple[Path, ...] = ()
    population_grid_previous: tuple[Path, ...] = ()
    #: GHSL epoch of (built_up, built_up_previous) and the grids beside them
    epochs: tuple[int | None, int | None] = (None, None)

    @property
    def empty(self) -> bool:
        """True when no land raster is given: the run is exactly as without land."""
        return not any(getattr(self, role) for role in RASTER_ROLES)

    @classmethod
    def from_config(
        cls, inputs: InputsSection, files: Mapping[str, Sequence[Path]]
    ) -> LandRasters:
        """Build the record from ``[inputs]`` and the files its land keys resolved to.

        Parameters
        ----------
        inputs
            The config's ``[inputs]``.
        files
            ``{role: local files}`` for the roles of :data:`RASTER_ROLES` the
            config names (a catalogue source resolved to its extracted file, a
            list of tiles to its files, in order).

        Raises
        ------
        ConfigError
            No vintage for the land cover (neither ``land_cover_vintage`` nor a
            year of the class table's vintages in the file name), a vintage the
            table is not for, or GHSL epochs that cannot be told or disagree.
        """
        paths = {
            role: tuple(Path(p) for p in files.get(role, ())) for role in RASTER_ROLES
        }
        table = (
            load_class_table(inputs.land_cover_classes)
            if inputs.land_cover_classes is not None and paths["land_cover"]
            else None
        )
        vintage = (
            _land_cover_vintage(paths["land_cover"], table, inputs.land_cover_vintage)
            if table is not None
            else None
        )
        return cls(
            land_cover=paths["land_cover"],
            classes=table,
            land_cover_vintage=vintage,
            built_up=paths["built_up"],
            built_up_previous=paths["built_up_previous"],
            population_grid=paths["population_grid"],
            population_grid_previous=paths["population_grid_previous"],
            epochs=_epochs(paths, inputs.built_up_epochs),
        )


def _land_cover_vintage(
    paths: tuple[Path, ...], table: ClassTable, given: int | None
) -> int:
    """Return the land cover's year: given, or a year of the table in the name."""
    vintage = given if given is not None else year_in_name(paths, table.vintages)
    if vintage is None:
        msg = (
            f"{paths[0]}: cannot tell the land cover's year from its name; set "
            f"[inputs] land_cover_vintage (the class table {table.path.name} is for "
            f"{list(table.vintages)})"
        )
        raise ConfigError(msg, path=paths[0])
    if vintage not in table.vintages:
        msg = (
            f"{paths[0]}: land cover of {vintage}, but the class table "
            f"{table.path} is for {list(table.vintages)} ({table.nomenclature})"
        )
        raise ConfigError(msg, path=paths[0])
    return vintage


def _epochs(
    paths: Mapping[str, tuple[Path, ...]], given: tuple[int, ...]
) -> tuple[int | None, int | None]:
    """Return the GHSL epochs (current, previous), checking the grids agree."""
    out: list[int | None] = []
    for built, people, k in (
        ("built_up", "population_grid", 0),
        ("built_up_previous", "population_grid_previous", 1),
    ):
        named = {
            role: ghsl_epoch(paths[role]) for role in (built, people) if paths[role]
        }
        epoch = given[k] if k < len(given) else None
        for role, found in named.items():
            if found is not None and epoch is not None and found != epoch:
                msg = (
                    f"{paths[role][0]}: GHSL epoch {found} in its name, but "
                    f"{epoch} expected for [inputs] {role}"
                )
                raise ConfigError(msg, path=paths[role][0])
            epoch = epoch if epoch is not None else found
        if named and epoch is None:
            role = next(iter(named))
            msg = (
                f"{paths[role][0]}: no GHSL epoch in its name (..._E2020_...); set "
                "[inputs] built_up_epochs = [current, previous]"
            )
            raise ConfigError(msg, path=paths[role][0])
        out.append(epoch)
    return out[0], out[1]
