"""Which EPCI share a land border, measured with a tolerance (pure functions).

Two EPCI are neighbours when the part of the boundary of one that lies within
``tolerance_m`` of the other is at least ``min_shared_border_m`` long, measured
both ways (the shorter counts): the *tolerance measure*, a buffer of one polygon
intersected with the boundary of the other, costly on a thousand detailed
polygons.

Most pairs are settled without it. EPCI dissolved from a clean commune coverage
(ADMIN EXPRESS) share their borders edge for edge: the same segments, with the
same vertices, lie on both boundaries. Those *coincident* segments lie within
any tolerance of both polygons, so their length never exceeds the tolerance
measure: a pair whose coincident border is longer than the minimum (by
:data:`SETTLED_MARGIN_M`, far above the rounding of an overlay) is a pair of
neighbours whatever the measure says. The measure is taken only for the other
pairs within the tolerance of each other, so the neighbours found are those the
measure alone would find; where the communes are not a clean coverage, fewer
segments coincide and more pairs are measured.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.core.errors import DataError

#: How much longer than the minimum a coincident border must be to settle a
#: pair without the tolerance measure (metres).
SETTLED_MARGIN_M = 1.0


def epci_adjacency(
    epci: gpd.GeoDataFrame,
    tolerance_m: float = 100.0,
    min_shared_border_m: float = 500.0,
) -> pd.DataFrame:
    """List pairs of EPCI sharing a land border.

    Parameters
    ----------
    epci
        Polygons in a metric CRS, with ``epci_code``.
    tolerance_m
        Distance under which two boundaries are taken as the same line.
    min_shared_border_m
        Shortest shared border that counts; must exceed ``2 * tolerance_m``.

    Returns
    -------
    pandas.DataFrame
        ``epci_code``, ``neighbour_code``, ``shared_border_m``, both directions.
        ``shared_border_m`` is the tolerance measure, or, for a pair settled by
        its coincident segments, their length (a lower bound of the measure).
    """
    if epci.crs is None or not epci.crs.is_projected:
        msg = "epci_adjacency needs polygons in a projected (metric) CRS"
        raise DataError(msg)
    geoms = np.asarray(epci.geometry.values)
    left, right = _candidates(geoms, tolerance_m)
    shared = coincident_lengths(geoms, left, right)
    unsettled = shared < min_shared_border_m + SETTLED_MARGIN_M
    shared[unsettled] = tolerance_lengths(
        geoms, left[unsettled], right[unsettled], tolerance_m
    )
    border = shared >= min_shared_border_m
    codes = epci["epci_code"].to_numpy()
    left, right, shared = left[border], right[border], shared[border]
    pairs = pd.DataFrame(
        {
            "epci_code": np.concatenate([codes[left], codes[right]]),
            "neighbour_code": np.concatenate([codes[right], codes[left]]),
            "shared_border_m": np.concatenate([shared, shared]),
        }
    )
    pairs[["epci_code", "neighbour_code"]] = pairs[
        ["epci_code", "neighbour_code"]
    ].astype("string")
    return pairs.sort_values(["epci_code", "neighbour_code"], ignore_index=True)


def _candidates(geoms: np.ndarray, tolerance_m: float) -> tuple[np.ndarray, np.ndarray]:
    # Pairs (i < j) whose bounding boxes come within the tolerance: a superset of
    # the pairs within the tolerance of each other, found from the boxes alone.
    bounds = shapely.bounds(geoms)
    grown = shapely.box(
        bounds[:, 0] - tolerance_m,
        bounds[:, 1] - tolerance_m,
        bounds[:, 2] + tolerance_m,
        bounds[:, 3] + tolerance_m,
    )
    left, right = shapely.STRtree(geoms).query(grown)
    keep = left < right
    return left[keep], right[keep]


def coincident_lengths(
    geoms: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Return the length of the segments the boundaries of each pair share exactly.

    A segment counts for a pair when it joins the same two vertices (same
    coordinates) in a ring of each polygon and in no third polygon; it is
    counted once. The result never exceeds the length of the intersection of
    the two boundaries.
    """
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    if len(coords) < 2:
        return np.zeros(len(left))
    vertex, _ = pd.factorize(coords[:, 0] + 1j * coords[:, 1])
    n_vertices, n = int(vertex.max()) + 1, len(geoms)
    follows = vertex_ring[1:] == vertex_ring[:-1]  # consecutive in one ring
    a, z = vertex[:-1][follows], vertex[1:][follows]
    owner = part_of[ring_of[vertex_ring[:-1][follows]]]
    segment = np.minimum(a, z).astype(np.int64) * n_vertices + np.maximum(a, z)
    # Each (segment, polygon) once, sorted by segment, then polygon.
    distinct = np.unique(segment * n + owner)
    segment, owner = distinct // n, distinct % n
    starts = np.flatnonzero(np.append(True, segment[1:] != segment[:-1]))
    two = starts[np.diff(np.append(starts, len(segment))) == 2]
    xy = np.empty((n_vertices, 2))
    xy[vertex] = coords
    ends = xy[segment[two] // n_vertices] - xy[segment[two] % n_vertices]
    pair_keys, where = np.unique(owner[two] * n + owner[two + 1], return_inverse=True)
    lengths = pd.Series(
        np.bincount(where, weights=np.hypot(ends[:, 0], ends[:, 1])), index=pair_keys
    )
    wanted = np.minimum(left, right).astype(np.int64) * n + np.maximum(left, right)
    return lengths.reindex(wanted).fillna(0.0).to_numpy(copy=True)


def _within(
    geoms: np.ndarray, left: np.ndarray, right: np.ndarray, distance: float
) -> np.ndarray:
    # Prepared geometries answer several times faster; those prepared here are
    # released after, so the caller's geometries are left as they came.
    ours = np.unique(left)
    ours = ours[~shapely.is_prepared(geoms[ours])]
    shapely.prepare(geoms[ours])
    try:
        return np.asarray(shapely.dwithin(geoms[left], geoms[right], distance))
    finally:
        shapely.destroy_prepared(geoms[ours])


def tolerance_lengths(
    geoms: np.ndarray, left: np.ndarray, right: np.ndarray, tolerance_m: float
) -> np.ndarray:
    """Return the tolerance measure of each pair: the shorter of both ways.

    The boundary of one polygon within ``tolerance_m`` of the other (inside its
    buffer of ``tolerance_m``, four segments a quarter circle); 0 for a pair
    farther apart than the tolerance, whose measure is empty.
    """
    out = np.zeros(len(left))
    if len(left) == 0:
        return out
    near = _within(geoms, left, right, tolerance_m)
    left, right = left[near], right[near]
    used = np.unique(np.concatenate([left, right]))
    boundary = np.empty(len(geoms), dtype=object)
    buffer = np.empty(len(geoms), dtype=object)
    boundary[used] = shapely.boundary(geoms[used])
    buffer[used] = shapely.buffer(geoms[used], tolerance_m, quad_segs=4)
    out[near] = np.minimum(
        shapely.length(shapely.intersection(boundary[left], buffer[right])),
        shapely.length(shapely.intersection(boundary[right], buffer[left])),
    )
    return out
