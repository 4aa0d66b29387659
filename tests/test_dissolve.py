"""Dissolving communes into EPCI without geopandas' per-group loop.

The vectorized union must give geopandas' ``dissolve`` geometry byte for byte
(same WKB): on a clean coverage, where GEOS refuses a coverage (only that
territory is unioned the general way), and where a coverage union comes out
wrong (that EPCI alone is unioned again). Territories dissolved together must
give what each gives alone.
"""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon, box

from observatory.core.errors import DataError
from observatory.systems.adjacency import _first_seen, coincident_lengths
from observatory.systems.crowns import epci_by_territory, epci_from_communes
from observatory.systems.dissolve import dissolve_groups

KM = 1_000


def _cells(seed: int, n: int = 200) -> np.ndarray:
    """A clean coverage of a 40 km square: Voronoi cells of random points."""
    rng = np.random.default_rng(seed)
    square = box(0, 0, 40 * KM, 40 * KM)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(rng.uniform(0, 40 * KM, (n, 2))), extend_to=square
        )
    )
    return np.asarray(shapely.intersection(cells, square))


def _wkb(geometry) -> list[bytes]:
    return list(shapely.to_wkb(np.asarray(geometry)))


def _labels(cells: np.ndarray, groups: int, seed: int) -> np.ndarray:
    # Each cell to the nearest of a few centres; every group has a cell.
    rng = np.random.default_rng(seed)
    xy = shapely.get_coordinates(shapely.centroid(cells))
    centres = xy[rng.choice(len(xy), groups, replace=False)]
    return np.argmin(((xy[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_coverage_gives_dissolve_geometry(seed):
    cells = _cells(seed)
    labels = _labels(cells, 17, seed)
    frame = gpd.GeoDataFrame({"group": labels}, geometry=cells)
    expected = frame.dissolve(by="group", method="coverage").geometry
    united = dissolve_groups(labels, cells, np.zeros(17, dtype=int))
    assert _wkb(united) == _wkb(expected.values)


def test_refused_coverage_is_unioned_the_general_way_in_its_block_only():
    # An extra vertex on one side only: GEOS refuses the coverage, incorrectly
    # noded; the other block keeps its coverage union.
    clean = _cells(4)
    labels = _labels(clean, 5, 4)
    left = box(0, 0, 10, 10)
    right = Polygon([(10, 0), (20, 0), (20, 10), (10, 10), (10, 5)])
    with pytest.raises(shapely.errors.GEOSException):
        shapely.coverage_union_all([left, right])
    geometry = np.concatenate([clean, [left, right]])
    groups = np.append(labels, [5, 5])
    united = dissolve_groups(groups, geometry, np.array([0, 0, 0, 0, 0, 1]))
    frame = gpd.GeoDataFrame({"group": labels}, geometry=clean)
    expected = frame.dissolve(by="group", method="coverage").geometry
    assert _wkb(united[:5]) == _wkb(expected.values)
    assert shapely.to_wkb(united[5]) == shapely.to_wkb(shapely.union_all([left, right]))


def test_wrong_coverage_union_is_unioned_again():
    # Overlapping squares: the coverage union is two parts, short of the area.
    overlapping = [box(0, 0, 10, 10), box(9, 0, 20, 10)]
    far = [box(100, 0, 110, 10), box(110, 0, 120, 10)]
    geometry = np.array([*overlapping, *far])
    united = dissolve_groups(np.array([0, 0, 1, 1]), geometry, np.zeros(2, dtype=int))
    assert shapely.to_wkb(united[0]) == shapely.to_wkb(shapely.union_all(overlapping))
    assert shapely.to_wkb(united[1]) == shapely.to_wkb(shapely.coverage_union_all(far))


def test_first_seen_numbers_like_factorize():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 40, 2_000) + 1j * rng.integers(0, 3, 2_000)
    values[[3, 9]] = [-0.0 + 0j, 0.0 + 0j]
    assert np.array_equal(_first_seen(values), pd.factorize(values)[0])


def test_coincident_lengths_without_shared_segments():
    far = np.array([box(0, 0, 1, 1), box(5, 0, 6, 1)])
    assert coincident_lengths(far, np.array([0]), np.array([1])).tolist() == [0.0]


def _territory(seed: int, crs: str, first_code: int):
    cells = _cells(seed, 60)
    codes = [f"{first_code + i:05d}" for i in range(len(cells))]
    communes = gpd.GeoDataFrame(
        {"commune_code": codes, "epci_code_geo": pd.NA},
        geometry=cells,
        crs=crs,
    ).astype({"epci_code_geo": "string"})
    epci = [f"2{first_code + n:08d}" for n in _labels(cells, 4, seed)]
    return communes, pd.DataFrame({"commune_code": codes, "epci_code": epci})


def test_territories_dissolved_together_as_each_alone():
    mainland, in_mainland = _territory(5, "EPSG:2154", 10_000)
    island, in_island = _territory(6, "EPSG:2975", 97_400)
    composition = pd.concat([in_mainland, in_island], ignore_index=True)
    codes = sorted(set(composition["epci_code"]))
    epci = pd.DataFrame(
        {"epci_code": codes, "epci_name": codes, "epci_nature": ["CC"] * len(codes)}
    )
    together, report = epci_by_territory(
        {"FXX": mainland, "REU": island}, composition, epci
    )
    for territory, communes in (("FXX", mainland), ("REU", island)):
        alone, _ = epci_from_communes(communes, composition, epci)
        pd.testing.assert_frame_equal(
            together[territory].drop(columns="geometry"),
            alone.drop(columns="geometry"),
        )
        assert _wkb(together[territory].geometry) == _wkb(alone.geometry)
        assert together[territory].crs == communes.crs
    assert report["communes_with_geometry"] == len(mainland) + len(island)
    split = composition.assign(epci_code=composition["epci_code"].iloc[0])
    with pytest.raises(DataError, match="several territories"):
        epci_by_territory({"FXX": mainland, "REU": island}, split, epci)


def test_a_commune_twice_in_the_composition_is_refused():
    communes, composition = _territory(7, "EPSG:2154", 10_000)
    twice = pd.concat([composition, composition.iloc[:1]], ignore_index=True)
    epci = pd.DataFrame(
        {"epci_code": composition["epci_code"].unique(), "epci_nature": "CC"}
    ).assign(epci_name="x")
    with pytest.raises(DataError, match=r"lists communes \['10000'\] more than once"):
        epci_from_communes(communes, twice, epci)
