"""Modes, distances and the base-flux check on flows by mode (observatory.systems).

Cases that must be covered:
- every vintage's TRANS coding decodes to MODES, in their display order;
- modal split by hand (RP2021 and RP2016 tables), unknown modes refused;
- straight-line distances on 3-4-5 triangles, person-km, intra-commune estimate;
- FD vs base flux: equal totals pass, a 3-worker gap is reported with its pair.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from mobpro_samples import (
    RP2016_ROWS,
    RP2021_ROWS,
    commune_pairs,
    fd_frame,
    flows,
)
from shapely.geometry import Point, box

from observatory.core.errors import DataError
from observatory.readers.fd_mobpro import TRANS_FIVE_MODES, TRANS_SIX_MODES
from observatory.readers.fd_mobpro import aggregate_fd as aggregate
from observatory.systems.base_flux_check import compare_with_base_flux
from observatory.systems.distances import (
    INTRA_COMMUNE_FACTOR,
    commune_points,
    distance_km,
    person_km,
)
from observatory.systems.modes import MODES, modal_split


# --------------------------------------------------------------------- modes
@pytest.mark.parametrize("coding", [TRANS_FIVE_MODES, TRANS_SIX_MODES])
def test_trans_codings_decode_to_modes_in_display_order(coding):
    # The reader lists found modes in its coding's order: that of MODES.
    modes = list(coding.values())
    assert modes == [mode for mode in MODES if mode in modes]


def test_every_mode_is_coded_by_some_vintage():
    assert {*TRANS_FIVE_MODES.values(), *TRANS_SIX_MODES.values()} == set(MODES)


def test_modal_split_by_hand():
    split = modal_split(aggregate(fd_frame(RP2021_ROWS), 2021))
    assert list(split.columns) == [
        "origin_commune",
        "destination_commune",
        "workers",
        *[f"{mode}_share" for mode in MODES],
    ]
    by_pair = split.set_index(["origin_commune", "destination_commune"])
    paris = by_pair.loc[("75104", "75108")]
    assert paris["workers"] == 5.0
    assert paris["public_transport_share"] == pytest.approx(0.8)
    assert paris["bicycle_share"] == pytest.approx(0.2)
    home = by_pair.loc[("01001", "01001")]
    assert home["none_share"] == pytest.approx(2 / 3)
    assert home["walk_share"] == pytest.approx(1 / 3)
    moto = by_pair.loc[("01002", "01001")]
    assert moto["workers"] == 2.25
    assert moto["two_wheel_motorised_share"] == pytest.approx(2 / 9)
    assert moto["car_share"] == pytest.approx(7 / 9)
    assert by_pair.loc[("01001", "99140"), "car_share"] == 1.0
    shares = split.filter(like="_share")
    assert not shares.isna().any().any()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (split["two_wheel_share"] == 0).all()


def test_modal_split_rp2016():
    split = modal_split(aggregate(fd_frame(RP2016_ROWS), 2016)).iloc[0]
    assert split["workers"] == 12.0
    assert split["two_wheel_share"] == pytest.approx(3 / 12)
    assert split["bicycle_share"] == 0.0
    assert split["two_wheel_motorised_share"] == 0.0
    assert split["car_share"] == pytest.approx(5.5 / 12)


def test_modal_split_unknown_mode():
    with pytest.raises(DataError, match=r"unknown mode\(s\) \['bus'\]"):
        modal_split(flows([("01001", "01002", "bus", 1.0)]))


def test_commune_pairs_sums_modes():
    pairs = commune_pairs(aggregate(fd_frame(RP2021_ROWS), 2021))
    assert pairs.to_dict("list") == {
        "origin_commune": ["01001", "01001", "01002", "75104"],
        "destination_commune": ["01001", "99140", "01001", "75108"],
        "workers": [3.0, 3.25, 2.25, 5.0],
    }


# --------------------------------------------------------------------- distances
@pytest.fixture
def points() -> pd.DataFrame:
    """3-4-5 triangles in metres: A-B 5 km, A-C 10 km, B-C 5 km."""
    return pd.DataFrame(
        {"x": [0.0, 3_000.0, 6_000.0], "y": [0.0, 4_000.0, 8_000.0]},
        index=pd.Index(["01001", "01002", "75056"]),
    )


def test_distance_km_straight_line(points):
    origin = pd.Series(["01001", "01001", "01002", "01001", "75104", "01001", "01009"])
    destination = pd.Series(
        ["01002", "75056", "75056", "01001", "75108", "99140", "01001"]
    )
    km = distance_km(origin, destination, points)
    assert km.name == "distance_km"
    np.testing.assert_allclose(km.to_numpy()[:5], [5.0, 10.0, 5.0, 0.0, 0.0])
    assert km.iloc[5:].isna().all()  # abroad, unknown commune


def test_distance_km_intra_commune_estimate():
    # Squares of 1 km² and 4 km²: the estimate scales with sqrt(area).
    communes = gpd.GeoDataFrame(
        {"commune_code": ["01001", "01002"]},
        geometry=[box(0, 0, 1_000, 1_000), box(3_000, 0, 5_000, 2_000)],
        crs="EPSG:2154",
    )
    pts = commune_points(communes)
    assert pts.loc["01001", "area_km2"] == pytest.approx(1.0)
    km = distance_km(pd.Series(["01001", "01002"]), pd.Series(["01001", "01002"]), pts)
    one = INTRA_COMMUNE_FACTOR * math.sqrt(1 / math.pi)
    assert km.tolist() == pytest.approx([one, 2 * one])
    assert one == pytest.approx(0.5108, abs=1e-4)


def test_distance_km_reprojects_geoseries():
    lambert = gpd.GeoSeries(
        [Point(700_000, 6_600_000), Point(703_000, 6_604_000)],
        index=["01001", "01002"],
        crs="EPSG:2154",
    )
    km = distance_km(pd.Series(["01001"]), pd.Series(["01002"]), lambert.to_crs(4326))
    assert km.iloc[0] == pytest.approx(5.0, abs=1e-6)


def test_person_km_by_hand(points):
    table = flows(
        [
            ("01001", "01002", "car", 10.0),
            ("01001", "01002", "bicycle", 2.5),
            ("01001", "75056", "public_transport", 4.0),
            ("75104", "01002", "car", 1.5),
            ("01001", "01001", "none", 3.0),
            ("01001", "99140", "car", 2.0),
        ]
    )
    result = person_km(table, points)
    np.testing.assert_allclose(result["distance_km"].to_numpy()[:5], [5, 5, 10, 5, 0])
    np.testing.assert_allclose(
        result["person_km"].to_numpy()[:5], [50.0, 12.5, 40.0, 7.5, 0.0]
    )
    assert np.isnan(result["person_km"].iloc[5])
    assert "person_km" not in table.columns


# --------------------------------------------------------------------- base flux check
def test_compare_with_base_flux_equal_totals_pass():
    fd = aggregate(fd_frame(RP2021_ROWS), 2021)
    base = commune_pairs(fd)
    report = compare_with_base_flux(fd, base)
    assert report["consistent"] is True
    assert report["pairs_above_tolerance"] == 0
    assert report["worst_pairs"] == []
    assert report["workers_fd"] == report["workers_base"] == 13.5
    assert report["pairs_fd"] == report["pairs_base"] == 4


def test_compare_with_base_flux_reports_a_three_worker_gap():
    fd = commune_pairs(aggregate(fd_frame(RP2021_ROWS), 2021))
    base = fd.copy()
    base.loc[base["origin_commune"] == "75104", "workers"] += 3.0
    base.loc[base["origin_commune"] == "01002", "workers"] += 0.4  # rounding
    report = compare_with_base_flux(fd, base, tolerance=0.5)
    assert report["consistent"] is False
    assert report["pairs_above_tolerance"] == 1
    assert report["max_abs_gap"] == pytest.approx(3.0)
    assert report["workers_gap"] == pytest.approx(-3.4)
    assert report["worst_pairs"] == [
        {
            "origin_commune": "75104",
            "destination_commune": "75108",
            "workers_fd": 5.0,
            "workers_base": 8.0,
            "gap": -3.0,
        }
    ]


def test_compare_with_base_flux_missing_pair_and_roll_up():
    fd = commune_pairs(aggregate(fd_frame(RP2021_ROWS), 2021))
    base = fd[fd["origin_commune"] != "01001"].copy()
    base.loc[base["origin_commune"] == "75104", "origin_commune"] = "75056"
    report = compare_with_base_flux(fd, base, roll_up=True, worst=1)
    assert report["pairs_only_in_fd"] == 2
    assert report["pairs_above_tolerance"] == 2
    assert report["worst_pairs"][0]["destination_commune"] == "99140"
    assert len(report["worst_pairs"]) == 1
