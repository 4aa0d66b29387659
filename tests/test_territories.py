"""Crowns by land contiguity on hand-made geometries.

Cases: a 5 x 5 grid (corner contact is not a border), an island, an enclave, an
EPCI in two systems, near-matching boundaries (gap or overlap within the
tolerance, gap beyond it), a configurable depth, and dissolving communes; and,
on random coverages, the neighbours settled by coincident segments against the
tolerance measure taken for every pair.
"""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon, box

from observatory.core.errors import DataError
from observatory.systems.adjacency import (
    coincident_lengths,
    epci_adjacency,
    tolerance_lengths,
)
from observatory.systems.crowns import (
    build_crowns,
    epci_from_communes,
    select_metropoles,
)

KM = 1_000


def _epci(geoms, codes=None, natures=None):
    codes = codes or [str(200_000_000 + i) for i in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"epci_code": codes, "epci_nature": natures or ["CC"] * len(geoms)},
        geometry=geoms,
        crs="EPSG:2154",
    )


@pytest.fixture
def grid_epci():
    """5 x 5 grid of 10 km squares; the centre cell (index 12) is the métropole."""
    cells = [
        box(x, y, x + 10 * KM, y + 10 * KM)
        for y in range(0, 50 * KM, 10 * KM)
        for x in range(0, 50 * KM, 10 * KM)
    ]
    return _epci(cells)


def _crown_of(crowns, metropole="200000012"):
    part = crowns[crowns["metropole_code"] == metropole]
    return dict(zip(part["epci_code"], part["crown"], strict=True))


def test_corner_contact_is_not_first_crown(grid_epci):
    crowns = _crown_of(build_crowns(grid_epci, ["200000012"]))
    first = {c for c, k in crowns.items() if k == 1}
    assert first == {"200000007", "200000011", "200000013", "200000017"}  # edges only
    for diagonal in ("200000006", "200000008", "200000016", "200000018"):
        assert crowns[diagonal] == 2
    assert crowns["200000012"] == 0
    assert sum(k == 2 for k in crowns.values()) == 8
    assert "200000000" not in crowns  # the grid's corners are at distance 4


@pytest.mark.parametrize("depth", [1, 2, 3], ids=["depth-1", "depth-2", "depth-3"])
def test_depth_is_configurable(grid_epci, depth):
    crowns = build_crowns(grid_epci, ["200000012"], depth=depth)
    assert crowns["crown"].max() == depth
    expected = {1: 1 + 4, 2: 1 + 4 + 8, 3: 1 + 4 + 8 + 8}[depth]
    assert len(crowns) == expected


def test_island_belongs_to_no_crown():
    metropole = box(0, 0, 10 * KM, 10 * KM)
    neighbour = box(10 * KM, 0, 20 * KM, 10 * KM)
    island = box(0, 11 * KM, 10 * KM, 15 * KM)  # 1 km of sea north of the métropole
    crowns = _crown_of(
        build_crowns(_epci([metropole, neighbour, island]), ["200000000"]), "200000000"
    )
    assert crowns == {"200000000": 0, "200000001": 1}


def test_enclave_is_first_crown_and_reaches_nothing_else():
    outer = box(0, 0, 30 * KM, 30 * KM)
    hole = box(10 * KM, 10 * KM, 20 * KM, 20 * KM)
    metropole = outer.difference(hole)
    beyond = box(30 * KM, 0, 40 * KM, 30 * KM)
    crowns = _crown_of(
        build_crowns(_epci([metropole, hole, beyond]), ["200000000"]), "200000000"
    )
    assert crowns == {"200000000": 0, "200000001": 1, "200000002": 1}
    # Seen from the enclave, the métropole is its only neighbour.
    pairs = epci_adjacency(_epci([metropole, hole, beyond]))
    assert set(pairs.loc[pairs["epci_code"] == "200000001", "neighbour_code"]) == {
        "200000000"
    }


def test_epci_in_two_systems():
    west = box(0, 0, 10 * KM, 10 * KM)
    middle = box(10 * KM, 0, 20 * KM, 10 * KM)
    east = box(20 * KM, 0, 30 * KM, 10 * KM)
    crowns = build_crowns(_epci([west, middle, east]), ["200000000", "200000002"])
    middle_rows = crowns[crowns["epci_code"] == "200000001"]
    assert sorted(middle_rows["metropole_code"]) == ["200000000", "200000002"]
    assert set(middle_rows["crown"]) == {1}
    # Each métropole is in the other's second crown.
    assert _crown_of(crowns, "200000000")["200000002"] == 2


