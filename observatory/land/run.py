"""Land indicators of a run: the one entry point the pipeline calls.

:func:`land_indicators` counts each land raster's pixels per commune (out of
core, :mod:`observatory.land.zonal`), sums the counts per EPCI and per crown,
and returns every table the layers need with one provenance record per raster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from observatory.core.errors import DataError
from observatory.land.classes import GROUPS, OTHER
from observatory.land.crowns import crown_land, metropole_land_columns
from observatory.land.grid import describe
from observatory.land.indicators import (
    built_up_indicators,
    land_cover_areas,
    land_shares,
    quantity_totals,
    sum_by,
)
from observatory.land.inputs import LandRasters
from observatory.land.points import population_weighted_points
from observatory.land.zonal import ZonalCounts, zonal_counts

logger = logging.getLogger(__name__)

#: How pixels are attributed to polygons (docs/indicators.md, "Land (issue 14)").
COUNTING_RULE = "pixel centre"


@dataclass(frozen=True, slots=True)
class RasterProvenance:
    """What the manifest says of one land raster."""

    role: str
    product: str
    #: land-cover year, or GHSL epoch
    vintage: int | None
    files: tuple[str, ...]
    crs: str
    pixel_size: float
    #: share of the communes' area the raster covers with data
    coverage: float
    nomenclature: str = ""
    counting_rule: str = COUNTING_RULE
    #: the file says it is synthetic (the demo's rasters)
    synthetic: bool = False

    def record(self) -> dict[str, Any]:
        """Return the manifest's entry (JSON-ready)."""
        return {
            "role": self.role,
            "product": self.product,
            "vintage": self.vintage,
            "files": list(self.files),
            "crs": self.crs,
            "pixel_size": self.pixel_size,
            "coverage": round(self.coverage, 6),
            "nomenclature": self.nomenclature,
            "counting_rule": self.counting_rule,
            "synthetic": self.synthetic,
        }


@dataclass(frozen=True, slots=True)
class LandIndicators:
    """The land tables of a run.

    ``communes`` and ``epci`` are indexed by commune and EPCI code (additive
    areas and sums, then the indicators of docs/indicators.md); ``crowns`` has
    one row per (métropole, crown), ``metropoles`` one per métropole;
    ``centres`` the population-weighted commune points (None without a
    population grid).
    """

    communes: pd.DataFrame
    epci: pd.DataFrame
    crowns: pd.DataFrame
    metropoles: pd.DataFrame
    centres: pd.DataFrame | None
    provenance: tuple[RasterProvenance, ...]


def land_indicators(
    communes: gpd.GeoDataFrame,
    crowns: pd.DataFrame,
    rasters: LandRasters,
    *,
    scheduler: str | None = None,
    progress: bool = False,
) -> LandIndicators:
    """Compute the land indicators of every commune, EPCI, métropole and crown.

    Parameters
    ----------
    communes
        ``commune_code``, ``epci_code`` and polygons, in any projected CRS
        (e.g. the mainland's communes in EPSG:2154; call once per territory).
    crowns
        ``metropole_code``, ``epci_code``, ``crown`` (``Territories.crowns``).
    rasters
        :meth:`LandRasters.from_config` of the run's config and resolved files.
    scheduler, progress
        Where the counting tasks run (``[compute] scheduler``).

    Raises
    ------
    DataError
        Unreadable rasters, tiles of different grids, pixel codes the class
        table does not know, communes without a code or an EPCI.
    """
    _check_communes(communes)
    geometry = gpd.GeoSeries(communes.geometry.to_numpy(), crs=communes.crs)
    codes = communes["commune_code"].reset_index(drop=True)
    frames: list[pd.DataFrame] = []
    provenance: list[RasterProvenance] = []
    counts: dict[str, ZonalCounts] = {}
    for role in (r for r in _ROLES if getattr(rasters, r)):
        paths = getattr(rasters, role)
        logger.info(
            "land: %s, %d file(s), %d communes", role, len(paths), len(geometry)
        )
        counted = zonal_counts(
            geometry,
            paths,
            quantity=role != "land_cover",
            scheduler=scheduler,
            progress=progress,
        )
        counts[role] = counted
        frame = _commune_frame(role, counted, rasters)
        frames.append(frame)
        provenance.append(_provenance(role, frame, rasters, counted))
    table = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=geometry.index)
    table["area_m2"] = geometry.area.to_numpy()
    table.index = pd.Index(codes.to_numpy(), name="commune_code")
    epci_keys = communes.set_index("commune_code")["epci_code"]
    summed = sum_by(table, epci_keys)
    summed.index.name = "epci_code"
    epci = _epci_indicators(summed, rasters)
    groups = rasters.classes.groups_present() if rasters.classes else GROUPS
    crown_table = crown_land(summed, crowns, groups)
    centres = (
        population_weighted_points(
            communes.reset_index(drop=True), counts["population_grid"]
        )
        if "population_grid" in counts
        else None
    )
    return LandIndicators(
        communes=table,
        epci=epci,
        crowns=crown_table,
        metropoles=metropole_land_columns(crown_table),
        centres=centres,
        provenance=tuple(provenance),
    )


