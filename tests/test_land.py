"""Land indicators (observatory.land): class tables, inputs, indicators, the demo's rasters.

A small territory is generated: six square communes of 1 km² in three EPCI
(a métropole, its first and its second crown) with land-cover, built-up and
population rasters whose every figure below is worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

from observatory.config import load_config  # noqa: E402
from observatory.core.errors import ConfigError, DataError  # noqa: E402
from observatory.land.classes import GROUPS, load_class_table  # noqa: E402
from observatory.land.inputs import LandRasters  # noqa: E402
from observatory.land.points import weighted_group_points  # noqa: E402
from observatory.land.run import land_indicators  # noqa: E402
from observatory.layers.land_layers import (  # noqa: E402
    lines_between,
    with_epci_land_columns,
    with_metropole_land_columns,
)
from observatory.layers.land_schemas import (  # noqa: E402
    EPCI_LAND_FIELDS,
    METROPOLE_LAND_FIELDS,
)

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "configs" / "land"
DEMO = ROOT / "data" / "demo" / "land"
X0, Y0 = 300_000.0, 6_800_000.0  # Lambert-93, top-left corner of the territory


# ------------------------------------------------------------------ class tables
@pytest.mark.parametrize(
    ("name", "n", "groups"),
    [
        ("oso-2018.toml", 24, 4),
        ("oso-2016.toml", 17, 4),
        ("clc-2018.toml", 44, 5),
        ("clc-2018-clc-codes.toml", 44, 5),
    ],
)
def test_shipped_class_tables_load(name, n, groups):
    table = load_class_table(TABLES / name)
    assert len(table.classes) == n
    assert len(table.groups_present()) == groups
    assert not set(table.nodata) & {c.code for c in table.classes}


def test_corine_groups_follow_its_first_digit():
    table = load_class_table(TABLES / "clc-2018-clc-codes.toml")
    first = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4}
    assert all(c.group == GROUPS[first[str(c.code)[0]]] for c in table.classes)


def _table(tmp_path, body):
    path = tmp_path / "table.toml"
    path.write_text(
        'product = "X"\nvintages = [2020]\nnodata = [0]\n' + body, encoding="utf-8"
    )
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[classes]]\ncode = 7\ngroup = "farmland"\n',
            r"code 7: unknown group 'farmland'",
        ),
        (
            '[[classes]]\ncode = 0\ngroup = "water"\n',
            r"code 0 is both a class and a no-data",
        ),
        (
            '[[classes]]\ncode = 3\ngroup = "water"\n[[classes]]\ncode = 3\ngroup = "water"\n',
            r"code\(s\) \[3\] given more than once",
        ),
        (
            '[[classes]]\ncode = "3"\ngroup = "water"\n',
            r"class 1 code must be an integer",
        ),
        (
            '[[classes]]\ncode = 3\ngroup = "water"\ncolour = 1\n',
            r"class 1: unknown key\(s\) \['colour'\]",
        ),
    ],
)
def test_bad_class_tables_are_refused_naming_file_and_code(tmp_path, body, message):
    path = _table(tmp_path, body)
    with pytest.raises(ConfigError, match=r"table\.toml: " + message):
        load_class_table(path)


# ------------------------------------------------------------------ territory
def _square(col, row):
    x, y = X0 + col * 1000, Y0 - row * 1000
    return shapely.box(x, y - 1000, x + 1000, y)


def territory():
    """c1 c2 | c3 on the first row, c4 | c5 c6 on the second: EPCI M, A, B."""
    cells = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    communes = gpd.GeoDataFrame(
        {
            "commune_code": ["29001", "29002", "29003", "29004", "29005", "29006"],
            "epci_code": ["M", "M", "A", "A", "B", "B"],
        },
        geometry=[_square(*c) for c in cells],
        crs="EPSG:2154",
    )
    crowns = pd.DataFrame(
        {
            "metropole_code": ["M", "M", "M"],
            "epci_code": ["M", "A", "B"],
            "crown": [0, 1, 2],
        }
    )
    return communes, crowns


def write(path, data, pixel, nodata):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype.name,
        crs="EPSG:2154",
        transform=from_origin(X0, Y0, pixel, pixel),
        nodata=nodata,
        tiled=True,
        blockxsize=64,
        blockysize=64,
    ) as dst:
        dst.write(data, 1)
    return path


def land_cover_raster(path):
    """10 m OSO codes: c1 dense built-up; c2 half diffuse, half cereals; c3 cereals;
    c4 half grassland, half forest; c5 water; c6 maize but its last 100 m no data."""
    data = np.zeros((200, 300), dtype="uint8")
    data[:100, :100] = 1
    data[:100, 100:150], data[:100, 150:200] = 2, 6
    data[:100, 200:] = 6
    data[100:150, :100], data[150:, :100] = 13, 16
    data[100:, 100:200] = 23
    data[100:, 200:290] = 10
    return write(path, data, 10.0, 0)


def ghsl_rasters(tmp_path):
    """100 m grids: people per cell by commune; built-up m² per cell."""
    per_cell = np.array([[10.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    people = per_cell.repeat(10, 0).repeat(10, 1).astype("float32")
    built = np.array([[100, 50, 0], [0, 0, 0]]).repeat(10, 0).repeat(10, 1)
    return {
        "population_grid": [
            write(tmp_path / "GHS_POP_E2020_x.tif", people, 100.0, -200.0)
        ],
        "population_grid_previous": [
            write(tmp_path / "GHS_POP_E2015_x.tif", people, 100.0, -200.0)
        ],
        "built_up": [
            write(
                tmp_path / "GHS_BUILT_S_E2020_x.tif",
                built.astype("uint16"),
                100.0,
                65535,
            )
        ],
        "built_up_previous": [
            write(
                tmp_path / "GHS_BUILT_S_E2015_x.tif",
                (built // 2).astype("uint16"),
                100.0,
                65535,
            )
        ],
    }


def _inputs(tmp_path, extra=""):
    config = tmp_path / "run.toml"
    config.write_text(
        f"""[inputs]
