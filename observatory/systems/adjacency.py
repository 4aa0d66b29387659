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
    left, right, shared = neighbour_positions(
        metric_polygons(epci), tolerance_m, min_shared_border_m
    )
    codes = epci["epci_code"].to_numpy()
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


def metric_polygons(epci: gpd.GeoDataFrame) -> np.ndarray:
    """Return the polygons of a frame, refusing a CRS not in metres.

    Raises
    ------
    DataError
        When the frame has no CRS or a geographic one.
    """
    if epci.crs is None or not epci.crs.is_projected:
        msg = "epci_adjacency needs polygons in a projected (metric) CRS"
        raise DataError(msg)
    return np.asarray(epci.geometry.values)


def neighbour_positions(
    geoms: np.ndarray, tolerance_m: float, min_shared_border_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the pairs of polygons sharing a land border, by position.

    Parameters
    ----------
    geoms
        Polygons in a metric CRS.
    tolerance_m, min_shared_border_m
        See :func:`epci_adjacency`.

    Returns
    -------
    tuple
        Positions ``left < right`` of each pair, once, and the length of their
        shared border (as :func:`epci_adjacency` gives it).
    """
    left, right = _candidates(geoms, tolerance_m)
    shared = coincident_lengths(geoms, left, right)
    unsettled = shared < min_shared_border_m + SETTLED_MARGIN_M
    shared[unsettled] = tolerance_lengths(
        geoms, left[unsettled], right[unsettled], tolerance_m
    )
    border = shared >= min_shared_border_m
    return left[border], right[border], shared[border]


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
    vertex = _first_seen(coords[:, 0] + 1j * coords[:, 1])
    n_vertices, n = int(vertex.max()) + 1, len(geoms)
    follows = vertex_ring[1:] == vertex_ring[:-1]  # consecutive in one ring
    a, z = vertex[:-1][follows], vertex[1:][follows]
    owner = part_of[ring_of[vertex_ring[:-1][follows]]]
    segment = np.minimum(a, z).astype(np.int64) * n_vertices + np.maximum(a, z)
    # Each (segment, polygon) once, sorted by segment, then polygon.
    distinct = _distinct(segment * n + owner)
    segment, owner = distinct // n, distinct % n
    starts = np.flatnonzero(np.append(True, segment[1:] != segment[:-1]))
    two = starts[np.diff(np.append(starts, len(segment))) == 2]
    xy = np.empty((n_vertices, 2))
    xy[vertex] = coords
    ends = xy[segment[two] // n_vertices] - xy[segment[two] % n_vertices]
    wanted = np.minimum(left, right).astype(np.int64) * n + np.maximum(left, right)
    return _sums_at(
        owner[two] * n + owner[two + 1], np.hypot(ends[:, 0], ends[:, 1]), wanted
    )


def _first_seen(values: np.ndarray) -> np.ndarray:
    # Number the distinct values in the order they first appear (pd.factorize's
    # numbering), from sorts, which let go of the interpreter.
    order = np.argsort(values, kind="stable")
    first = _firsts(values[order])
    group = np.cumsum(first) - 1  # of each sorted value, in sorted order
    # The stable sort puts each value's first appearance first in its run.
    appears = order[first]
    number = np.empty(len(appears), dtype=np.int64)
    number[np.argsort(appears, kind="stable")] = np.arange(len(appears))
    numbered = np.empty(len(values), dtype=np.int64)
    numbered[order] = number[group]
    return numbered


def _distinct(values: np.ndarray) -> np.ndarray:
    # np.unique's result, from a sort: many times faster on integers (numpy 2.4
    # hashes them first).
    ordered: np.ndarray = np.sort(values)
    return np.compress(_firsts(ordered), ordered)


def _firsts(ordered: np.ndarray) -> np.ndarray:
    # Whether each value of a sorted array is the first of its run.
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return first


def _sums_at(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    # The sum of the values of each wanted key (0 for a key absent), added in
    # their order by np.bincount over the keys numbered in sorted order.
    order = np.argsort(keys, kind="stable")
    first = _firsts(keys[order])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.cumsum(first) - 1
    distinct = keys[order][first]
    sums = np.append(np.bincount(rank, weights=values, minlength=len(distinct)), 0.0)
    at = np.searchsorted(distinct, wanted)
    inside = at < len(distinct)
    found = np.zeros(len(wanted), dtype=bool)
    found[inside] = distinct[at[inside]] == wanted[inside]
    return sums[np.where(found, at, len(distinct))]


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
