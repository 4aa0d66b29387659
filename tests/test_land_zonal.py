"""Zonal statistics out of core (observatory.land.zonal) against vector computations.

Every raster is generated here: tiled and striped GeoTIFFs with overviews, a
nodata border, a polygon straddling two tiles and one outside the raster. The
counts are checked against two independent vector computations: the pixel
centres inside each polygon (shapely), and the intersection of each polygon
with the raster's cells polygonised one by one.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

from observatory.core.errors import DataError  # noqa: E402
from observatory.land.zonal import zonal_counts  # noqa: E402

PIXEL = 10.0
ORIGIN = (700_000.0, 6_600_000.0)  # Lambert-93, top-left corner
HEIGHT, WIDTH = 120, 150
TRANSFORM = from_origin(*ORIGIN, PIXEL, PIXEL)


def _classes(seed: int = 3) -> np.ndarray:
    """Patches of codes 1-5 (5 x 5 pixels), a 3-pixel nodata (0) border."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 6, size=(HEIGHT // 5, WIDTH // 5)).repeat(5, 0).repeat(5, 1)
    data = data.astype("uint8")
    data[:3, :] = data[-3:, :] = data[:, :3] = data[:, -3:] = 0
    return data


def write_tif(path, data, *, tiled, nodata, crs="EPSG:2154", transform=TRANSFORM):
    layout = (
        {"tiled": True, "blockxsize": 64, "blockysize": 64}
        if tiled
        else {"tiled": False, "blockysize": 3}
    )
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        compress="deflate",
        **layout,
    ) as dst:
        dst.write(data, 1)
        dst.build_overviews([2, 4], rasterio.enums.Resampling.nearest)
    with rasterio.open(path) as src:  # the layout the test asks for
        assert src.overviews(1) == [2, 4]
        assert (src.block_shapes[0][1] == data.shape[1]) != tiled
    return path


def _x(col: float) -> float:
    return ORIGIN[0] + col * PIXEL


def _y(row: float) -> float:
    return ORIGIN[1] - row * PIXEL


def polygons() -> gpd.GeoSeries:
    """Disjoint polygons: aligned to cells, across tiles, partly and wholly out."""
    shapes = [
        shapely.box(_x(10), _y(50), _x(40), _y(20)),  # aligned to cell edges
        shapely.box(_x(50.3), _y(80.6), _x(90.2), _y(55.1)),  # straddles tiles 0/1
        shapely.Point(_x(115), _y(90)).buffer(150),
        shapely.Polygon(
            [(_x(5), _y(100)), (_x(60), _y(118)), (_x(30), _y(90)), (_x(2), _y(92))]
        ),
        shapely.box(_x(140), _y(30), _x(170), _y(10)),  # partly outside the raster
        shapely.box(_x(300), _y(30), _x(320), _y(10)),  # wholly outside
    ]
    return gpd.GeoSeries(shapes, index=list("abcdef"), crs="EPSG:2154")


def _centres() -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    return _x(cols), _y(rows)


def centre_truth(shape, data) -> dict[int, int]:
    """Pixels per code whose centre lies inside ``shape`` (shapely, not GDAL)."""
    x, y = _centres()
    inside = shapely.contains_xy(shape, x, y) & (data != 0)
    codes, counts = np.unique(data[inside], return_counts=True)
    return dict(zip(codes.tolist(), counts.tolist(), strict=True))


def cell_truth(shape, data) -> dict[int, float]:
    """Area per code of ``shape`` ∩ cells: every cell polygonised and intersected."""
    rows, cols = np.nonzero(data != 0)
    cells = shapely.box(_x(cols), _y(rows + 1), _x(cols + 1), _y(rows))
    areas = shapely.area(shapely.intersection(cells, shape))
    out: dict[int, float] = {}
    for code, area in zip(data[rows, cols].tolist(), areas.tolist(), strict=True):
        if area > 0:
            out[code] = out.get(code, 0.0) + area
    return out


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "striped"])
def test_counts_are_the_pixel_centres_inside_each_polygon(tmp_path, tiled):
    data = _classes()
    path = write_tif(tmp_path / "land.tif", data, tiled=tiled, nodata=0)
    shapes = polygons()
    # Small chunks, so that polygons fall across several windows and tasks.
    result = zonal_counts(shapes, [path], chunk_pixels=64 * 64)
    for key, shape in shapes.items():
        counted = {int(c): int(n) for c, n in result.codes.loc[key].items() if n}
        assert counted == centre_truth(shape, data), key
    assert result.polygons.loc["f", "valid_pixels"] == 0
    assert result.polygons.loc["f", "inside_m2"] == 0
    assert result.polygons.loc["e", "inside_m2"] == pytest.approx(10 * 20 * PIXEL**2)