communes = "c.shp"
epci_composition = "e.xlsx"
flows = "f.csv"
land_cover = "OCS_2020_land.tif"
land_cover_classes = "{(TABLES / "oso-2018.toml").as_posix()}"
built_up = "b.tif"
built_up_previous = "b0.tif"
population_grid = "p.tif"
population_grid_previous = "p0.tif"
{extra}""",
        encoding="utf-8",
    )
    return load_config(config).inputs


@pytest.fixture
def indicators(tmp_path):
    communes, crowns = territory()
    files = {"land_cover": [land_cover_raster(tmp_path / "OCS_2020_land.tif")]}
    files |= ghsl_rasters(tmp_path)
    rasters = LandRasters.from_config(_inputs(tmp_path), files)
    return land_indicators(communes, crowns, rasters)


def test_land_shares_per_epci(indicators):
    epci = indicators.epci
    assert epci.loc["M", "artificialised_share"] == pytest.approx(0.75)
    assert epci.loc["M", "agricultural_share"] == pytest.approx(0.25)
    assert epci.loc["A", "agricultural_share"] == pytest.approx(0.75)
    assert epci.loc["A", "forest_seminatural_share"] == pytest.approx(0.25)
    assert epci.loc["B", "water_share"] == pytest.approx(1 / 1.9)
    assert epci.loc["B", "land_cover_coverage"] == pytest.approx(0.95)
    assert epci["wetland_share"].isna().all()  # OSO has no wetland class
    shares = epci[[f"{g}_share" for g in GROUPS]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    assert epci["agricultural_ha"].tolist() == pytest.approx([150.0, 90.0, 50.0])


def test_built_up_per_inhabitant_and_its_change(indicators):
    m = indicators.epci.loc["M"]
    assert m["grid_population"] == pytest.approx(1500)
    assert m["built_up_m2"] == pytest.approx(15_000)
    assert m["built_up_m2_per_inhabitant"] == pytest.approx(10.0)
    assert m["built_up_m2_per_inhabitant_previous"] == pytest.approx(5.0)
    assert m["built_up_m2_per_inhabitant_change"] == pytest.approx(5.0)
    assert indicators.epci.loc["B", "built_up_m2_per_inhabitant"] == 0.0


def test_crown_farmland_per_metropole_inhabitant(indicators):
    crowns = indicators.crowns.set_index("crown")
    assert crowns["agricultural_ha"].tolist() == pytest.approx([50.0, 150.0, 90.0])
    assert crowns["metropole_population"].tolist() == pytest.approx([1500] * 3)
    per = crowns["agricultural_ha_per_metropole_inhabitant"]
    assert per.tolist() == pytest.approx([50 / 1500, 0.1, 0.06])
    row = indicators.metropoles.set_index("metropole_code").loc["M"]
    assert row["agricultural_ha_own"] == pytest.approx(50.0)
    assert row["agricultural_ha_per_inhabitant_own"] == pytest.approx(50 / 1500)
    assert row["agricultural_ha_crown2_per_metropole_inhabitant"] == pytest.approx(0.06)
    assert row["agricultural_ha_crown1"] == pytest.approx(150.0)
    assert row["metropole_grid_population"] == pytest.approx(1500)
    # Shares of each crown from its summed areas: A is 3/4 farmland, 1/4 forest.
    assert row["agricultural_share_crown1"] == pytest.approx(0.75)
    assert row["forest_seminatural_share_crown1"] == pytest.approx(0.25)
    assert row["land_cover_coverage_crown2"] == pytest.approx(0.95)
    assert row["built_up_m2_per_inhabitant_own"] == pytest.approx(10.0)


def test_population_weighted_centres(indicators):
    centres = indicators.centres
    assert centres.loc["29001", ["x", "y"]].tolist() == pytest.approx(
        [X0 + 500, Y0 - 500]
    )
    assert centres["population_weighted"].all()
    assert centres["area_km2"].tolist() == pytest.approx([1.0] * 6)


def test_epci_centres_weigh_their_communes_by_inhabitants(indicators):
    centres = indicators.centres
    keys = pd.Series(["M", "M", "A", "A", "B", "B"], index=centres.index)
    points = weighted_group_points(centres, keys)
    # M: c1 holds 1,000 inhabitants around x = 500, c2 500 around x = 1,500.
    assert points.loc["M", ["x", "y"]].tolist() == pytest.approx(
        [X0 + (1000 * 500 + 500 * 1500) / 1500, Y0 - 500]
    )
    assert points.loc["M", "grid_population"] == pytest.approx(1500)


def test_land_columns_are_empty_without_land_and_joined_with_it(indicators):
    communes, _ = territory()
    epci = communes.dissolve("epci_code").reset_index()[["epci_code", "geometry"]]
    epci = epci.assign(metropole_code="M")
    names = [f.name for f in EPCI_LAND_FIELDS]
    empty = with_epci_land_columns(epci, None)
    assert empty[names].isna().all().all()
    assert list(epci.columns) == [
        "epci_code",
        "geometry",
        "metropole_code",
    ]  # unchanged
    filled = with_epci_land_columns(epci, indicators.epci, (2020, 2020, 2015))
    by_code = filled.set_index("epci_code")
    assert by_code["agricultural_ha"].to_dict() == pytest.approx(
        {"A": 150.0, "B": 90.0, "M": 50.0}
    )
    assert set(filled["land_cover_vintage"]) == {2020}
    assert set(filled["ghsl_epoch_previous"]) == {2015}
    metropoles = epci[epci["epci_code"] == "M"]
    row = with_metropole_land_columns(metropoles, indicators.metropoles).iloc[0]
    assert row["agricultural_ha_own"] == pytest.approx(50.0)
    assert {f.name for f in METROPOLE_LAND_FIELDS} <= set(row.index)
    empty = with_metropole_land_columns(metropoles, None)
    assert empty[[f.name for f in METROPOLE_LAND_FIELDS]].isna().all().all()


def test_lines_are_redrawn_between_the_points_given():
    lines = gpd.GeoDataFrame(
        {"origin_code": ["A", "B"], "destination_code": ["B", "C"]},
        geometry=[
            shapely.LineString([(0, 0), (1, 1)]),
            shapely.LineString([(1, 1), (2, 2)]),
        ],
        crs="EPSG:2154",
    )
    points = pd.DataFrame({"x": [10.0, 20.0], "y": [0.0, 5.0]}, index=["A", "B"])
    out = lines_between(lines, points)
    assert list(out.geometry.iloc[0].coords) == [(10.0, 0.0), (20.0, 5.0)]
    assert out.geometry.iloc[1].equals(lines.geometry.iloc[1])  # C has no point
    assert lines_between(lines, None) is lines


def test_provenance_names_each_raster(indicators):
    records = {p.role: p.record() for p in indicators.provenance}
    assert records["land_cover"]["product"] == "OSO"
    assert records["land_cover"]["vintage"] == 2020
    assert records["land_cover"]["coverage"] == pytest.approx(5.9 / 6)
    assert records["built_up_previous"]["vintage"] == 2015
    assert records["population_grid"]["crs"] == "EPSG:2154"
    assert {r["counting_rule"] for r in records.values()} == {"pixel centre"}


def test_a_code_the_class_table_lacks_stops_the_run(tmp_path):
    communes, crowns = territory()
    path = land_cover_raster(tmp_path / "OCS_2016_land.tif")  # 2018 codes
    config = _inputs(tmp_path).__class__(
        communes=Path("c"),
        epci_composition=Path("e"),
        flows=Path("f"),
        land_cover=path,
        land_cover_classes=TABLES / "oso-2016.toml",
    )
    rasters = LandRasters.from_config(config, {"land_cover": [path]})
    with pytest.raises(
        DataError, match=r"OCS_2016_land\.tif: pixel code\(s\) \[1, 2, 6"
    ):
        land_indicators(communes, crowns, rasters)


# ------------------------------------------------------------------ inputs
def test_vintage_and_epochs_come_from_the_names(tmp_path):
    inputs = _inputs(tmp_path)
    rasters = LandRasters.from_config(
        inputs, {"land_cover": [Path("OCS_2020_land.tif")]} | ghsl_rasters(tmp_path)
    )
    assert rasters.land_cover_vintage == 2020
    assert rasters.epochs == (2020, 2015)


def test_a_vintage_the_table_is_not_for_is_refused(tmp_path):
    inputs = _inputs(tmp_path, "land_cover_vintage = 2017\n")
    with pytest.raises(ConfigError, match=r"land cover of 2017, but the class table"):
        LandRasters.from_config(inputs, {"land_cover": [Path("x.tif")]})


def test_epochs_disagreeing_with_the_names_are_refused(tmp_path):
    inputs = _inputs(tmp_path, "built_up_epochs = [2025, 2015]\n")
    with pytest.raises(ConfigError, match=r"GHSL epoch 2020 in its name, but 2025"):
        LandRasters.from_config(inputs, ghsl_rasters(tmp_path))


def test_config_without_land_inputs_is_unchanged():
    inputs = load_config(ROOT / "configs" / "example.toml").inputs
    rasters = LandRasters.from_config(inputs, {})
    assert rasters.empty
    assert inputs.land_cover is None
    assert inputs.built_up_epochs == ()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('land_cover = "x.tif"\n', r"land_cover needs land_cover_classes"),
        (
            'built_up_previous = "x.tif"\n',
            r"built_up_previous is set but built_up is not",
        ),
        (
            'built_up = "x.tif"\nbuilt_up_epochs = [2020, 2015]\n',
            r"built_up_epochs must give one epoch per built-up input",
        ),
        (
            'built_up = "x.tif"\nbuilt_up_epochs = ["2020"]\n',
            r"built_up_epochs must be distinct GHSL epochs",
        ),
        (
            'commune_points = "population_weighted"\n',
            r'commune_points = "population_weighted" needs population_grid',
        ),
        (
            'commune_points = "centroid"\n',
            r"commune_points must be one of \['representative', 'population_weighted'\]",
        ),
    ],
)
def test_land_keys_are_checked_when_the_config_loads(tmp_path, extra, message):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[inputs]\ncommunes = "c.shp"\nepci_composition = "e.xlsx"\nflows = "f.csv"\n{extra}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"run\.toml: \[inputs\] " + message):
        load_config(config)


# ------------------------------------------------------------------ demo rasters
@pytest.mark.skipif(
    not DEMO.is_dir(), reason="no demo rasters (scripts/make_demo_rasters.py)"
)
@pytest.mark.parametrize(
    ("pattern", "crs", "dtype", "nodata"),
    [
        ("*OCS_2020*", "EPSG:2154", "uint8", 0),
        ("*GHS_BUILT_S_E20*", "ESRI:54009", "uint16", 65535),
        ("*GHS_POP_E20*", "ESRI:54009", "float32", -200),
    ],
)
def test_demo_rasters_have_the_real_products_form(pattern, crs, dtype, nodata):
    from pyproj import CRS

    files = sorted(DEMO.glob(pattern))
    assert files
    for path in files:
        with rasterio.open(path) as src:
            assert CRS.from_wkt(src.crs.to_wkt()) == CRS.from_user_input(crs)
            assert (src.dtypes[0], src.nodata) == (dtype, nodata)
            assert src.tags().get("SYNTHETIC", "").startswith("yes")
            assert src.res == (100.0, 100.0)
    if dtype == "uint8":
        table = load_class_table(TABLES / "oso-2018.toml")
        with rasterio.open(files[0]) as src:
            codes = set(np.unique(src.read(1, out_shape=(500, 500))).tolist())
        assert codes - {0} <= {c.code for c in table.classes}


def test_communes_outside_the_land_cover_get_no_land_cover_figures(tmp_path):
    # La Réunion's communes (EPSG:2975) against a mainland raster: OSO overseas.
    communes, crowns = territory()
    moved = communes.set_geometry(
        communes.geometry.translate(340_000 - X0, 7_650_000 - Y0)
    ).set_crs("EPSG:2975", allow_override=True)
    files = {"land_cover": [land_cover_raster(tmp_path / "OCS_2020_land.tif")]}
    rasters = LandRasters.from_config(_inputs(tmp_path), files)
    land = land_indicators(moved, crowns, rasters)
    assert (land.epci["land_cover_coverage"] == 0).all()
    assert land.epci[[f"{g}_share" for g in GROUPS]].isna().all().all()
    assert land.epci["agricultural_ha"].isna().all()  # unknown, not 0 ha
    assert land.metropoles["agricultural_ha_own"].isna().all()
    (record,) = [p.record() for p in land.provenance]
    assert record["coverage"] == 0.0
    from observatory.runs.land import coverage_warnings

    (warning,) = coverage_warnings({"REU": land})
    assert (
        "OCS_2020_land.tif: the land_cover raster covers none of the communes"
        in warning
    )
    assert "La Réunion (REU)" in warning