_ROLES = (
    "land_cover",
    "built_up",
    "built_up_previous",
    "population_grid",
    "population_grid_previous",
)

#: The name of each quantity raster's sum in the communes' table.
_QUANTITY = {
    "built_up": "built_up",
    "built_up_previous": "built_up_previous",
    "population_grid": "population",
    "population_grid_previous": "population_previous",
}


def _check_communes(communes: gpd.GeoDataFrame) -> None:
    missing = [c for c in ("commune_code", "epci_code") if c not in communes.columns]
    if missing:
        msg = f"land: the communes need columns {missing} (commune_code, epci_code)"
        raise DataError(msg)
    if communes["commune_code"].duplicated().any():
        repeated = communes.loc[communes["commune_code"].duplicated(), "commune_code"]
        msg = (
            f"land: commune codes must be unique; repeated {sorted(set(repeated))[:5]}"
        )
        raise DataError(msg)


def _commune_frame(
    role: str, counted: ZonalCounts, rasters: LandRasters
) -> pd.DataFrame:
    # Each raster's coverage is measured against the polygon's area in its own CRS.
    if role == "land_cover":
        assert rasters.classes is not None  # LandRasters.from_config loads it
        frame = land_cover_areas(counted, rasters.classes)
        return frame.rename(columns={"area_m2": "land_cover_area_m2"})
    name = _QUANTITY[role]
    frame = quantity_totals(counted, name).rename(
        columns={"area_m2": f"{name}_area_m2"}
    )
    return frame.drop(
        columns=[c for c in frame if str(c).endswith(("_sum_x", "_sum_y"))]
    )


def _epci_indicators(summed: pd.DataFrame, rasters: LandRasters) -> pd.DataFrame:
    parts = []
    if rasters.land_cover:
        parts.append(land_shares(summed, rasters.classes))
    if any(c.startswith(("built_up", "population")) for c in summed.columns):
        parts.append(built_up_indicators(summed))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=summed.index)


def _provenance(
    role: str, frame: pd.DataFrame, rasters: LandRasters, counted: ZonalCounts
) -> RasterProvenance:
    if role == "land_cover":
        area = float(frame["land_cover_area_m2"].sum())
        covered = float(frame["covered_m2"].sum())
        table = rasters.classes
        product = table.product if table is not None else ""
        nomenclature = table.nomenclature if table is not None else ""
        vintage = rasters.land_cover_vintage
    else:
        area = float(frame[f"{_QUANTITY[role]}_area_m2"].sum())
        covered = float(frame[f"{_QUANTITY[role]}_covered_m2"].sum())
        product = "GHS-BUILT-S" if role.startswith("built_up") else "GHS-POP"
        nomenclature = ""
        vintage = rasters.epochs[1 if role.endswith("_previous") else 0]
    info = describe(counted.grids)
    return RasterProvenance(
        role=role,
        product=product,
        vintage=vintage,
        files=tuple(info["files"]),
        crs=info["crs"],
        pixel_size=float(info["pixel_size"]),
        coverage=min(1.0, covered / area) if area > 0 else float(np.nan),
        nomenclature=nomenclature,
        synthetic=bool(info["synthetic"]),
    )


__all__ = ["GROUPS", "OTHER", "LandIndicators", "RasterProvenance", "land_indicators"]
