"""Benchmark observatory.land's zonal statistics against exactextract and rasterstats.

Two measurements, each merged under its key of ``benchmarks/land.json`` and,
as ``land_<key>``, of ``benchmarks/results.json`` beside the other benchmarks'
(``land_national``, ``land_rule``), through ``scriptlib.bench.merge_results``:

``national``
    A SYNTHETIC OSO-like land-cover raster of mainland France at 10 m (the real
    map's size: the communes' extent, about 114,000 x 106,000 pixels, uint8,
    tiled 512 x 512, DEFLATE, nodata 0 off the land, classes 1-23 in 640 m
    patches) generated in ``--workdir`` (``/tmp/land-bench``), and the 34,738
    communes of mainland France and Corsica with a geometry (real 2025
    boundaries, ``/work/shared/data/real/communes_datafrance_2025.parquet``).
    observatory.land (``zonal_counts``) and exactextract (coverage fractions,
    ops ``count, unique, frac``) each run in a fresh process, ``--repeat``
    times; wall seconds of the call, peak RSS of the process tree, and how far
    the two disagree per commune.

``rule``
    The choice of the counting rule, on the demo's 1,703 real communes and its
    100 m land cover (``data/demo/land``), then on the same cover at 10 m (each
    cell split into 10 x 10): pixel centre (observatory.land; rasterio.features
    + numpy polygon by polygon; rasterstats) against coverage fractions
    (exactextract). Reference: exact areas, from exactextract, itself checked
    against the raster's cells polygonised and intersected with shapely on a
    sample of communes. Errors are per commune and per EPCI, as a share of the
    polygon's area (percentage points, summed over classes).

Usage::

    pip install -e ".[bench]"
    python scripts/bench_land.py rule                          # ~3 min
    python scripts/bench_land.py national --pixel 40           # quick, 1/16 of the pixels
    python scripts/bench_land.py national --repeat 1           # the real size: ~40 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scriptlib.bench import (
    code_identity,
    describe_run,
    merge_results,
    own_peak_rss,
    run_worker,
    source_sha256,
    versions,
)
from scriptlib.console import script_logger, show, start_logging

LOG = script_logger("bench_land")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "land.json"
#: Every benchmark's figures (``fd``, ``pipeline``...): this one's as ``land_<key>``.
SHARED_RESULTS = ROOT / "benchmarks" / "results.json"
SHARED_COMMUNES = (
    ROOT.parent / "shared" / "data" / "real" / "communes_datafrance_2025.parquet"
)
DEMO_COMMUNES = ROOT / "data" / "demo" / "COMMUNE.shp"
DEMO_LAND = ROOT / "data" / "demo" / "land" / "demo-synthetic-OCS_2020_CESBIO-100m.tif"
PEAK_RSS_MAX = 1_500_000_000
PATCH = 64  # pixels per side of a synthetic patch
BLOCK = 512
#: OSO 23-class codes, weighted like a French landscape (mostly farmland, forest).
CODES = np.array(
    [1, 2, 3, 4, 5, 6, 10, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23], np.uint8
)
WEIGHTS = np.array([1, 5, 2, 1, 6, 18, 10, 22, 1, 2, 14, 6, 3, 4, 1, 0.5, 2.5])


# ------------------------------------------------------------------ data
def france_communes(out: Path) -> Path:
    """Write mainland France's communes (and Corsica's) in Lambert-93 as GeoParquet."""
    import geopandas as gpd
    import shapely

    if out.exists():
        return out
    frame = gpd.read_parquet(SHARED_COMMUNES)
    frame = frame[(frame["type_commune"] == "COM") & frame.geometry.notna()]
    frame = frame[~frame["departement"].str.startswith("97")]
    frame = frame.to_crs(2154)
    frame["geometry"] = shapely.make_valid(frame.geometry.to_numpy())
    frame = frame[["code", "epci_siren", "geometry"]].rename(
        columns={"code": "commune_code", "epci_siren": "epci_code"}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index(drop=True).to_parquet(out)
    return out


def make_land_cover(
    path: Path, communes: Path, pixel: float, seed: int
) -> dict[str, Any]:
    """Write the OSO-like national raster, one row of tiles at a time."""
    import geopandas as gpd
    import rasterio
    from rasterio import features
    from rasterio.transform import from_origin

    frame = gpd.read_parquet(communes)
    x0, y0, x1, y1 = frame.total_bounds
    left, top = np.floor(x0 / 1000) * 1000, np.ceil(y1 / 1000) * 1000
    width = int(np.ceil((x1 - left) / pixel))
    height = int(np.ceil((top - y0) / pixel))
    step = round(1000 / pixel)  # land mask at 1 km
    mask = features.rasterize(
        ((g, 1) for g in frame.geometry),
        out_shape=(-(-height // step), -(-width // step)),
        transform=from_origin(left, top, 1000, 1000),
        fill=0,
        dtype="uint8",
    )
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:2154",
        "nodata": 0,
        "transform": from_origin(left, top, pixel, pixel),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "BIGTIFF": "YES",
        "NUM_THREADS": "ALL_CPUS",
    }
    started = time.perf_counter()
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, height, BLOCK):
            rows = min(BLOCK, height - row)
            patches = rng.choice(
                CODES,
                p=WEIGHTS / WEIGHTS.sum(),
                size=(-(-rows // PATCH), -(-width // PATCH)),
            )
            band = patches.repeat(PATCH, 0).repeat(PATCH, 1)[:rows, :width]
            land = (
                mask[row // step : (row + rows - 1) // step + 1]
                .repeat(step, 0)
                .repeat(step, 1)
            )
            land = land[row % step : row % step + rows, :width]
            dst.write(
                np.where(land == 1, band, 0), 1, window=((row, row + rows), (0, width))
            )
    return {
        "path": str(path),
        "width": width,
        "height": height,
        "pixel": pixel,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
        "block": BLOCK,
        "patch_pixels": PATCH,
    }


# ------------------------------------------------------------------ methods (worker side)
def areas_ours(raster: str, polygons: Any, options: dict[str, Any]) -> Any:
    """observatory.land: pixel centre, windows as dask tasks."""
    from observatory.land.zonal import zonal_counts

    counts = zonal_counts(polygons.geometry, [Path(raster)], **options)
    long = counts.codes.stack()
    long = long[long > 0] * counts.pixel_area
    return _long(
        long.index.get_level_values(0), long.index.get_level_values(1), long.to_numpy()
    )


def areas_exactextract(raster: str, polygons: Any, options: dict[str, Any]) -> Any:
    """exactextract: coverage fractions (count = sum of fractions of valid cells)."""
    import rasterio
    from exactextract import exact_extract

    with rasterio.open(raster) as src:
        pixel_area = abs(src.transform.a * src.transform.e)
    frame = polygons[["geometry"]].assign(polygon=np.arange(len(polygons)))
    out = exact_extract(
        raster,
        frame,
        ["count", "unique", "frac"],
        include_cols=["polygon"],
        output="pandas",
        **options,
    )
    rows = [
        (p, int(code), frac * count * pixel_area)
        for p, count, codes, fracs in zip(
            out["polygon"], out["count"], out["unique"], out["frac"], strict=True
        )
        for code, frac in zip(codes, fracs, strict=True)
    ]
    return _long(*zip(*rows, strict=True)) if rows else _long([], [], [])


def areas_rasterstats(raster: str, polygons: Any, options: dict[str, Any]) -> Any:
    """rasterstats: pixel centre, one window per polygon, categorical counts."""
    import rasterio
    from rasterstats import zonal_stats

    with rasterio.open(raster) as src:
        pixel_area = abs(src.transform.a * src.transform.e)
    stats = zonal_stats(
        list(polygons.geometry), raster, categorical=True, nodata=0, **options
    )
    rows = [
        (p, int(c), n * pixel_area) for p, s in enumerate(stats) for c, n in s.items()
    ]
    return _long(*zip(*rows, strict=True)) if rows else _long([], [], [])


def areas_per_polygon(raster: str, polygons: Any, options: dict[str, Any]) -> Any:
    """rasterio.features + numpy, polygon by polygon: read its window, mask, bincount."""
    import rasterio
    from rasterio import features, windows

    rows = []
    with rasterio.open(raster) as src:
        pixel_area = abs(src.transform.a * src.transform.e)
        full = windows.Window(0, 0, src.width, src.height)
        for p, geometry in enumerate(polygons.geometry):
            window = covering_window(geometry.bounds, src.transform).intersection(full)
            data = src.read(1, window=window)
            inside = features.geometry_mask(
                [geometry], data.shape, src.window_transform(window), invert=True
            )
            counts = np.bincount(data[inside & (data != 0)], minlength=256)
            rows += [(p, int(c), n * pixel_area) for c, n in enumerate(counts) if n]
    return _long(*zip(*rows, strict=True)) if rows else _long([], [], [])


def covering_window(bounds: Any, transform: Any) -> Any:
    """Return the window of whole pixels covering ``bounds``."""
    from rasterio import windows

    w = windows.from_bounds(*bounds, transform)
    col0, row0 = int(np.floor(w.col_off)), int(np.floor(w.row_off))
    col1 = int(np.ceil(w.col_off + w.width))
    row1 = int(np.ceil(w.row_off + w.height))
    return windows.Window(col0, row0, col1 - col0, row1 - row0)


METHODS = {
    "ours": areas_ours,
    "exactextract": areas_exactextract,
    "rasterstats": areas_rasterstats,
    "rasterio_per_polygon": areas_per_polygon,
}


def _long(polygon: Any, code: Any, area: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "polygon": np.asarray(polygon, np.int64),
            "code": np.asarray(code, np.int64),
            "area_m2": np.asarray(area, float),
        }
    )


def worker(spec: dict[str, Any]) -> None:
    """Run one method once; write its timings and its areas."""
    import geopandas as gpd

    polygons = gpd.read_parquet(spec["polygons"])
    if spec.get("subset"):
        polygons = polygons.iloc[: spec["subset"]]
    started, cpu = time.perf_counter(), time.process_time()
    areas = METHODS[spec["method"]](spec["raster"], polygons, spec.get("options", {}))
    facts = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "vmhwm_bytes": own_peak_rss(),
        "polygons": len(polygons),
    }
    areas.to_parquet(spec["areas"])
    Path(spec["facts"]).write_text(json.dumps(facts), encoding="utf-8")


# ------------------------------------------------------------------ parent side
def measure(
    method: str, raster: Path, polygons: Path, workdir: Path, repeat: int, **extra: Any
) -> dict[str, Any]:
    """Run a method ``repeat`` times in fresh processes; return min/median/max."""
    runs = []
    for i in range(repeat):
        spec = {
            "method": method,
            "raster": str(raster),
            "polygons": str(polygons),
            "facts": str(workdir / f"{method}-{i}.json"),
            "areas": str(workdir / f"{method}.parquet"),
            **extra,
        }
        load = os.getloadavg()
        child, facts = run_worker(Path(__file__), spec, interval=0.05)
        if facts is None:
            msg = f"{method} failed (exit {child.returncode})"
            raise SystemExit(msg)
        runs.append(
            {
                **facts,
                "process_seconds": round(child.seconds, 2),
                "load_before": load,
                "load_after": os.getloadavg(),
                "peak_rss_bytes": child.peak_rss_bytes(facts["vmhwm_bytes"]),
            }
        )
        LOG.info(
            "%s run %d/%d: %.1f s, %.0f MB",
            method,
            i + 1,
            repeat,
            facts["seconds"],
            runs[-1]["peak_rss_bytes"] / 1e6,
        )
    seconds = [r["seconds"] for r in runs]
    return {
        "wall_seconds_min": round(min(seconds), 2),
        "wall_seconds_median": round(statistics.median(seconds), 2),
        "wall_seconds_max": round(max(seconds), 2),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "repeats": runs,
        **{k: v for k, v in extra.items() if k != "subset"},
    }


def disagreement(
    areas: Any, reference: Any, polygons: Any, key: str | None
) -> dict[str, float]:
    """Per polygon (or per ``key`` group), sum over classes of |area - reference| / area."""
    import pandas as pd

    both = pd.concat(
        [
            areas.set_index(["polygon", "code"])["area_m2"].rename("a"),
            reference.set_index(["polygon", "code"])["area_m2"].rename("r"),
        ],
        axis=1,
    ).fillna(0.0)
    diff = both.assign(d=(both["a"] - both["r"]).abs()).reset_index()
    area = polygons.geometry.area.to_numpy()
    if key is None:
        error = (
            diff.groupby("polygon")["d"]
            .sum()
            .reindex(range(len(polygons)), fill_value=0.0)
            / area
        )
    else:
        groups = polygons[key].fillna("none").to_numpy()
        signed = (both["a"] - both["r"]).reset_index()
        signed["group"] = groups[signed["polygon"]]
        per = signed.groupby(["group", "code"])[0].sum().abs().groupby("group").sum()
        error = per / pd.Series(area).groupby(groups).sum()
    error = 100 * error.to_numpy()
    return {
        "median_pp": round(float(np.median(error)), 4),
        "p95_pp": round(float(np.percentile(error, 95)), 4),
        "max_pp": round(float(error.max()), 4),
    }


def check_reference(
    raster: Path, polygons: Any, reference: Any, sample: int
) -> dict[str, Any]:
    """Compare exactextract with the raster's cells polygonised and intersected (shapely)."""
    import rasterio
    import shapely

    worst = 0.0
    with rasterio.open(raster) as src:
        t = src.transform
        for p in range(sample):
            geometry = polygons.geometry.iloc[p]
            window = covering_window(geometry.bounds, t)
            data = src.read(1, window=window, boundless=True, fill_value=0)
            rows, cols = np.nonzero(data)
            x = t.c + t.a * (cols + window.col_off)
            y = t.f + t.e * (rows + window.row_off)
            cells = shapely.box(x, y + t.e, x + t.a, y)
            area = shapely.area(shapely.intersection(cells, geometry))
            exact = np.bincount(data[rows, cols], weights=area, minlength=256)
            ref = (
                reference[reference["polygon"] == p]
                .set_index("code")["area_m2"]
                .reindex(range(256), fill_value=0.0)
            )
            worst = max(worst, float(np.abs(exact - ref.to_numpy()).max()))
    return {"communes_checked": sample, "max_abs_error_m2": worst}


