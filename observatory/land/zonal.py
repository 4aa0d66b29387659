"""Zonal statistics out of core: pixels counted per polygon, window by window.

A national raster is never loaded. Its grid is cut into chunks of whole blocks
(tiles, or full-width strips), about :data:`CHUNK_PIXELS` pixels each; a chunk
no polygon touches is never read. Each dask task reads a few chunks, burns the
polygons' numbers into each chunk with ``rasterio.features.rasterize`` (GDAL's
scanline rasteriser) and counts pixels per (polygon, value) with
``numpy.bincount``; the partial counts are summed at the end.

**Counting rule: pixel centre.** A pixel belongs to a polygon when its centre
lies inside it (GDAL's default rasterisation, the rule CORINE's own 100 m
raster was made with). ``scripts/bench_land.py`` chose it against exactextract's
coverage fractions and rasterstats on the same files (``benchmarks/land.json``):
docs/indicators.md, "Land (issue 14)", gives the figures. Polygons are
reprojected to the raster's CRS; the raster is never warped.

Polygons must not overlap (communes and EPCI are a partition), unless
``overlapping=True``: they are then burnt in layers of disjoint polygons, one
rasterisation per layer.
"""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.core.compute import computer
from observatory.core.errors import DataError
from observatory.land.grid import RasterGrid, raster_grids

#: Pixels per chunk (rounded to whole blocks): 4 Mpx, ~50 MB of work arrays.
CHUNK_PIXELS = 1 << 22

#: Chunks per dask task: fewer, larger tasks keep the graph small.
TASK_PIXELS = 1 << 25