@pytest.mark.parametrize(
    ("offset_m", "neighbours"),
    [(0, True), (35, True), (-20, True), (90, True), (150, False)],
    ids=["exact", "gap-35m", "overlap-20m", "gap-90m", "gap-150m"],
)
def test_near_matching_boundaries_use_the_tolerance(offset_m, neighbours):
    left = box(0, 0, 10 * KM, 10 * KM)
    right = box(10 * KM + offset_m, 0, 20 * KM, 10 * KM)
    pairs = epci_adjacency(
        _epci([left, right]), tolerance_m=100, min_shared_border_m=500
    )
    assert (len(pairs) == 2) is neighbours
    if neighbours:
        assert pairs["shared_border_m"].iloc[0] == pytest.approx(10 * KM, rel=0.05)


def test_simplified_boundaries_with_slivers_are_neighbours():
    # Two independently simplified versions of the same wavy border.
    left = Polygon(
        [
            (0, 0),
            (10_000, 0),
            (10_040, 3_000),
            (9_970, 6_000),
            (10_000, 10_000),
            (0, 10_000),
        ]
    )
    right = Polygon(
        [(10_000, 0), (20_000, 0), (20_000, 10_000), (10_000, 10_000), (9_990, 5_000)]
    )
    pairs = epci_adjacency(_epci([left, right]))
    assert len(pairs) == 2


def test_short_contact_below_minimum_is_not_a_border():
    left = box(0, 0, 10 * KM, 10 * KM)
    # Touches the left square along 200 m only (measured with the tolerance: < 500).
    right = box(10 * KM, 9_800, 20 * KM, 20 * KM)
    assert epci_adjacency(_epci([left, right]), min_shared_border_m=500).empty
    assert len(epci_adjacency(_epci([left, right]), min_shared_border_m=250)) == 2


def test_geographic_crs_is_refused():
    gdf = _epci([box(0, 0, 1, 1)]).set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(DataError, match="projected"):
        epci_adjacency(gdf)


def test_select_metropoles_defaults_to_me_and_metlyon():
    epci = pd.DataFrame(
        {
            "epci_code": ["1", "2", "3", "4"],
            "epci_nature": ["ME", "CC", "METLYON", "CU"],
        }
    )
    assert select_metropoles(epci) == ["1", "3"]
    assert select_metropoles(epci, ("3",)) == ["3"]
    with pytest.raises(DataError, match=r"2 \(not ME/METLYON"):
        select_metropoles(epci, ("2",))
    with pytest.raises(DataError, match=r"9 .no polygon"):
        select_metropoles(epci, ("9",))


def test_epci_from_communes_dissolves_by_composition():
    communes = gpd.GeoDataFrame(
        {
            "commune_code": ["01001", "01002", "01003", "01004"],
            "epci_code_geo": ["200000001", "200000009", "200000002", pd.NA],
        },
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 0, 3, 1), box(3, 0, 4, 1)],
        crs="EPSG:2154",
    )
    composition = pd.DataFrame(
        {"commune_code": ["01001", "01002"], "epci_code": ["200000001", "200000001"]}
    )
    epci = pd.DataFrame(
        {
            "epci_code": ["200000001", "200000002"],
            "epci_name": ["A", "B"],
            "epci_nature": ["ME", "CC"],
        }
    )
    out, report = epci_from_communes(communes, composition, epci)
    assert list(out["epci_code"]) == ["200000001", "200000002"]
    assert list(out["n_communes"]) == [
        2,
        1,
    ]  # 01002: composition wins over the geometry file
    assert out.geometry.iloc[0].area == pytest.approx(2.0)
    assert report["communes_epci_disagreeing"] == 1
    assert report["communes_epci_from_geometry_file"] == 1  # 01003
    assert report["communes_without_epci"] == ["01004"]


@pytest.mark.parametrize(
    "right",
    [
        box(10, 0, 20, 10),  # a clean coverage: the shared edge matches exactly
        box(9, 0, 20, 10),  # overlap: coverage union refuses it
        Polygon([(10, 0), (20, 0), (20, 10), (10, 10), (10, 5)]),  # extra vertex
        box(10.5, 0, 20, 10),  # a gap: two parts
    ],
    ids=["clean", "overlap", "extra-vertex", "gap"],
)
def test_dissolve_equals_a_general_union_whatever_the_coverage(right):
    left = box(0, 0, 10, 10)
    communes = gpd.GeoDataFrame(
        {"commune_code": ["01001", "01002"], "epci_code_geo": [pd.NA, pd.NA]},
        geometry=[left, right],
        crs=2154,
    )
    composition = pd.DataFrame(
        {"commune_code": ["01001", "01002"], "epci_code": ["200000001"] * 2}
    )
    epci = pd.DataFrame(
        {"epci_code": ["200000001"], "epci_name": ["CC"], "epci_nature": ["CC"]}
    )
    polygons, _ = epci_from_communes(communes, composition, epci)
    geometry = polygons.geometry.iloc[0]
    assert geometry.is_valid
    assert geometry.equals(shapely.union_all([left, right]))
    assert polygons["n_communes"].iloc[0] == 2


