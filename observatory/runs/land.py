"""The stage ``land``: land complementarity of the systems from rasters (issue 14).

When ``[inputs]`` names land rasters (``land_cover``, ``built_up``,
``population_grid`` and their earlier epochs), :func:`land_stage` counts their
pixels per commune (:func:`observatory.land.run.land_indicators`, out of core)
in every territory with a system, each in its own CRS, and sums them per EPCI
and per crown. OSO maps mainland France only: overseas communes lie outside it,
so their land-cover columns stay empty (coverage 0, a warning says so); GHSL is
global and covers them when the tiles given do.

:func:`with_land_layers` puts the columns on ``epci_indicators`` and
``metropoles`` (null without land rasters: a run without them is otherwise
unchanged) and, with ``[inputs] commune_points = "population_weighted"``, draws
the flow lines between population-weighted centres; :func:`distance_points`
gives the same centres to the distances of the detailed file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from observatory.config import Config
from observatory.geography import TERRITORY_NAMES
from observatory.land.inputs import RASTER_ROLES, LandRasters
from observatory.land.points import weighted_group_points
from observatory.land.run import LandIndicators, land_indicators
from observatory.layers.land_layers import (
    LandVintages,
    lines_between,
    with_epci_land_columns,
    with_metropole_land_columns,
)
from observatory.runs.manifest import RunRecord
from observatory.runs.reading import InputTables
from observatory.runs.stages import RunLayers, Territories
from observatory.sources.inputs import ResolvedInput, role_inputs
from observatory.systems.distances import commune_points

logger = logging.getLogger(__name__)

#: ``[inputs] commune_points`` drawing lines and distances from the population grid.
POPULATION_WEIGHTED = "population_weighted"


@dataclass(frozen=True, slots=True)
class RunLand:
    """The land tables of each territory with a system, and what the manifest says."""

    rasters: LandRasters
    territories: dict[str, LandIndicators]
    commune_points: str
    report: dict[str, Any]
    warnings: list[str]

    @property
    def vintages(self) -> LandVintages:
        """The land cover's year and the GHSL epochs (current, earlier)."""
        return (self.rasters.land_cover_vintage, *self.rasters.epochs)

    def recorded(self, record: RunRecord) -> RunRecord:
        """Return the run's record with this stage's report and warnings."""
        return replace(
            record, land=self.report, warnings=[*record.warnings, *self.warnings]
        )

    def epci_points(self, territory: str, tables: InputTables) -> pd.DataFrame | None:
        """Population-weighted centres of the territory's EPCI (None: representative)."""
        land = self.territories.get(territory)
        if self.commune_points != POPULATION_WEIGHTED or land is None:
            return None
        if land.centres is None:
            return None
        epci = tables.composition.composition.set_index("commune_code")["epci_code"]
        keys = epci.reindex(land.centres.index.astype(str)).set_axis(land.centres.index)
        return weighted_group_points(land.centres, keys)


def land_rasters(config: Config, inputs: dict[str, ResolvedInput]) -> LandRasters:
    """Return the run's land rasters (empty without land keys), checked."""
    files = {role: [r.path for r in role_inputs(inputs, role)] for role in RASTER_ROLES}
    return LandRasters.from_config(config.inputs, files)


def _communes(tables: InputTables, territory: str) -> gpd.GeoDataFrame:
    # The territory's communes with their EPCI (communes in no EPCI are left out).
    composition = tables.composition.composition[["commune_code", "epci_code"]]
    communes = tables.communes[territory]
    merged = communes.merge(composition, on="commune_code", how="inner")
    return gpd.GeoDataFrame(merged, geometry=communes.geometry.name, crs=communes.crs)