#: GDAL's block cache while counting: each block is read once, so a small cache
#: suffices (GDAL's default, 5 % of the RAM, would grow to 1.2 GB here).
GDAL_CACHE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class ZonalCounts:
    """Pixels of one raster per polygon, with the areas needed for coverage.

    ``polygons`` has the polygons' index and columns ``area_m2`` (the polygon's
    area in the raster's CRS), ``inside_m2`` (its part inside the raster's
    files), ``valid_pixels`` (pixels counted that are not the raster's nodata).
    ``codes`` (categorical rasters) holds pixel counts by (polygon, code);
    ``sums`` (quantities) the sum of pixel values, and of values times the
    pixel centre's x and y, in the raster's CRS.
    """

    polygons: pd.DataFrame
    codes: pd.DataFrame | None
    sums: pd.DataFrame | None
    grids: tuple[RasterGrid, ...]

    @property
    def pixel_area(self) -> float:
        """Area of one pixel, in m² for the products used."""
        return self.grids[0].pixel_area


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One window to read, and the polygons touching it (clipped to it)."""

    window: tuple[int, int, int, int]  # col_off, row_off, width, height
    polygons: np.ndarray  # positions in the polygon list
    shapes: np.ndarray  # their geometries clipped to the window
    layers: np.ndarray  # rasterisation layer of each


def zonal_counts(
    polygons: gpd.GeoSeries,
    paths: Sequence[Path],
    *,
    quantity: bool = False,
    overlapping: bool = False,
    scheduler: str | None = None,
    progress: bool = False,
    chunk_pixels: int = CHUNK_PIXELS,
) -> ZonalCounts:
    """Count a raster's pixels per polygon, out of core.

    Parameters
    ----------
    polygons
        Polygons with a CRS; any index (kept in the result).
    paths
        The raster's file, or its tiles (one grid, disjoint tiles).
    quantity
        False: count pixels per value (land cover). True: sum the values
        (built-up m², inhabitants) and value-weighted pixel coordinates.
    overlapping
        Polygons may overlap (rasterised in disjoint layers; slower).
    scheduler, progress
        Where the dask tasks run (:func:`observatory.core.compute.computer`).
    chunk_pixels
        Pixels per window read (rounded to the file's blocks).

    Raises
    ------
    DataError
        Unreadable raster, tiles of different grids, polygons without a CRS.
    """
    if polygons.crs is None:
        msg = "the polygons have no CRS: they cannot be reprojected to the raster's"
        raise DataError(msg)
    grids = raster_grids(paths)
    shapes = polygons.to_crs(grids[0].crs_wkt).to_numpy()
    shapes = shapely.make_valid(shapes)
    layers = _layers(shapes) if overlapping else np.zeros(len(shapes), dtype=np.int32)
    tasks = [
        (grid, group)
        for grid in grids
        for group in _task_groups(_chunks(grid, shapes, layers, chunk_pixels))
    ]
    parts = _compute(tasks, quantity, scheduler, progress)
    table = pd.DataFrame(
        {
            "area_m2": shapely.area(shapes),
            "inside_m2": _inside_area(shapes, grids),
        },
        index=polygons.index,
    )
    codes, sums, valid = _combine(parts, len(shapes), quantity, polygons.index)
    table["valid_pixels"] = valid
    return ZonalCounts(table, codes, sums, tuple(grids))


def _layers(shapes: np.ndarray) -> np.ndarray:
    """Give each polygon a layer so that no two of a layer share interior."""
    tree = shapely.STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    inner = shapely.relate_pattern(shapes[left], shapes[right], "T********")
    layer = np.zeros(len(shapes), dtype=np.int32)
    neighbours: dict[int, list[int]] = {}
    for i, j in zip(left[inner].tolist(), right[inner].tolist(), strict=True):
        neighbours.setdefault(j, []).append(i)
    for j in sorted(neighbours):  # greedy colouring, in index order
        taken = {int(layer[i]) for i in neighbours[j]}
        layer[j] = next(k for k in range(len(taken) + 1) if k not in taken)
    return layer


def _chunks(
    grid: RasterGrid, shapes: np.ndarray, layers: np.ndarray, chunk_pixels: int
) -> list[_Chunk]:
    """Cut the grid into windows of whole blocks; keep those polygons touch."""
    block_rows, block_cols = grid.block_shape
    if grid.striped:
        cols = grid.width
        rows = max(block_rows, chunk_pixels // max(cols, 1) // block_rows * block_rows)
    else:
        side = max(1, int((chunk_pixels / (block_rows * block_cols)) ** 0.5))
        rows, cols = side * block_rows, side * block_cols
    windows = [
        (col, row, min(cols, grid.width - col), min(rows, grid.height - row))
        for row in range(0, grid.height, rows)
        for col in range(0, grid.width, cols)
    ]
    a, _, c, _, e, f = grid.transform
    boxes = shapely.box(
        *np.array(
            [
                (c + a * x, f + e * (y + h), c + a * (x + w), f + e * y)
                for x, y, w, h in windows
            ]
        ).T
    )
    which, touched = shapely.STRtree(shapes).query(boxes, predicate="intersects")
    chunks = []
    for k in np.unique(which):
        members = touched[which == k]
        xmin, ymin, xmax, ymax = shapely.bounds(boxes[k])
        pad = grid.pixel_size  # clipping margin: keeps every edge pixel's centre
        clipped = shapely.clip_by_rect(
            shapes[members], xmin - pad, ymin - pad, xmax + pad, ymax + pad
        )
        chunks.append(_Chunk(windows[k], members, clipped, layers[members]))
    return chunks


def _task_groups(chunks: list[_Chunk]) -> list[list[_Chunk]]:
    """Group consecutive chunks (file order) into tasks of about TASK_PIXELS."""
    groups: list[list[_Chunk]] = []
    pixels = TASK_PIXELS
    for chunk in chunks:
        size = chunk.window[2] * chunk.window[3]
        if pixels + size > TASK_PIXELS:
            groups.append([])
            pixels = 0
        groups[-1].append(chunk)
        pixels += size
    return groups


def _compute(
    tasks: list[tuple[RasterGrid, list[_Chunk]]],
    quantity: bool,
    scheduler: str | None,
    progress: bool,
) -> list[list[tuple[np.ndarray, ...]]]:
    """Run one dask task per group of chunks; return their partial counts."""
    import dask

    # Not pure: hashing the chunks' geometries to name the tasks would cost more
    # than counting; the names only need to be unique within this graph.
    count = dask.delayed(_count_task, pure=False)
    run = f"land-count-{uuid.uuid4().hex}"
    graph = [
        count(grid.path, grid.nodata, chunks, quantity, dask_key_name=f"{run}-{i}")
        for i, (grid, chunks) in enumerate(tasks)
    ]
    if not graph:
        return []
    with contextlib.ExitStack() as stack, warnings.catch_warnings():
        # rasterio's in-memory dataset for rasterize reads its transform before
        # setting it, which warns "no geotransform" from worker threads (the
        # counts are the same as on one thread: tests/test_land_zonal.py).
        warnings.filterwarnings("ignore", "Dataset has no geotransform")
        return list(computer(scheduler, progress, stack)(*graph))


def _count_task(
    path: Path, nodata: float | None, chunks: list[_Chunk], quantity: bool
) -> list[tuple[np.ndarray, ...]]:
    """Read each chunk of one file and count its pixels per polygon."""
    import rasterio

    out = []
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(path) as src:
        for chunk in chunks:
            window = rasterio.windows.Window(*chunk.window)
            data = src.read(1, window=window)
            transform = src.window_transform(window)
            # Unsigned codes need no mask: nodata is counted as a code, then dropped.
            masked = quantity or data.dtype.kind != "u"
            valid = _valid(data, nodata) if masked else None
            for layer in np.unique(chunk.layers):
                on = chunk.layers == layer
                ids = _burn(chunk.shapes[on], data.shape, transform)
                members = chunk.polygons[on]
                if quantity:
                    assert valid is not None
                    out.append(_sum_values(ids, data, valid, members, transform))
                else:
                    out.append(_count_codes(ids, data, valid, nodata, members, path))
    return out


def _valid(data: np.ndarray, nodata: float | None) -> np.ndarray:
    valid = np.ones(data.shape, dtype=bool) if nodata is None else data != nodata
    if data.dtype.kind == "f":
        valid &= np.isfinite(data)
        if nodata is not None and np.isnan(nodata):
            valid = np.isfinite(data)
    return valid


def _burn(shapes: np.ndarray, shape: tuple[int, ...], transform: Any) -> np.ndarray:
    """Burn 1..n (pixel centre rule) for the shapes; 0 where none.

    Into an array of our own (uint16 for up to 65,535 polygons): rasterio then
    neither allocates nor fills one, three times faster on a 4 Mpx chunk.
    """
    from rasterio import features

    pairs = [
        (geometry, k)
        for k, geometry in enumerate(shapes, 1)
        if geometry is not None and not geometry.is_empty
    ]
    ids = np.zeros(shape, dtype=np.uint16 if len(shapes) < 2**16 else np.uint32)
    if pairs:
        features.rasterize(pairs, out=ids, transform=transform)
    return ids


def _count_codes(
    ids: np.ndarray,
    data: np.ndarray,
    valid: np.ndarray | None,
    nodata: float | None,
    members: np.ndarray,
    path: Path,
) -> tuple[np.ndarray, ...]:
    """Return (polygon, code, pixels) triplets of one chunk and layer."""
    if data.dtype.kind not in "iu":
        msg = f"{path}: a land-cover raster of integer codes was expected, got {data.dtype}"
        raise DataError(msg, path=path)
    if valid is not None:  # signed codes: mask the nodata (e.g. -128) out
        if (data[valid] < 0).any():
            msg = f"{path}: negative pixel codes that are not the raster's nodata"
            raise DataError(msg, path=path)
        ids[~valid] = 0
        data = np.where(valid, data, 0)
    bins = 256 if data.dtype == np.uint8 else int(data.max(initial=0)) + 1
    # ids * bins + code; row 0 (outside every polygon) is dropped. int64:
    # numpy.bincount casts any other type to it first, at a higher cost.
    combined = np.multiply(ids, bins, dtype=np.int64)
    np.add(combined, data, out=combined, casting="unsafe")
    counts = np.bincount(combined.ravel(), minlength=(len(members) + 1) * bins)
    counts = counts.reshape(len(members) + 1, bins)[1:]
    if valid is None and nodata is not None and 0 <= nodata < bins:
        counts[:, int(nodata)] = 0
    poly, code = np.nonzero(counts)
    return members[poly], code, counts[poly, code]


def _sum_values(
    ids: np.ndarray,
    data: np.ndarray,
    valid: np.ndarray,
    members: np.ndarray,
    transform: Any,
) -> tuple[np.ndarray, ...]:
    """Return per polygon: valid pixels, sum of values, sums of value * x, y."""
    n = len(members) + 1
    ids = np.where(valid, ids, 0).ravel()
    weights = np.where(valid, data, 0).astype(np.float64)
    rows, cols = data.shape
    xs = transform.c + transform.a * (np.arange(cols) + 0.5)
    ys = transform.f + transform.e * (np.arange(rows) + 0.5)
    pixels = np.bincount(ids, minlength=n)[1:]
    total = np.bincount(ids, weights=weights.ravel(), minlength=n)[1:]
    sum_x = np.bincount(ids, weights=(weights * xs).ravel(), minlength=n)[1:]
    sum_y = np.bincount(ids, weights=(weights * ys[:, None]).ravel(), minlength=n)[1:]
    return members, pixels, total, sum_x, sum_y


def _combine(
    parts: list[list[tuple[np.ndarray, ...]]],
    n: int,
    quantity: bool,
    index: pd.Index,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, np.ndarray]:
    """Sum the tasks' partial counts into per-polygon tables."""
    flat = [p for task in parts for p in task]
    valid = np.zeros(n, dtype=np.int64)
    if quantity:
        sums = np.zeros((n, 3))
        for members, pixels, total, sum_x, sum_y in flat:
            np.add.at(valid, members, pixels)
            np.add.at(sums, members, np.column_stack([total, sum_x, sum_y]))
        frame = pd.DataFrame(sums, index=index, columns=["sum", "sum_x", "sum_y"])
        return None, frame, valid
    poly = np.concatenate([p[0] for p in flat]) if flat else np.zeros(0, np.int64)
    code = np.concatenate([p[1] for p in flat]) if flat else np.zeros(0, np.int64)
    count = np.concatenate([p[2] for p in flat]) if flat else np.zeros(0, np.int64)
    triplets = pd.DataFrame({"polygon": poly, "code": code, "pixels": count})
    summed = triplets.groupby(["polygon", "code"], sort=True)["pixels"].sum()
    wide = summed.unstack("code", fill_value=0).reindex(range(n), fill_value=0)
    wide.index = index
    wide.columns = wide.columns.astype(int)
    np.add.at(valid, poly, count)
    return wide.astype(np.int64), None, valid


def _inside_area(shapes: np.ndarray, grids: Sequence[RasterGrid]) -> np.ndarray:
    """Return each polygon's area inside the raster's files (their union)."""
    footprint = shapely.union_all([shapely.box(*g.bounds) for g in grids])
    shapely.prepare(footprint)
    inside = shapely.contains(footprint, shapes)
    area = np.where(inside, shapely.area(shapes), 0.0)
    partial = ~inside & shapely.intersects(footprint, shapes)
    area[partial] = shapely.area(shapely.intersection(shapes[partial], footprint))
    return area