def upsample(source: Path, out: Path, factor: int) -> Path:
    """Write ``source`` at a pixel ``factor`` times smaller (each cell split)."""
    import rasterio
    from rasterio.enums import Resampling

    if out.exists():
        return out
    with rasterio.open(source) as src:
        profile = src.profile | {
            "width": src.width * factor,
            "height": src.height * factor,
            "transform": src.transform * src.transform.scale(1 / factor),
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "BIGTIFF": "IF_SAFER",
        }
        data = src.read(
            1,
            out_shape=(profile["height"], profile["width"]),
            resampling=Resampling.nearest,
        )
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
    return out


def bench_rule(args: argparse.Namespace) -> dict[str, Any]:
    """Choose the counting rule: accuracy and time of the four methods on the demo."""
    import geopandas as gpd

    workdir = args.workdir / "rule"
    workdir.mkdir(parents=True, exist_ok=True)
    polygons_path = workdir / "demo-communes.parquet"
    demo = gpd.read_file(DEMO_COMMUNES).rename(
        columns={"INSEE_COM": "commune_code", "SIREN_EPCI": "epci_code"}
    )
    demo[["commune_code", "epci_code", "geometry"]].to_parquet(polygons_path)
    out: dict[str, Any] = {}
    for label, raster in (
        ("100m", DEMO_LAND),
        ("10m", upsample(DEMO_LAND, workdir / "demo-10m.tif", 10)),
    ):
        found: dict[str, Any] = {}
        for method in ("exactextract", "ours", "rasterio_per_polygon", "rasterstats"):
            found[method] = measure(method, raster, polygons_path, workdir, args.repeat)
            found[method]["areas"] = gpd.pd.read_parquet(workdir / f"{method}.parquet")
        reference = found["exactextract"].pop("areas")
        result = {"reference_check": check_reference(raster, demo, reference, 40)}
        for method, facts in found.items():
            if "areas" in facts:
                areas = facts.pop("areas")
                facts["error_vs_exact_per_commune"] = disagreement(
                    areas, reference, demo, None
                )
                facts["error_vs_exact_per_epci"] = disagreement(
                    areas, reference, demo, "epci_code"
                )
            result[method] = facts
        out[label] = result
    return out


