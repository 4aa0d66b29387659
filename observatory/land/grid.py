"""What a raster is, read from its header only: grid, CRS, nodata, blocks.

A raster input is one GeoTIFF or several tiles of one grid (GHSL publishes
100 m tiles of 10,000 x 10,000 pixels). :func:`raster_grids` opens each file's
header (never its pixels), checks that the tiles share CRS, pixel size and data
type, and returns one :class:`RasterGrid` per file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from observatory.core.errors import DataError


@dataclass(frozen=True, slots=True)
class RasterGrid:
    """The header of one raster file: enough to plan windows and count pixels."""

    path: Path
    crs_wkt: str
    #: affine coefficients (a, b, c, d, e, f) of the pixel -> CRS transform
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    #: (rows, columns) of the file's internal blocks (tiles, or strips)
    block_shape: tuple[int, int]
    dtype: str
    nodata: float | None
    overviews: int
    #: the file says it is synthetic (GeoTIFF tag ``SYNTHETIC=yes...``, the demo's)
    synthetic: bool = False

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in the CRS's units (m² for the products used)."""
        a, b, _, d, e, _ = self.transform
        return abs(a * e - b * d)

    @property
    def pixel_size(self) -> float:
        """Side of a (square) pixel in the CRS's units."""
        return abs(self.transform[0])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the CRS."""
        a, _, c, _, e, f = self.transform
        x1, y1 = c + a * self.width, f + e * self.height
        return min(c, x1), min(f, y1), max(c, x1), max(f, y1)

    @property
    def striped(self) -> bool:
        """True when blocks are full-width strips rather than tiles."""
        return self.block_shape[1] >= self.width


def read_grid(path: Path) -> RasterGrid:
    """Read one raster's header.

    Raises
    ------
    DataError
        Not a raster GDAL can open, no band, or a rotated or sheared grid.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as src:
            if src.count < 1 or src.crs is None:
                msg = f"{path}: a raster with one band and a CRS was expected"
                raise DataError(msg, path=path)
            t = src.transform
            if t.b or t.d or abs(abs(t.a) - abs(t.e)) > 1e-9 * abs(t.a):
                msg = f"{path}: a north-up grid of square pixels was expected, got transform {tuple(t)[:6]}"
                raise DataError(msg, path=path)
            return RasterGrid(
                path=Path(path),
                crs_wkt=src.crs.to_wkt(),
                transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                width=src.width,
                height=src.height,
                block_shape=(src.block_shapes[0][0], src.block_shapes[0][1]),
                dtype=src.dtypes[0],
                nodata=src.nodata,
                overviews=len(src.overviews(1)),
                synthetic=src.tags().get("SYNTHETIC", "").lower().startswith("yes"),
            )
    except RasterioIOError as exc:
        msg = f"{path}: not a raster GDAL can read ({exc})"
        raise DataError(msg, path=path) from exc


def raster_grids(paths: Sequence[Path]) -> list[RasterGrid]:
    """Read the headers of a raster's files (tiles) and check they form one grid.

    Raises
    ------
    DataError
        No file, or tiles of different CRS, pixel size or data type.
    """
    if not paths:
        msg = "a raster input needs at least one file"
        raise DataError(msg)
    grids = [read_grid(Path(p)) for p in paths]
    first = grids[0]
    for grid in grids[1:]:
        same = (
            _same_crs(grid.crs_wkt, first.crs_wkt)
            and abs(grid.pixel_size - first.pixel_size) <= 1e-9 * first.pixel_size
            and grid.dtype == first.dtype
        )
        if not same:
            msg = (
                f"{grid.path}: a tile of {first.path}'s grid was expected "
                f"(same CRS, pixel size {first.pixel_size:g}, {first.dtype}), "
                f"got pixel size {grid.pixel_size:g}, {grid.dtype}"
            )
            raise DataError(msg, path=grid.path)
    return grids


def _same_crs(a: str, b: str) -> bool:
    from pyproj import CRS

    return a == b or CRS.from_wkt(a) == CRS.from_wkt(b)


#: GHSL file names carry their epoch: ``GHS_BUILT_S_E2020_GLOBE_R2023A_...``.
_GHSL_EPOCH = re.compile(r"_E(\d{4})_")


def ghsl_epoch(paths: Sequence[Path]) -> int | None:
    """Return the epoch written in GHSL file names, None when they name none.

    Raises
    ------
    DataError
        Tiles naming different epochs.
    """
    found = {int(m.group(1)) for p in paths if (m := _GHSL_EPOCH.search(Path(p).name))}
    if len(found) > 1:
        msg = f"{Path(paths[0]).parent}: tiles of different GHSL epochs {sorted(found)}"
        raise DataError(msg, path=paths[0])
    return found.pop() if found else None


def year_in_name(paths: Sequence[Path], years: Sequence[int]) -> int | None:
    """Return the one year of ``years`` written in the files' names, if any."""
    found = {
        y for p in paths for y in years if re.search(rf"(?<!\d){y}(?!\d)", Path(p).name)
    }
    return found.pop() if len(found) == 1 else None


def describe(grids: Sequence[RasterGrid]) -> dict[str, Any]:
    """Return what a manifest says of a raster: files, CRS, pixel size, type."""
    from pyproj import CRS

    crs = CRS.from_wkt(grids[0].crs_wkt)
    authority = crs.to_authority()
    return {
        "files": [g.path.name for g in grids],
        "crs": ":".join(authority) if authority else crs.name,
        "pixel_size": grids[0].pixel_size,
        "dtype": grids[0].dtype,
        "nodata": grids[0].nodata,
        "synthetic": any(g.synthetic for g in grids),
    }
