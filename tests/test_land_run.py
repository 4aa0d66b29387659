"""Land complementarity in a run (issue 14): the demo with its SYNTHETIC rasters.

The demo's config names a land cover (OSO-like) and GHSL-like built-up and
population grids (``data/demo/land``); the run puts their indicators on every
``epci_indicators`` row and, summed per crown, on ``metropoles``, records the
rasters in the manifest, and draws a land-use panel per métropole. The same
config without the land keys gives the layers of a run without land: the same
columns, the land ones empty. With ``commune_points = "population_weighted"``
the flow lines end at population-weighted centres.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from pyproj import Transformer

from observatory.cli import main
from observatory.config import default_config_path
from observatory.land.classes import GROUPS
from observatory.layers.land_schemas import EPCI_LAND_FIELDS, METROPOLE_LAND_FIELDS

LAND_COLUMNS = {f.name for f in (*EPCI_LAND_FIELDS, *METROPOLE_LAND_FIELDS)}
LAND_KEYS = re.compile(
    r"(?m)^(land_cover|land_cover_classes|built_up|built_up_previous|"
    r"population_grid|population_grid_previous) = .*\n"
)
LAYERS = ("epci_indicators", "flows", "metropoles", "dominant_flows", "flow_matrix")
POPULATION = next(
    (default_config_path().parent.parent / "data" / "demo" / "land").glob(
        "*GHS_POP_E2020*"
    )
)
#: Crown suffixes of the métropoles layer.
PARTS = {0: "_own", 1: "_crown1", 2: "_crown2"}


def demo_config(folder: Path, *, land: bool = True, extra: str = "") -> Path:
    """Write the demo's config, paths made absolute, with or without its land keys."""
    source = default_config_path()
    text = source.read_text(encoding="utf-8")
    text = text.replace('"../data/', f'"{source.parent.parent / "data"}/')
    text = text.replace('= "land/', f'= "{source.parent / "land"}/')
    text = text.replace(
        'file = "classification.toml"',
        f'file = "{source.parent / "classification.toml"}"',
    )
    if not land:
        text = LAND_KEYS.sub("", text)
    text = text.replace("geography = 2025\n", f"geography = 2025\n{extra}", 1)
    path = folder / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(config: Path, out: Path) -> Path:
    assert main(["run", "--config", str(config), "--output", str(out), "-q"]) == 0
    return out / "latest"


