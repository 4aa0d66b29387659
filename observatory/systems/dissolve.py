"""Union of polygons by group, vectorized (pure functions).

geopandas' ``dissolve`` unions each group in a Python loop: a thousand EPCI
cost a thousand calls holding the interpreter. Here the members of every group
are laid out in a grid, one row per group in the order of the labels, each row
its members in their input order padded with None (GEOS collections skip
None). One call of a shapely ufunc then unions every row: the same collection
of the same polygons in the same order as ``dissolve`` hands GEOS, hence the
same geometry, vertex for vertex. GEOS lets go of the interpreter while it
works, so the rows are split in :data:`THREADS` chunks of about as many
vertices, each unioned in a thread of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import shapely

logger = logging.getLogger(__name__)

#: Chunks of rows unioned at once, each in a thread.
THREADS = 2


def group_grid(labels: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """Lay out the geometries one row per group, padded with None.

    Parameters
    ----------
    labels
        Group of each geometry: integers from 0 to ``n - 1``, each present.
    geometry
        One geometry per label.

    Returns
    -------
    numpy.ndarray
        ``n`` rows (group 0 first), as many columns as the largest group has
        members; each row holds its group's geometries in their input order.
    """
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    column = np.arange(len(order)) - starts[labels[order]]
    grid = np.full((len(counts), counts.max(initial=0)), None, dtype=object)
    grid[labels[order], column] = geometry[order]
    return grid


def _by_chunks(
    union: Callable[[np.ndarray], tuple[np.ndarray, ...]],
    grid: np.ndarray,
    weight: np.ndarray,
) -> tuple[np.ndarray, ...]:
    # THREADS chunks of rows with about as many vertices each, one a thread.
    shares = weight.sum() * np.arange(1, THREADS) / THREADS
    chunks = np.split(grid, np.searchsorted(np.cumsum(weight), shares))
    with ThreadPoolExecutor(THREADS, thread_name_prefix="dissolve") as pool:
        parts = list(pool.map(union, chunks))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _coverage_union(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    # The union of each row, whether it is valid, and its area.
    united = np.asarray(shapely.coverage_union_all(rows, axis=1))
    return united, shapely.is_valid(united), shapely.area(united)


def _general_union(rows: np.ndarray) -> np.ndarray:
    return np.asarray(shapely.union_all(rows, axis=1))


def dissolve_groups(
    labels: np.ndarray, geometry: np.ndarray, blocks: np.ndarray
) -> np.ndarray:
    """Union the polygons of each group, fast where they form a clean coverage.

    ADMIN EXPRESS communes share their boundaries exactly: a coverage union is
    then ten times faster than a general one. It assumes that, so each group
    whose result is invalid or smaller than the sum of its members (overlaps,
    unmatched edges) is unioned again the general way; when GEOS refuses the
    coverage, each block of groups is tried on its own, and the blocks it
    refuses are unioned the general way.

    Parameters
    ----------
    labels
        Group of each polygon: integers from 0 to ``n - 1``, each present.
    geometry
        One polygon per label.
    blocks
        Block of each group (a territory), non-decreasing.

    Returns
    -------
    numpy.ndarray
        The union of each group, group 0 first: the geometry of geopandas'
        ``dissolve`` by these labels, one block at a time.
    """
    grid = group_grid(labels, geometry)
    weight = np.bincount(labels, weights=shapely.get_num_coordinates(geometry))
    # The area of each group's members summed as a pandas group sum does it
    # (compensated, in input order), to compare with their coverage union.
    areas = pd.Series(shapely.area(geometry)).groupby(labels).sum().to_numpy()
    try:
        return _checked(_by_chunks(_coverage_union, grid, weight), grid, areas)
    except shapely.errors.GEOSException:
        pass  # not a coverage somewhere: each block on its own, as below
    united = np.empty(len(grid), dtype=object)
    for block in np.unique(blocks):
        rows = blocks == block
        try:
            united[rows] = _checked(
                _coverage_union(grid[rows]), grid[rows], areas[rows]
            )
        except shapely.errors.GEOSException as exc:  # e.g. overlapping communes
            logger.info("communes are not a clean coverage (%s): general union", exc)
            united[rows] = _general_union(grid[rows])
    return united


def _checked(
    union: tuple[np.ndarray, ...], grid: np.ndarray, areas: np.ndarray
) -> np.ndarray:
    # The coverage union of each row, unioned again the general way where it is
    # invalid or its area is not that of its members.
    united, valid, area = union
    wrong = ~valid | ~np.isclose(area, areas, rtol=1e-9)
    if wrong.any():
        united[wrong] = _general_union(grid[wrong])
        logger.info(
            "%d EPCI unioned the general way (communes not a clean coverage)",
            int(wrong.sum()),
        )
    return united