# --------------------------------------------------------------------- coverages
def _coverage_epci(seed: int, clean: bool = True) -> gpd.GeoDataFrame:
    """EPCI dissolved from a random coverage of 300 communes (Voronoi cells).

    The cells of a 60 km square go to the nearest of 25 centres. ``clean=False``
    moves each commune by up to 5 m and adds vertices along its edges, its own
    way: the communes then overlap or leave slivers and share no segment, as
    generalised data do.
    """
    rng = np.random.default_rng(seed)
    square = box(0, 0, 60 * KM, 60 * KM)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(rng.uniform(0, 60 * KM, (300, 2))), extend_to=square
        )
    )
    cells = shapely.intersection(cells, square)
    if not clean:  # each commune moved and cut into segments of its own
        moves = rng.uniform(-5, 5, (len(cells), 2))
        cells = np.array(
            [
                shapely.segmentize(translate(cell, dx, dy), rng.uniform(300, 900))
                for cell, (dx, dy) in zip(cells, moves, strict=True)
            ]
        )
    centres = rng.uniform(0, 60 * KM, (25, 2))
    xy = shapely.get_coordinates(shapely.centroid(cells))
    nearest = np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    codes = [f"{10_000 + i:05d}" for i in range(len(cells))]
    communes = gpd.GeoDataFrame(
        {"commune_code": codes, "epci_code_geo": pd.NA},
        geometry=cells,
        crs="EPSG:2154",
    )
    composition = pd.DataFrame(
        {"commune_code": codes, "epci_code": [f"2{n:08d}" for n in nearest]}
    )
    names = sorted(set(composition["epci_code"]))
    epci = pd.DataFrame(
        {"epci_code": names, "epci_name": names, "epci_nature": ["CC"] * len(names)}
    )
    return epci_from_communes(communes, composition, epci)[0]


def _measured(epci: gpd.GeoDataFrame, tolerance: float) -> dict:
    """The tolerance measure of every pair within the tolerance, taken the long way."""
    geoms = epci.geometry.to_numpy()
    left, right = shapely.STRtree(geoms).query(
        geoms, predicate="dwithin", distance=tolerance
    )
    keep = left < right
    left, right = left[keep], right[keep]
    boundary = shapely.boundary(geoms)
    near = shapely.buffer(geoms, tolerance, quad_segs=4)
    shared = np.minimum(
        shapely.length(shapely.intersection(boundary[left], near[right])),
        shapely.length(shapely.intersection(boundary[right], near[left])),
    )
    codes = epci["epci_code"].to_numpy()
    return dict(zip(zip(codes[left], codes[right], strict=True), shared, strict=True))


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "slivers"])
@pytest.mark.parametrize("seed", [1, 2])
def test_coincident_segments_settle_what_the_measure_would(seed, clean):
    epci = _coverage_epci(seed, clean)
    measured = _measured(epci, 100.0)
    geoms = epci.geometry.to_numpy()
    position = {c: i for i, c in enumerate(epci["epci_code"])}
    left = np.array([position[a] for a, _ in measured])
    right = np.array([position[b] for _, b in measured])
    coincident = coincident_lengths(geoms, left, right)
    # A lower bound of the measure: most borders coincide on a clean coverage,
    # none when every commune has its own vertices.
    assert (coincident <= np.array(list(measured.values())) + 1e-6).all()
    assert (coincident > 0).mean() > 0.5 if clean else (coincident == 0).all()
    # Thresholds just above and below some lengths: those pairs are measured,
    # the others settled; the neighbours are the measure's own.
    known = coincident if clean else np.array(list(measured.values()))
    lengths = sorted(set(np.round(known[known > 0], 3)))
    for minimum in [500.0, lengths[len(lengths) // 2] - 0.5, lengths[-3] + 0.5]:
        pairs = epci_adjacency(epci, 100.0, minimum)
        found = set(zip(pairs["epci_code"], pairs["neighbour_code"], strict=True))
        expected = {pair for pair, shared in measured.items() if shared >= minimum}
        assert found == expected | {(b, a) for a, b in expected}, minimum
    assert tolerance_lengths(geoms, left, right, 100.0) == pytest.approx(
        list(measured.values()), abs=0
    )