@pytest.fixture(scope="module")
def with_land(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("land")
    return run(demo_config(folder), folder / "outputs")


@pytest.fixture(scope="module")
def without_land(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("noland")
    return run(demo_config(folder, land=False), folder / "outputs")


def manifest_of(run_folder: Path) -> dict:
    return json.loads((run_folder / "manifest.json").read_text(encoding="utf-8"))


def test_the_shipped_demo_names_its_land_rasters():
    text = default_config_path().read_text(encoding="utf-8")
    assert len(LAND_KEYS.findall(text)) == 6
    assert 'commune_points = "population_weighted"' in text  # offered, commented


def test_every_epci_row_has_its_land_shares_summing_to_one(with_land):
    epci = gpd.read_parquet(with_land / "epci_indicators.parquet")
    assert epci["land_cover_coverage"].between(0.99, 1.0).all()
    shares = epci[[f"{g}_share" for g in GROUPS]]
    assert epci["wetland_share"].isna().all()  # OSO has no wetland class
    # Every demo code falls in a group: the known shares add up to one.
    assert np.allclose(shares.sum(axis=1, skipna=True), 1.0)
    assert (shares.drop(columns="wetland_share").to_numpy() >= 0).all()
    # One EPCI has the same land in every system it is in.
    per_epci = epci.groupby("epci_code")["agricultural_ha"].nunique()
    assert (per_epci == 1).all()
    # Built-up m² per inhabitant: tens of m², as GHSL gives for Bretagne.
    assert epci["built_up_m2_per_inhabitant"].between(10, 200).all()
    change = (
        epci["built_up_m2_per_inhabitant"] - epci["built_up_m2_per_inhabitant_previous"]
    )
    assert np.allclose(change, epci["built_up_m2_per_inhabitant_change"])
    assert set(epci["land_cover_vintage"]) == {2020}
    assert set(epci["ghsl_epoch"]) == {2020}
    assert set(epci["ghsl_epoch_previous"]) == {2015}


def test_crown_sums_on_metropoles_equal_the_sum_of_their_rows(with_land):
    epci = gpd.read_parquet(with_land / "epci_indicators.parquet")
    metropoles = gpd.read_parquet(with_land / "metropoles.parquet")
    inside = epci[epci["crown"].notna()]
    for row in metropoles.itertuples():
        rows = inside[inside["metropole_code"] == row.metropole_code]
        people = rows.loc[rows["crown"] == 0, "grid_population"].sum()
        assert row.metropole_grid_population == pytest.approx(people, rel=1e-12)
        for crown, suffix in PARTS.items():
            part = rows[rows["crown"] == crown]
            hectares = getattr(row, f"agricultural_ha{suffix}")
            assert hectares == pytest.approx(part["agricultural_ha"].sum(), rel=1e-12)
            if crown:
                assert getattr(row, f"grid_population{suffix}") == pytest.approx(
                    part["grid_population"].sum(), rel=1e-12
                )
                per = getattr(row, f"agricultural_ha{suffix}_per_metropole_inhabitant")
                assert per == pytest.approx(hectares / people, rel=1e-12)
        assert row.agricultural_ha_per_inhabitant_own == pytest.approx(
            row.agricultural_ha_own / people, rel=1e-12
        )
        # The crowns have far more farmland per inhabitant of the métropole than it has.
        assert row.agricultural_ha_crown1 > row.agricultural_ha_own


def test_manifest_records_each_raster(with_land):
    manifest = manifest_of(with_land)
    rasters = {r["role"]: r for r in manifest["land"]["rasters"]}
    assert set(rasters) == {
        "land_cover",
        "built_up",
        "built_up_previous",
        "population_grid",
        "population_grid_previous",
    }
    cover = rasters["land_cover"]
    assert cover["files"] == ["demo-synthetic-OCS_2020_CESBIO-100m.tif"]
    assert (cover["product"], cover["vintage"], cover["crs"]) == (
        "OSO",
        2020,
        "EPSG:2154",
    )
    assert cover["coverage"]["FXX"] == pytest.approx(1.0, abs=1e-3)
    assert cover["counting_rule"] == "pixel centre"
    assert rasters["built_up_previous"]["vintage"] == 2015
    assert all(r["synthetic"] for r in rasters.values())
    roles = {r["role"]: r for r in manifest["inputs"]}
    assert "geography" not in roles["land_cover"]  # a raster has no commune codes
    assert len(roles["population_grid"]["sha256"]) == 64
    assert manifest["land"]["commune_points"] == "representative"
    crowns = manifest["land"]["crowns"]
    assert {(c["metropole_code"], c["crown"]) for c in crowns} >= {
        ("242900314", 0),
        ("242900314", 2),
    }
    assert "land" in manifest["timings_s"]


def test_the_maps_and_the_report_show_the_land(with_land):
    for code in ("242900314", "243500139", "244400404"):
        panel = with_land / "maps" / f"{code}_sols.png"
        assert panel.read_bytes().startswith(b"\x89PNG")
    page = (with_land / "report.html").read_text(encoding="utf-8")
    assert 'id="occupation-du-sol"' in page
    assert "Terres agricoles par habitant de la métropole" in page
    assert "de bâti et de population</h3>" in page  # the rasters' table
    assert "demo-synthetic-OCS_2020_CESBIO-100m.tif" in page


def test_a_run_without_land_keys_is_unchanged(with_land, without_land):
    for layer in LAYERS:
        land = pq.read_table(with_land / f"{layer}.parquet")
        plain = pq.read_table(without_land / f"{layer}.parquet")
        assert land.schema.equals(plain.schema, check_metadata=False), layer
        for name in plain.column_names:
            column = plain.column(name)
            if name in LAND_COLUMNS:
                assert column.null_count == len(column), (layer, name)
                continue
            other = land.column(name)
            if column.type == "double":
                # The flow systems' sums are not bit-stable from run to run.
                a, b = column.to_numpy(), other.to_numpy()
                assert np.allclose(a, b, rtol=1e-12, equal_nan=True), (layer, name)
            else:
                assert column.equals(other), (layer, name)
    manifest = manifest_of(without_land)
    assert "land" not in manifest
    assert "land" not in manifest["timings_s"]
    assert not any(
        r["role"].startswith(("land", "built", "pop")) for r in manifest["inputs"]
    )
    assert not list((without_land / "maps").glob("*_sols.png"))
    page = (without_land / "report.html").read_text(encoding="utf-8")
    assert "Occupation du sol" not in page


def _weighted_centre(epci: gpd.GeoDataFrame, code: str) -> tuple[float, float]:
    """The inhabitants' mean place in an EPCI, from the raster's cells (by hand)."""
    polygon = epci.loc[epci["epci_code"] == code].geometry.iloc[0]
    with rasterio.open(POPULATION) as src:
        people = src.read(1).astype(float)
        rows, cols = np.nonzero(people > 0)
        x, y = rasterio.transform.xy(src.transform, rows, cols)
        to_l93 = Transformer.from_crs(src.crs.to_wkt(), epci.crs, always_xy=True)
    lx, ly = to_l93.transform(np.asarray(x), np.asarray(y))
    inside = shapely.contains_xy(polygon, lx, ly)
    weights = people[rows, cols][inside]
    return float(np.average(lx[inside], weights=weights)), float(
        np.average(ly[inside], weights=weights)
    )


def test_population_weighted_points_end_the_lines_and_start_the_distances(
    tmp_path, with_land
):
    config = demo_config(tmp_path, extra='commune_points = "population_weighted"\n')
    weighted = run(config, tmp_path / "outputs")
    lines = gpd.read_parquet(weighted / "flows.parquet")
    before = gpd.read_parquet(with_land / "flows.parquet")
    assert (lines["workers"].to_numpy() == before["workers"].to_numpy()).all()
    epci = gpd.read_parquet(with_land / "epci_indicators.parquet")
    brest = "242900314"
    start = lines.loc[lines["origin_code"] == brest].geometry.iloc[0].coords[0]
    expected = _weighted_centre(epci, brest)
    # Cell centres counted the same way; a mean over cells, not exactly the
    # mean of the communes' means reprojected: within a few metres.
    assert np.hypot(start[0] - expected[0], start[1] - expected[1]) < 50
    old = before.loc[before["origin_code"] == brest].geometry.iloc[0].coords[0]
    assert np.hypot(start[0] - old[0], start[1] - old[1]) > 100
    # Distances change, but stay the same commutes.
    ratio = lines["distance_km"] / before["distance_km"]
    assert not np.allclose(ratio.dropna(), 1.0)
    assert ratio.median() == pytest.approx(1.0, abs=0.25)
    assert manifest_of(weighted)["land"]["commune_points"] == "population_weighted"