def bench_national(args: argparse.Namespace) -> dict[str, Any]:
    """Time observatory.land and exactextract on the national synthetic raster."""
    import geopandas as gpd

    args.workdir.mkdir(parents=True, exist_ok=True)
    communes = france_communes(args.workdir / "communes-2025-l93.parquet")
    raster = args.workdir / f"oso-like-france-{args.pixel:g}m.tif"
    made = (
        json.loads(raster.with_suffix(".json").read_text())
        if raster.with_suffix(".json").exists()
        else None
    )
    if made is None or not raster.exists():
        LOG.info("writing %s ...", raster)
        made = make_land_cover(raster, communes, args.pixel, args.seed)
        raster.with_suffix(".json").write_text(json.dumps(made))
    result: dict[str, Any] = {
        "raster": made,
        "polygons": len(gpd.pd.read_parquet(communes, columns=["commune_code"])),
    }
    for method in args.methods:
        result[method] = measure(method, raster, communes, args.workdir, args.repeat)
    if {"ours", "exactextract"} <= set(args.methods):
        polygons = gpd.read_parquet(communes)
        ours = gpd.pd.read_parquet(args.workdir / "ours.parquet")
        exact = gpd.pd.read_parquet(args.workdir / "exactextract.parquet")
        result["ours_vs_exactextract_per_commune"] = disagreement(
            ours, exact, polygons, None
        )
        result["ours_vs_exactextract_per_epci"] = disagreement(
            ours, exact, polygons, "epci_code"
        )
        result["ours_over_exactextract_median"] = round(
            result["ours"]["wall_seconds_median"]
            / result["exactextract"]["wall_seconds_median"],
            3,
        )
    result["ours_peak_rss_max_bytes"] = PEAK_RSS_MAX
    return result


def main(argv: list[str] | None = None) -> int:
    """Run a benchmark and merge its results into ``--results``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(json.loads(argv[1]))
        return 0
    start_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["national", "rule"])
    parser.add_argument(
        "--pixel", type=float, default=10.0, help="national raster's pixel (m)"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument(
        "--methods", nargs="+", default=["ours", "exactextract"], choices=list(METHODS)
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/land-bench"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--shared-results",
        type=Path,
        default=SHARED_RESULTS,
        help="also merged there as land_<key> (benchmarks/results.json)",
    )
    args = parser.parse_args(argv)
    head = describe_run(
        "scripts/bench_land.py",
        argv,
        versions(
            ["rasterio", "exactextract", "rasterstats", "numpy", "shapely", "dask"]
        ),
    )
    head["code"] = code_identity(
        "land_sha256", source_sha256(ROOT / "observatory" / "land")
    )
    body = bench_national(args) if args.which == "national" else bench_rule(args)
    key = (
        args.which
        if args.which == "rule" or args.pixel == 10
        else f"national_{args.pixel:g}m"
    )
    merge_results(args.results, key, {**head, **body})
    merge_results(args.shared_results, f"land_{key}", {**head, **body})
    show(json.dumps(body, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