def _report(
    config: Config, rasters: LandRasters, tables: dict[str, LandIndicators]
) -> dict[str, Any]:
    """Return the manifest's ``land``: rasters, coverage by territory, crowns."""
    records: dict[str, dict[str, Any]] = {}
    for territory, land in tables.items():
        for provenance in land.provenance:
            record = records.setdefault(
                provenance.role, {**provenance.record(), "coverage": {}}
            )
            record["coverage"][territory] = round(provenance.coverage, 6)
    crowns = []
    for land in tables.values():
        for row in land.crowns.to_dict("records"):
            crowns.append(
                {str(k): (None if v != v else v) for k, v in row.items()}  # NaN: null
            )
    classes = rasters.classes
    centres = {
        territory: int(land.centres["population_weighted"].sum())
        for territory, land in tables.items()
        if land.centres is not None
    }
    return {
        "rasters": list(records.values()),
        "class_table": str(classes.path) if classes is not None else None,
        "commune_points": config.inputs.commune_points,
        "population_weighted_communes": centres,
        "crowns": crowns,
    }


def coverage_warnings(tables: dict[str, LandIndicators]) -> list[str]:
    """Say which raster covers none of a territory's communes (OSO overseas)."""
    out = []
    for territory, land in tables.items():
        for provenance in land.provenance:
            if provenance.coverage == 0 or provenance.coverage != provenance.coverage:
                out.append(
                    f"{', '.join(provenance.files)}: the {provenance.role} raster covers "
                    f"none of the communes of {TERRITORY_NAMES.get(territory, territory)} "
                    f"({territory}); their {provenance.role} columns are empty"
                )
    return out


def land_stage(
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    territories: Territories,
) -> RunLand | None:
    """Compute the land indicators of every territory with a system (None: no land keys)."""
    rasters = land_rasters(config, inputs)
    if rasters.empty:
        return None
    crowns = territories.crowns
    computed = {}
    for territory, codes in territories.centres.items():
        computed[territory] = land_indicators(
            _communes(tables, territory),
            crowns[crowns["metropole_code"].isin(codes)],
            rasters,
            scheduler=config.compute.scheduler,
            progress=True,  # shown only on a terminal (observatory.core.compute)
        )
    return RunLand(
        rasters=rasters,
        territories=computed,
        commune_points=config.inputs.commune_points,
        report=_report(config, rasters, computed),
        warnings=coverage_warnings(computed),
    )


def distance_points(land: RunLand | None, tables: InputTables) -> pd.DataFrame | None:
    """Return the points distances start from: None (representative) unless weighted.

    Every commune of every territory, in its territory's CRS; the communes the
    population grid gives inhabitants take their population-weighted centre.
    """
    if land is None or land.commune_points != POPULATION_WEIGHTED:
        return None
    points = pd.concat(
        [commune_points(frame, crs=None) for frame in tables.communes.values()]
    )
    centres = pd.concat(
        [r.centres for r in land.territories.values() if r.centres is not None]
    )
    weighted = centres[centres["population_weighted"].astype(bool)]
    weighted = weighted.set_axis(weighted.index.astype(str))
    xy = weighted[["x", "y"]].reindex(points.index.astype(str)).to_numpy()
    found = ~np.isnan(xy[:, 0])
    points["x"] = np.where(found, xy[:, 0], points["x"].to_numpy())
    points["y"] = np.where(found, xy[:, 1], points["y"].to_numpy())
    return points


def with_land_layers(
    layers: RunLayers, land: RunLand | None, tables: InputTables
) -> RunLayers:
    """Add the land columns to every territory's layers (null without land rasters).

    With population-weighted commune points, the ``flows`` and
    ``dominant_flows`` lines join the EPCI's population-weighted centres.
    """
    out = {}
    for territory, part in layers.territories.items():
        result = land.territories.get(territory) if land is not None else None
        vintages = land.vintages if land is not None else None
        points = land.epci_points(territory, tables) if land is not None else None
        updated = {
            **part,
            "epci_indicators": with_epci_land_columns(
                part["epci_indicators"],
                result.epci if result is not None else None,
                vintages,
            ),
            "metropoles": with_metropole_land_columns(
                part["metropoles"],
                result.metropoles if result is not None else None,
                vintages,
            ),
        }
        for name in ("flows", "dominant_flows"):
            if name in updated:
                updated[name] = lines_between(updated[name], points)
        out[territory] = updated
    return replace(layers, territories=out)


def has_land(inputs: dict[str, ResolvedInput]) -> bool:
    """Tell whether the run's inputs hold a land raster (the stage runs at all)."""
    return any(resolved.role in RASTER_ROLES for resolved in inputs.values())
