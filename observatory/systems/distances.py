"""Commuting distances: straight lines between communes, and person-km.

Distances are **straight lines** between representative points of communes in a
projected CRS (Lambert-93, EPSG:2154, in mainland France), not road distances;
within one commune, the mean distance between two points of a disc of its area.
"""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from observatory.core.errors import MAX_LISTED, DataError
from observatory.geography import TARGET_CRS, rollup_arrondissements
from observatory.systems.modes import FLOW_KEYS, require_columns

#: Mean distance between two points drawn uniformly in a disc of radius 1.
INTRA_COMMUNE_FACTOR = 128 / (45 * math.pi)


#: What :func:`distance_km` takes as points.
Points = gpd.GeoSeries | gpd.GeoDataFrame | pd.DataFrame


def commune_points(
    communes: gpd.GeoDataFrame,
    code_column: str = "commune_code",
    crs: str | None = TARGET_CRS,
) -> pd.DataFrame:
    """Return the representative point and area of each commune, in EPSG:2154.

    Representative points lie inside the polygon (a centroid may not). The frame
    returned is what :func:`distance_km` and :func:`person_km` take as ``points``.

    Parameters
    ----------
    communes
        Polygons with their code, e.g. from
        :func:`observatory.readers.communes.read_communes`.
    code_column
        Column holding the commune code.
    crs
        Projected CRS of the points: Lambert-93 by default, the official CRS of
        an overseas department for its communes; None keeps the frame's.

    Returns
    -------
    pandas.DataFrame
        Index: commune code; columns ``x``, ``y`` (metres) and ``area_km2``.
    """
    return _as_points(communes, code_column, crs or communes.crs)


def _as_points(
    points: Points, code_column: str = "commune_code", crs: Any = TARGET_CRS
) -> pd.DataFrame:
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        frame = _geometry_points(points, code_column, crs)
    else:
        require_columns(points, ("x", "y"), "points")
        columns = ["x", "y"] + (["area_km2"] if "area_km2" in points.columns else [])
        frame = points.loc[:, columns].astype("float64")
        frame.index = pd.Index(points.index.astype("string"))
    if frame.index.duplicated().any():
        dup = sorted(set(frame.index[frame.index.duplicated()]))
        msg = f"points: commune codes must be unique; duplicated {dup[:MAX_LISTED]}"
        raise DataError(msg)
    return frame


def _geometry_points(
    points: gpd.GeoSeries | gpd.GeoDataFrame, code_column: str, crs: Any
) -> pd.DataFrame:
    """Points (and areas, for polygons) of a GeoSeries or GeoDataFrame, in ``crs``."""
    if points.crs is None:
        msg = f"points: no CRS; expected {TARGET_CRS} (Lambert-93) or any CRS to reproject from"
        raise DataError(msg)
    geo = points.to_crs(crs)
    index = (
        geo[code_column]
        if isinstance(geo, gpd.GeoDataFrame) and code_column in geo.columns
        else geo.index.to_series()
    )
    geometry = geo.geometry
    frame = pd.DataFrame(index=pd.Index(index.astype("string").to_numpy()))
    if not (geometry.geom_type == "Point").all():
        frame["area_km2"] = geometry.area.to_numpy() / 1e6
        geometry = geometry.representative_point()
    frame.insert(0, "x", geometry.x.to_numpy())
    frame.insert(1, "y", geometry.y.to_numpy())
    return frame


def _point_keys(codes: pd.Series, known: pd.Index) -> pd.Series:
    # A code with no point of its own (an arrondissement when only communes are
    # given) uses its commune's point.
    codes = codes.astype("string")
    rolled = rollup_arrondissements(codes)
    keys = codes.where(codes.isin(known).fillna(False))
    return keys.fillna(rolled.where(rolled.isin(known).fillna(False)))


def _coordinate(keys: pd.Series, column: pd.Series) -> np.ndarray:
    """Values of ``column`` (indexed by code) at ``keys``; NaN where none."""
    return keys.map(column).to_numpy(dtype="float64", na_value=np.nan)


def distance_km(origin: pd.Series, destination: pd.Series, points: Points) -> pd.Series:
    """Straight-line distance between residence and work communes, in km.

    Parameters
    ----------
    origin, destination
        Commune codes, aligned.
    points
        Representative points by commune code: a frame from
        :func:`commune_points` (``x``, ``y`` in EPSG:2154 metres, optional
        ``area_km2``), any frame with ``x``, ``y`` columns in EPSG:2154 indexed by
        code, or a GeoSeries/GeoDataFrame (reprojected to EPSG:2154; polygons
        give their representative point and area).

    Returns
    -------
    pandas.Series
        ``distance_km``, same index as ``origin``: the straight line between the
        two points (not a road distance). For a pair within one commune, the
        mean straight-line distance between two random points of a disc of the
        commune's area, ``128 / (45 π) · sqrt(area / π)`` (≈ 0.51 km for
        1 km²), when ``points`` has ``area_km2``; 0 otherwise. An arrondissement
        without a point of its own uses its commune's; codes without a point
        (abroad, unknown) give NaN.
    """
    pts = _as_points(points)
    keys_o = _point_keys(origin, pts.index)
    keys_d = _point_keys(destination, pts.index)
    xo, yo = _coordinate(keys_o, pts["x"]), _coordinate(keys_o, pts["y"])
    xd, yd = _coordinate(keys_d, pts["x"]), _coordinate(keys_d, pts["y"])
    km = np.hypot(xd - xo, yd - yo) / 1000.0
    same = (keys_o == keys_d).fillna(False).to_numpy(dtype=bool)
    if "area_km2" in pts.columns:
        area = _coordinate(keys_o, pts["area_km2"])
        intra = INTRA_COMMUNE_FACTOR * np.sqrt(area / math.pi)
    else:
        intra = np.zeros(len(km))
    km = np.where(same, intra, km)
    return pd.Series(km, index=origin.index, name="distance_km", dtype="float64")


def person_km(flows_by_mode: pd.DataFrame, points: Points) -> pd.DataFrame:
    """Add straight-line ``distance_km`` and ``person_km`` to flows by mode.

    Parameters
    ----------
    flows_by_mode
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers``.
    points
        As for :func:`distance_km`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``distance_km`` (straight line, see :func:`distance_km`; 0
        for mode ``none``: no journey) and ``person_km = workers * distance_km``,
        one way, per commuting day. NaN where a commune has no point (abroad).
    """
    require_columns(flows_by_mode, (*FLOW_KEYS, "workers"), "flows_by_mode")
    out = flows_by_mode.copy()
    km = distance_km(out["origin_commune"], out["destination_commune"], points)
    no_journey = (out["mode"].astype("string") == "none").fillna(False).to_numpy()
    out["distance_km"] = np.where(no_journey, 0.0, km.to_numpy())
    out["person_km"] = out["workers"].to_numpy(dtype="float64") * out["distance_km"]
    return out