def test_counts_match_the_polygonised_cells(tmp_path):
    data = _classes(seed=7)
    path = write_tif(tmp_path / "land.tif", data, tiled=True, nodata=0)
    shapes = polygons()
    result = zonal_counts(shapes, [path], chunk_pixels=64 * 64)
    for key, shape in shapes.items():
        exact = cell_truth(shape, data)
        counted = {int(c): n * PIXEL**2 for c, n in result.codes.loc[key].items() if n}
        if key == "a":  # edges on cell edges: the centre rule is exact
            assert counted == pytest.approx(exact)
            continue
        # Elsewhere only cells cut by the boundary may differ, each by under one cell.
        bound = (2 * shape.length / PIXEL + 4) * PIXEL**2
        total_error = abs(sum(counted.values()) - sum(exact.values()))
        assert total_error <= bound, key
        for code in set(exact) | set(counted):
            assert abs(counted.get(code, 0) - exact.get(code, 0)) <= bound, (key, code)


def test_overlapping_polygons_are_counted_in_each(tmp_path):
    data = _classes()
    path = write_tif(tmp_path / "land.tif", data, tiled=True, nodata=0)
    big = shapely.box(_x(10), _y(60), _x(60), _y(10))
    small = shapely.box(_x(20), _y(40), _x(30), _y(30))
    shapes = gpd.GeoSeries([big, small], crs="EPSG:2154")
    result = zonal_counts(shapes, [path], overlapping=True)
    assert result.polygons["valid_pixels"].tolist() == [50 * 50, 10 * 10]


def test_polygons_are_reprojected_to_the_raster_crs(tmp_path):
    data = _classes()
    path = write_tif(tmp_path / "land.tif", data, tiled=True, nodata=0)
    shapes = polygons()
    in_l93 = zonal_counts(shapes, [path]).codes
    in_wgs84 = zonal_counts(shapes.to_crs("EPSG:4326"), [path]).codes
    # A round trip through degrees moves vertices by nanometres: same pixels.
    assert (in_wgs84 == in_l93).all().all()


def test_tiles_add_up_to_the_whole(tmp_path):
    data = _classes()
    whole = write_tif(tmp_path / "whole.tif", data, tiled=True, nodata=0)
    left = write_tif(tmp_path / "left.tif", data[:, :80].copy(), tiled=True, nodata=0)
    right_transform = from_origin(_x(80), ORIGIN[1], PIXEL, PIXEL)
    right = write_tif(
        tmp_path / "right.tif",
        data[:, 80:].copy(),
        tiled=False,
        nodata=0,
        transform=right_transform,
    )
    shapes = polygons()
    one = zonal_counts(shapes, [whole])
    two = zonal_counts(shapes, [left, right])
    assert (one.codes == two.codes).all().all()
    assert np.allclose(one.polygons["inside_m2"], two.polygons["inside_m2"])


def test_quantities_sum_values_and_weighted_centres(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 50, size=(HEIGHT, WIDTH)).astype("float32")
    values[:3, :] = -200.0  # GHS-POP's nodata
    path = write_tif(tmp_path / "pop.tif", values, tiled=True, nodata=-200.0)
    shapes = polygons()
    result = zonal_counts(shapes, [path], quantity=True, chunk_pixels=64 * 64)
    x, y = _centres()
    for key, shape in shapes.items():
        inside = shapely.contains_xy(shape, x, y) & (values != -200.0)
        weights = values[inside].astype(float)
        sums = result.sums.loc[key]
        assert sums["sum"] == pytest.approx(weights.sum(), rel=1e-9, abs=1e-9)
        assert sums["sum_x"] == pytest.approx((weights * x[inside]).sum(), rel=1e-9)
        assert sums["sum_y"] == pytest.approx((weights * y[inside]).sum(), rel=1e-9)
        assert result.polygons.loc[key, "valid_pixels"] == inside.sum()


def test_schedulers_give_the_same_counts(tmp_path):
    data = _classes()
    path = write_tif(tmp_path / "land.tif", data, tiled=True, nodata=0)
    shapes = polygons()
    threads = zonal_counts(shapes, [path], scheduler="threads", chunk_pixels=64 * 64)
    serial = zonal_counts(shapes, [path], scheduler="synchronous", chunk_pixels=64 * 64)
    assert threads.codes.equals(serial.codes)


def test_a_file_that_is_not_a_raster_is_named(tmp_path):
    path = tmp_path / "land.tif"
    path.write_text("not a tiff")
    with pytest.raises(DataError, match=r"land\.tif: not a raster"):
        zonal_counts(polygons(), [path])


def test_tiles_of_different_grids_are_refused(tmp_path):
    data = _classes()
    ten = write_tif(tmp_path / "ten.tif", data, tiled=True, nodata=0)
    twenty = write_tif(
        tmp_path / "twenty.tif",
        data,
        tiled=True,
        nodata=0,
        transform=from_origin(*ORIGIN, 20.0, 20.0),
    )
    with pytest.raises(DataError, match=r"twenty\.tif: a tile of .*pixel size 20"):
        zonal_counts(polygons(), [ten, twenty])
