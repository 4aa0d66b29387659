"""Overseas territories: each read in its CRS, its layers written in its official CRS."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from conftest import (
    COMMUNE_ROWS,
    EPCI_ROWS,
    FLOW_ROWS,
    M,
    write_communes,
    write_composition_xlsx,
    write_flows,
)
from shapely.geometry import box

from observatory.config import load_config
from observatory.core.errors import DataError
from observatory.geography import territory_of
from observatory.readers.communes import communes_by_territory
from observatory.runs.pipeline import run

# La Réunion, in its official CRS (RGR92 / UTM 40S, EPSG:2975), with the CINOR as
# pole: P (Saint-Denis + Sainte-Marie), R1 east and R2 west of it, R3 east of R1.
P, R1, R2, R3 = "249740119", "249740093", "249740101", "249740999"
REU_EPCI = [
    (P, "CA Intercommunale du Nord de la Réunion (CINOR)", "CA"),
    (R1, "CA Intercommunale Réunion Est (CIREST)", "CA"),
    (R2, "CA Territoire de la Côte Ouest (TCO)", "CA"),
    (R3, "CC du Lointain Est", "CC"),
]
X0, Y0 = 335_000, 7_660_000
REU_COMMUNES = [
    ("97411", "Saint-Denis", P, box(X0, Y0, X0 + 5_000, Y0 + 10_000)),
    ("97418", "Sainte-Marie", P, box(X0 + 5_000, Y0, X0 + 10_000, Y0 + 10_000)),
    ("97409", "Saint-André", R1, box(X0 + 10_000, Y0, X0 + 20_000, Y0 + 10_000)),
    ("97415", "Saint-Paul", R2, box(X0 - 10_000, Y0, X0, Y0 + 10_000)),
    ("97410", "Saint-Benoît", R3, box(X0 + 20_000, Y0, X0 + 30_000, Y0 + 10_000)),
]
REU_FLOWS = [
    ("97415", "97411", "100"),
    ("97409", "97411", "300"),
    ("97409", "97409", "100"),
    ("97411", "97411", "1000"),
    ("97418", "97415", "40"),
    ("97410", "97409", "50"),
    ("97411", "69123", "5"),  # to Lyon, mainland France: in no system of either
]


def _config(folder: Path, communes: str, metropoles: str = "") -> Path:
    path = folder / "overseas.toml"
    path.write_text(
        f"[inputs]\ncommunes = {communes}\n"
        'epci_composition = "EPCI.xlsx"\nflows = "flows.zip"\ngeography = 2023\n'
        # The fixture's flows hold an unmatched code on purpose (1.1 % of workers).
        "max_unmatched_share = 0.05\n\n"
        f'[territories]\n{metropoles}poles = ["{P}"]\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def overseas(tmp_path: Path) -> Path:
    write_communes(tmp_path / "COMMUNE.shp")
    write_communes(tmp_path / "COMMUNE_REU.shp", REU_COMMUNES, crs="EPSG:2975")
    write_composition_xlsx(
        tmp_path / "EPCI.xlsx", EPCI_ROWS + REU_EPCI, COMMUNE_ROWS + REU_COMMUNES
    )
    write_flows(tmp_path / "flows.zip", FLOW_ROWS + REU_FLOWS)
    return tmp_path


def test_territory_of_commune_codes():
    codes = pd.Series(
        [
            "29019",
            "2A004",
            "97105",
            "97209",
            "97302",
            "97411",
            "97608",
            "97502",
            "98735",
            "99140",
            "75101",
            None,
        ]
    )
    assert territory_of(codes).tolist() == [
        "FXX",
        "FXX",
        "GLP",
        "MTQ",
        "GUF",
        "REU",
        "MYT",
        pd.NA,
        pd.NA,
        pd.NA,
        "FXX",
        pd.NA,
    ]


def test_communes_by_territory_projects_each_to_its_crs(tmp_path):
    mixed = gpd.GeoDataFrame(
        {"commune_code": ["69123", "97411", "97502"]},
        geometry=gpd.GeoSeries(
            [
                box(4.8, 45.7, 4.9, 45.8),
                box(55.4, -20.95, 55.5, -20.9),
                box(-56.2, 46.75, -56.1, 46.8),
            ],
            crs="EPSG:4326",
        ),
    )
    frames, outside = communes_by_territory([(tmp_path / "FRA.gpkg", mixed)])
    assert list(frames) == ["FXX", "REU"]
    assert frames["FXX"].crs.to_epsg() == 2154
    assert frames["REU"].crs.to_epsg() == 2975
    assert frames["REU"]["commune_code"].tolist() == ["97411"]
    x, y = frames["REU"].geometry.iloc[0].centroid.coords[0]
    assert 300_000 < x < 400_000
    assert 7_600_000 < y < 7_700_000
    assert outside == ["97502"]  # Saint-Pierre-et-Miquelon: not in ADMIN EXPRESS


def test_a_commune_in_two_files_is_an_error():
    one = gpd.GeoDataFrame(
        {"commune_code": ["97411"]},
        geometry=[box(X0, Y0, X0 + 1, Y0 + 1)],
        crs="EPSG:2975",
    )
    with pytest.raises(
        DataError,
        match=r"b\.shp: commune code\(s\) \['97411'\] already read from .*a\.shp",
    ):
        communes_by_territory([(Path("a.shp"), one), (Path("b.shp"), one)])


def _layers(folder: Path) -> dict[str, gpd.GeoDataFrame]:
    return {
        path.stem: gpd.read_parquet(path)
        for path in folder.glob("*.parquet")
        if path.stem != "flow_matrix"
    }


def test_each_territory_written_in_its_official_crs(overseas, tmp_path):
    config = load_config(
        _config(
            overseas, '["COMMUNE.shp", "COMMUNE_REU.shp"]', f'metropoles = ["{M}"]\n'
        )
    )
    report = run(config, tmp_path / "out")
    layers = _layers(report.output_dir)
    assert sorted(layers) == sorted(
        [
            "dominant_flows",
            "epci_indicators",
            "flows",
            "metropoles",
            "dominant_flows_REU",
            "epci_indicators_REU",
            "flows_REU",
            "metropoles_REU",
        ]
    )
    for stem, layer in layers.items():
        assert layer.crs.to_epsg() == (2975 if stem.endswith("_REU") else 2154), stem

    reu = layers["epci_indicators_REU"].set_index("epci_code")
    assert set(reu["metropole_code"]) == {P}
    assert reu["crown"].to_dict() == {P: 0, R1: 1, R2: 1, R3: 2}
    # Read in its own CRS and written in it: the squares are exactly as drawn.
    assert reu.geometry[P].area == pytest.approx(100e6)
    assert reu.geometry[P].bounds == pytest.approx((X0, Y0, X0 + 10_000, Y0 + 10_000))
    # By hand: Saint-André's 400 working residents, 300 of them work in P; P's
    # 1,045 working residents, 1,000 of them in P (5 work in Lyon, 40 in R2).
    assert reu.loc[R1, "dependence_share"] == pytest.approx(300 / 400)
    assert reu.loc[R2, "dependence_share"] == pytest.approx(100 / 100)
    assert reu.loc[P, "self_containment_share"] == pytest.approx(1000 / 1045)

    mainland = layers["epci_indicators"]
    assert set(mainland["metropole_code"]) == {M}
    lines = layers["flows_REU"]
    assert set(lines["origin_code"]) | set(lines["destination_code"]) <= {P, R1, R2, R3}
    assert lines.total_bounds[0] >= X0 - 10_000
    assert lines.total_bounds[2] <= X0 + 30_000

    manifest = json.loads((report.output_dir / "manifest.json").read_text())
    assert {s["metropole_code"]: s["territory"] for s in manifest["systems"]} == {
        M: "FXX",
        P: "REU",
    }
    assert manifest["territories"]["territories"]["REU"] == {
        "name": "La Réunion",
        "crs": "EPSG:2975",
        "communes": 5,
        "epci": 4,
        "systems": [P],
    }
    shapefiles = {
        r["role"]: Path(r["path"]).name
        for r in manifest["inputs"]
        if r["path"].endswith(".shp")
    }
    assert shapefiles == {
        "communes[1]": "COMMUNE.shp",
        "communes[2]": "COMMUNE_REU.shp",
    }


def test_one_france_wide_wgs84_file_gives_the_same_systems(overseas, tmp_path):
    both = pd.concat(
        [
            gpd.read_file(overseas / "COMMUNE.shp").to_crs(4326),
            gpd.read_file(overseas / "COMMUNE_REU.shp").to_crs(4326),
        ],
        ignore_index=True,
    )
    both.to_file(overseas / "FRA_WGS84.gpkg", engine="pyogrio")
    report = run(load_config(_config(overseas, '"FRA_WGS84.gpkg"')), tmp_path / "out")
    layers = _layers(report.output_dir)
    reu = layers["epci_indicators_REU"].set_index("epci_code")
    assert reu.crs.to_epsg() == 2975
    assert reu["crown"].to_dict() == {P: 0, R1: 1, R2: 1, R3: 2}
    assert reu.geometry[P].area == pytest.approx(100e6, rel=1e-3)
    # metropoles empty: every métropole of the file (Lyon), and the pole
    assert set(layers["epci_indicators"]["metropole_code"]) == {M}


def test_pole_alone_and_unknown_pole(overseas, tmp_path):
    config = _config(overseas, '"COMMUNE_REU.shp"')
    report = run(load_config(config), tmp_path / "out")
    assert sorted(p.name for p in report.output_dir.glob("*.parquet")) == [
        "dominant_flows_REU.parquet",
        "epci_indicators_REU.parquet",
        "flow_matrix.parquet",
        "flows_REU.parquet",
        "metropoles_REU.parquet",
    ]
    config.write_text(
        config.read_text(encoding="utf-8").replace(P, "249740000"), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"poles: 249740000 \(no polygon"):
        run(load_config(config), tmp_path / "out")


def test_detailed_file_distances_in_the_territory_crs(overseas, tmp_path):
    """Straight lines are measured in EPSG:2975 in La Réunion, never across territories."""
    rows = ["COMMUNE;ARM;DCLT;TRANS;IPONDI"]
    for origin, destination, workers in FLOW_ROWS + REU_FLOWS:
        commune, arm = (
            ("69123", origin) if origin.startswith("6938") else (origin, "ZZZZZ")
        )
        rows.append(f"{commune};{arm};{destination};5;{workers}")
    (overseas / "FD_MOBPRO_2021.csv").write_text(
        "\n".join(rows) + "\n", encoding="utf-8"
    )
    config = _config(overseas, '["COMMUNE.shp", "COMMUNE_REU.shp"]')
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'flows = "flows.zip"\n',
            'flows = "flows.zip"\nfd_mobpro = "FD_MOBPRO_2021.csv"\n',
        )
        + '[compute]\nscheduler = "synchronous"\n',
        encoding="utf-8",
    )
    report = run(load_config(config), tmp_path / "out")
    lines = gpd.read_parquet(report.output_dir / "flows_REU.parquet")
    line = lines[(lines["origin_code"] == R1) & (lines["destination_code"] == P)].iloc[
        0
    ]
    polygons = {code: polygon for code, _, _, polygon in REU_COMMUNES}
    km = (
        polygons["97409"]
        .representative_point()
        .distance(polygons["97411"].representative_point())
        / 1000
    )
    assert km == pytest.approx(12.5)  # centres of the squares, as drawn in EPSG:2975
    assert line["distance_km"] == pytest.approx(km)
    assert line["car_share"] == 1
    assert not [w for w in report.warnings if "detailed file" in w]
