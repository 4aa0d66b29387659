"""Put the land indicators (issue 14) on the layers: pure functions on (Geo)DataFrames.

The columns are :mod:`observatory.layers.land_schemas`'s: every row of
``epci_indicators`` gets its EPCI's land, every row of ``metropoles`` its
crowns' (null without land rasters, or where a raster does not reach). With
``[inputs] commune_points = "population_weighted"`` the flow lines are drawn
between the EPCI's population-weighted centres (:func:`lines_between`).
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.layers.land_schemas import EPCI_LAND_FIELDS, METROPOLE_LAND_FIELDS

#: (land_cover_vintage, ghsl_epoch, ghsl_epoch_previous) of a run.
LandVintages = tuple[int | None, int | None, int | None]

_VINTAGE_COLUMNS = ("land_cover_vintage", "ghsl_epoch", "ghsl_epoch_previous")


def _with_columns(
    layer: gpd.GeoDataFrame,
    values: pd.DataFrame | None,
    key: str,
    names: Sequence[str],
    vintages: LandVintages | None,
) -> gpd.GeoDataFrame:
    # Join ``values`` (indexed by ``key``) on the layer's rows; missing: null.
    out = layer.copy()
    table = values if values is not None else pd.DataFrame()
    wanted = [n for n in names if n not in _VINTAGE_COLUMNS]
    joined = table.reindex(columns=wanted).reindex(out[key].astype(str).to_numpy())
    for name in wanted:
        out[name] = joined[name].astype(float).to_numpy()
    given = vintages if vintages is not None else (None, None, None)
    for name, year in zip(_VINTAGE_COLUMNS, given, strict=True):
        if name in names:
            out[name] = pd.array(
                [year] * len(out) if year is not None else [pd.NA] * len(out),
                dtype="Int32",
            )
    return out


def with_epci_land_columns(
    epci: gpd.GeoDataFrame,
    land: pd.DataFrame | None,
    vintages: LandVintages | None = None,
) -> gpd.GeoDataFrame:
    """Give every ``epci_indicators`` row its EPCI's land indicators.

    Parameters
    ----------
    epci
        The layer (one row per métropole and EPCI).
    land
        Indexed by EPCI code: the columns of
        :data:`~observatory.layers.land_schemas.EPCI_LAND_FIELDS` it has
        (:attr:`observatory.land.run.LandIndicators.epci`); None without land.
    vintages
        The land cover's year and the GHSL epochs (None without land).
    """
    names = [f.name for f in EPCI_LAND_FIELDS]
    if land is not None:
        land = land.set_axis(land.index.astype(str))
    return _with_columns(epci, land, "epci_code", names, vintages)


def with_metropole_land_columns(
    metropoles: gpd.GeoDataFrame,
    land: pd.DataFrame | None,
    vintages: LandVintages | None = None,
) -> gpd.GeoDataFrame:
    """Give every ``metropoles`` row the land of its métropole and crowns.

    ``land`` has ``metropole_code`` and the columns of
    :func:`observatory.land.crowns.metropole_land_columns`; None without land.
    """
    names = [f.name for f in METROPOLE_LAND_FIELDS]
    table = None
    if land is not None and "metropole_code" in land:
        table = land.set_index(land["metropole_code"].astype(str))
    return _with_columns(metropoles, table, "metropole_code", names, vintages)


def lines_between(
    lines: gpd.GeoDataFrame, points: pd.DataFrame | None
) -> gpd.GeoDataFrame:
    """Redraw each line from its origin's point to its destination's.

    Parameters
    ----------
    lines
        A layer of lines with ``origin_code`` and ``destination_code`` (``flows``,
        ``dominant_flows``), in the CRS of ``points``.
    points
        Indexed by EPCI code: ``x``, ``y`` (e.g. population-weighted centres,
        :func:`observatory.land.points.weighted_group_points`). A line one of
        whose ends has no point keeps its geometry.
    """
    if points is None or not len(lines):
        return lines
    xy = points[["x", "y"]].astype(float)
    start = xy.reindex(lines["origin_code"].astype(str).to_numpy()).to_numpy()
    end = xy.reindex(lines["destination_code"].astype(str).to_numpy()).to_numpy()
    known = ~(np.isnan(start).any(axis=1) | np.isnan(end).any(axis=1))
    geometry = np.asarray(lines.geometry.values, dtype=object).copy()
    if known.any():
        geometry[known] = shapely.linestrings(
            np.stack([start[known], end[known]], axis=1)
        )
    return gpd.GeoDataFrame(
        lines.drop(columns=lines.geometry.name),
        geometry=geometry,
        crs=lines.crs,
    )
