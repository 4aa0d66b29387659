"""FD_MOBPRO: modes across vintages, aggregation, dask reading, distances, checks.

Cases that must be covered:
- every TRANS code of RP2016 (5 modes) and RP2021 (6 modes), floats like 5.0,
  unknown codes (DataError naming the vintage and the codes);
- residence from ARM in Paris (75104 with COMMUNE 75056), an abroad DCLT (99140);
- codes as integers: packing round-trips and keeps code point order (2A/2B,
  leading zeros, abroad codes of 3-5 characters); strings, categoricals (unused,
  unordered, ordered, missing) and Arrow dictionaries give the same table;
- the dask path equals the in-memory one: CSV in several partitions (blocks of
  every size around a line, CRLF, BOM, header only), Parquet in several row
  groups, CSV inside a zip, a dask.distributed LocalCluster; the last merge cut
  in key ranges is the whole merge;
- bad values are reported with their file line;
- straight-line distances on 3-4-5 triangles, person-km, intra-commune estimate;
- FD vs base flux: equal totals pass, a 3-worker gap is reported with its pair.
"""

from __future__ import annotations

import itertools
import math
import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shapely.geometry import Point, box

from observatory.core.errors import ConfigError, DataError, SourceError
from observatory.readers.fd_mobpro import (
    INTRA_COMMUNE_FACTOR,
    MODES,
    commune_pairs,
    commune_points,
    compare_with_base_flux,
    distance_km,
    modal_split,
    person_km,
    read_fd,
    trans_to_mode,
)
from observatory.readers.fd_mobpro import aggregate_fd as aggregate

COLUMNS = ["COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI"]

# RP2021: every one of the 6 codes, an arrondissement of residence, work abroad.
RP2021_ROWS = [
    ("75056", "75104", "75108", "6", "2.5"),
    ("75056", "75104", "75108", "6", "1.5"),
    ("75056", "75104", "75108", "3", "1.0"),
    ("01001", "ZZZZZ", "99140", "5", "3.25"),
    ("01001", "ZZZZZ", "01001", "1", "2.0"),
    ("01001", "ZZZZZ", "01001", "2", "1.0"),
    ("01002", "ZZZZZ", "01001", "4", "0.5"),
    ("01002", "ZZZZZ", "01001", "5.0", "1.75"),
]
# RP2016: every one of the 5 codes; 3 is the single two-wheeler class.
RP2016_ROWS = [
    ("01001", "ZZZZZ", "01002", "1", "1.0"),
    ("01001", "ZZZZZ", "01002", "2", "2.0"),
    ("01001", "ZZZZZ", "01002", "3", "3.0"),
    ("01001", "ZZZZZ", "01002", "4", "4.0"),
    ("01001", "ZZZZZ", "01002", 4.0, "1.5"),
    ("01001", "ZZZZZ", "01002", "5", "0.5"),
]


def fd_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def flows(rows) -> pd.DataFrame:
    """A long table in the shape aggregate_fd returns, from hand-written rows."""
    frame = pd.DataFrame(
        rows, columns=["origin_commune", "destination_commune", "mode", "workers"]
    )
    return frame.astype(
        {"origin_commune": "string", "destination_commune": "string", "mode": "string"}
    )


def synthetic_fd(n: int = 3_000, seed: int = 7) -> pd.DataFrame:
    """Realistic-looking records: weights with 6+ decimals, Paris arrondissements."""
    rng = np.random.default_rng(seed)
    communes = ["01001", "01002", "2A004", "29019", "75056", "69123"]
    commune = rng.choice(communes, n)
    arm = np.where(
        commune == "75056",
        rng.choice(["75101", "75104", "75120"], n),
        np.where(commune == "69123", rng.choice(["69381", "69389"], n), "ZZZZZ"),
    )
    dclt = rng.choice(["01001", "01002", "29019", "75108", "69381", "99140"], n)
    return pd.DataFrame(
        {
            "COMMUNE": commune,
            "ARM": arm,
            "DCLT": dclt,
            "TRANS": rng.choice(["1", "2", "3", "4", "5", "6"], n),
            "IPONDI": [f"{w:.9f}" for w in rng.uniform(0.5, 9.5, n)],
            "CS1": rng.choice(["3", "4", "5"], n),
            "ILT": rng.choice(["1", "2", "7"], n),
        }
    )


def write_csv(frame: pd.DataFrame, path):
    frame.to_csv(path, sep=";", index=False)
    return path


def assert_same_flows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    # Partial sums add up in another order: equal to the last few bits.
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-12)


# --------------------------------------------------------------------- modes
@pytest.mark.parametrize(
    ("vintage", "codes", "modes"),
    [
        (
            2016,
            ["1", "2", "3", "4", "5"],
            ["none", "walk", "two_wheel", "car", "public_transport"],
        ),
        (
            2021,
            ["1", "2", "3", "4", "5", "6"],
            [
                "none",
                "walk",
                "bicycle",
                "two_wheel_motorised",
                "car",
                "public_transport",
            ],
        ),
        (2022, [5.0, 6.0, 3.0], ["car", "public_transport", "bicycle"]),
        (2012, [1, 3, 5], ["none", "two_wheel", "public_transport"]),
        (2017, ["3", "4"], ["bicycle", "two_wheel_motorised"]),
    ],
    ids=["rp2016-strings", "rp2021-strings", "rp2022-floats", "rp2012-ints", "rp2017"],
)
def test_trans_to_mode(vintage, codes, modes):
    index = pd.RangeIndex(10, 10 + len(codes))
    result = trans_to_mode(pd.Series(codes, index=index), vintage)
    assert result.tolist() == modes
    assert result.index.equals(index)
    assert set(result) <= set(MODES)


@pytest.mark.parametrize(
    ("vintage", "codes", "pattern"),
    [
        (2016, ["1", "6"], r"RP2016: unknown TRANS code\(s\) '6'.*5 modes"),
        (2021, ["7", "2", "Z"], r"RP2021: unknown TRANS code\(s\) '7', 'Z'"),
        (2021, [5.5], r"RP2021: unknown TRANS code\(s\) 5\.5"),
        (2021, ["1", None], r"RP2021: unknown TRANS code\(s\) <missing>"),
    ],
    ids=["six-in-rp2016", "seven-and-z", "not-integral", "missing"],
)
def test_unknown_trans_code(vintage, codes, pattern):
    with pytest.raises(DataError, match=pattern):
        trans_to_mode(pd.Series(codes), vintage)


def test_bad_vintage():
    with pytest.raises(DataError, match="census year"):
        trans_to_mode(pd.Series(["1"]), 21)


# --------------------------------------------------------------------- aggregation
def test_aggregate_fd_rp2021_by_hand():
    result = aggregate(fd_frame(RP2021_ROWS), 2021)
    expected = flows(
        [
            ("01001", "01001", "none", 2.0),
            ("01001", "01001", "walk", 1.0),
            ("01001", "99140", "car", 3.25),
            ("01002", "01001", "car", 1.75),
            ("01002", "01001", "two_wheel_motorised", 0.5),
            ("75104", "75108", "bicycle", 1.0),
            ("75104", "75108", "public_transport", 4.0),
        ]
    )
    pd.testing.assert_frame_equal(result, expected)


def test_aggregate_fd_rp2016_keeps_two_wheelers_whole():
    result = aggregate(fd_frame(RP2016_ROWS), 2016)
    expected = flows(
        [
            ("01001", "01002", "car", 5.5),
            ("01001", "01002", "none", 1.0),
            ("01001", "01002", "public_transport", 0.5),
            ("01001", "01002", "two_wheel", 3.0),
            ("01001", "01002", "walk", 2.0),
        ]
    )
    pd.testing.assert_frame_equal(result, expected)


def test_aggregate_fd_does_not_change_its_input():
    frame = fd_frame(RP2021_ROWS)
    before = frame.copy()
    aggregate(frame, 2021)
    pd.testing.assert_frame_equal(frame, before)


def test_aggregate_fd_collects_every_problem():
    rows = [*RP2021_ROWS]
    rows[2] = ("75056", "75104", "75108", "3", "abc")
    rows[4] = ("01001", "ZZZZZ", "01001", "7", "2.0")
    rows[5] = ("0100", "ZZZZZ", "01001", "2", "1.0")
    with pytest.raises(DataError) as info:
        aggregate(fd_frame(rows), 2021)
    message = str(info.value)
    assert "RP2021" in message
    assert "IPONDI must be a number >= 0: row 3: 'abc'" in message
    assert "TRANS must be one of ['1', '2', '3', '4', '5', '6']" in message
    assert "row 5: '7'" in message
    assert (
        "COMMUNE (or ARM) must be a 5-character commune code: row 6: '0100'" in message
    )


def test_aggregate_fd_rejects_six_in_rp2016():
    with pytest.raises(DataError, match=r"RP2016.*TRANS must be one of.*row 1: '6'"):
        aggregate(fd_frame([("01001", "ZZZZZ", "01002", "6", "1.0")]), 2016)


def test_aggregate_fd_missing_column():
    with pytest.raises(DataError, match=r"missing column\(s\) \['IPONDI'\]"):
        aggregate(fd_frame(RP2021_ROWS).drop(columns="IPONDI"), 2021)


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


# --------------------------------------------------------------------- dask reading
def test_read_fd_csv_in_partitions_equals_memory(tmp_path):
    frame = synthetic_fd()
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2021.csv")
    table, report = read_fd(
        path, blocksize=20_000, scheduler="synchronous", progress=False
    )
    assert report["partitions"] > 3
    assert report["vintage"] == 2021
    assert report["rows_read"] == len(frame)
    assert report["format"] == "csv"
    expected = aggregate(pd.read_csv(path, sep=";", dtype=str), 2021)
    assert_same_flows(table, expected)
    assert report["workers_total"] == pytest.approx(
        frame["IPONDI"].astype(float).sum(), abs=1e-3
    )
    assert set(table["origin_commune"]) >= {"75101", "75104", "69381"}
    assert "75056" not in set(table["origin_commune"])


def test_read_fd_threads_equals_memory_exactly(tmp_path):
    frame = synthetic_fd(1_500, seed=3)
    # Weights of few binary digits: sums are exact whatever the order.
    frame["IPONDI"] = [f"{w:.3f}" for w in np.arange(len(frame)) % 16 * 0.125 + 0.5]
    path = write_csv(frame, tmp_path / "RP2019_mobpro.csv")
    table, report = read_fd(path, blocksize=10_000, scheduler="threads", progress=False)
    assert report["partitions"] > 3
    pd.testing.assert_frame_equal(
        table, aggregate(pd.read_csv(path, sep=";", dtype=str), 2019)
    )


def test_read_fd_parquet_row_groups_equals_memory(tmp_path):
    frame = synthetic_fd()
    memory = aggregate(frame, 2022)
    table = pa.table(
        {
            "COMMUNE": frame["COMMUNE"].to_numpy(),
            "ARM": frame["ARM"].to_numpy(),
            "DCLT": frame["DCLT"].to_numpy(),
            "TRANS": frame["TRANS"].astype(float).to_numpy(),  # float, as in RP2022
            "IPONDI": frame["IPONDI"].astype(float).to_numpy(),
            "CS1": frame["CS1"].to_numpy(),
        }
    )
    path = tmp_path / "RP2022_mobpro.parquet"
    pq.write_table(table, path, row_group_size=500)
    assert pq.ParquetFile(path).metadata.num_row_groups == 6
    result, report = read_fd(path, blocksize=1, scheduler="synchronous", progress=False)
    assert report["format"] == "parquet"
    assert report["partitions"] == 6
    assert report["rows_read"] == len(frame)
    assert_same_flows(result, memory)


def test_read_fd_parquet_with_dictionary_columns(tmp_path):
    # R's arrow and pandas categoricals write dictionary-encoded columns.
    frame = synthetic_fd(800, seed=11)
    frame["IPONDI"] = frame["IPONDI"].astype(float)
    written = frame.astype(
        dict.fromkeys(["COMMUNE", "ARM", "DCLT", "TRANS"], "category")
    )
    path = tmp_path / "RP2021_mobpro.parquet"
    written.to_parquet(path, row_group_size=300, index=False)
    table, report = read_fd(path, blocksize=1, scheduler="threads", progress=False)
    assert report["partitions"] == 3
    assert_same_flows(table, aggregate(frame, 2021))


def test_read_fd_gzipped_csv(tmp_path):
    import gzip

    frame = synthetic_fd(500)
    path = tmp_path / "FD_MOBPRO_2018.csv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(sep=";", index=False).encode()))
    table, report = read_fd(path, blocksize=5_000, progress=False)
    assert report["vintage"] == 2018
    assert report["partitions"] > 1
    assert_same_flows(table, aggregate(frame, 2018))


def test_read_fd_zipped_csv_equals_memory(tmp_path):
    frame = synthetic_fd()
    text = frame.to_csv(sep=";", index=False)
    path = tmp_path / "RP2020_MOBPRO_csv.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("varmod_MOBPRO_2020.csv", "COD_VAR;LIB_VAR\nTRANS;Mode\n")
        archive.writestr("FD_MOBPRO_2020.csv", text)
    temp = tmp_path / "scratch"
    temp.mkdir()
    table, report = read_fd(
        path, blocksize=25_000, progress=False, scheduler="threads", temp_dir=temp
    )
    assert report["member"] == "FD_MOBPRO_2020.csv"
    assert report["vintage"] == 2020
    assert report["partitions"] > 2
    assert list(temp.iterdir()) == []  # the extracted file is gone
    assert_same_flows(table, aggregate(frame, 2020))


def test_read_fd_vintage_argument_overrides_name(tmp_path):
    path = write_csv(fd_frame(RP2016_ROWS), tmp_path / "mobility.csv")
    with pytest.raises(
        DataError, match=r"mobility\.csv: cannot tell the census vintage.*vintage="
    ):
        read_fd(path, progress=False)
    table, report = read_fd(path, 2016, progress=False)
    assert report["trans_coding"].startswith("RP2016 has 5 modes")
    assert "two_wheel" in set(table["mode"])


def test_read_fd_reports_bad_weight_with_its_line(tmp_path):
    frame = synthetic_fd(2_000)
    frame.loc[1_733, "IPONDI"] = "n/a"
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2021.csv")
    with pytest.raises(
        DataError,
        match=r"FD_MOBPRO_2021\.csv: IPONDI must be a number >= 0: line 1735: 'n/a'",
    ):
        read_fd(path, blocksize=15_000, scheduler="synchronous", progress=False)


def test_read_fd_reports_bad_trans_in_parquet_with_its_row(tmp_path):
    frame = synthetic_fd(1_000)
    frame["IPONDI"] = frame["IPONDI"].astype(float)
    frame.loc[812, "TRANS"] = "9"
    path = tmp_path / "RP2021_mobpro.parquet"
    frame.to_parquet(path, row_group_size=200, index=False)
    with pytest.raises(
        DataError, match=r"parquet: TRANS must be one of .*row 813: '9'"
    ):
        read_fd(path, blocksize=1, scheduler="synchronous", progress=False)


def test_read_fd_missing_columns(tmp_path):
    path = write_csv(
        fd_frame(RP2021_ROWS).drop(columns=["ARM", "TRANS"]),
        tmp_path / "FD_MOBPRO_2021.csv",
    )
    with pytest.raises(
        DataError,
        match=r"FD_MOBPRO_2021\.csv: line 1: missing column\(s\) \['ARM', 'TRANS'\]; "
        r"expected .*COMMUNE, ARM, DCLT, TRANS, IPONDI",
    ):
        read_fd(path, progress=False)
    parquet = tmp_path / "RP2021_mobpro.parquet"
    fd_frame(RP2021_ROWS).drop(columns="IPONDI").to_parquet(parquet)
    with pytest.raises(
        DataError, match=r"RP2021_mobpro\.parquet: missing column\(s\) \['IPONDI'\]"
    ):
        read_fd(parquet, progress=False)


def test_read_fd_missing_file_and_bad_scheduler(tmp_path):
    with pytest.raises(SourceError, match="FD_MOBPRO file not found"):
        read_fd(tmp_path / "RP2021_mobpro.parquet")
    path = write_csv(fd_frame(RP2021_ROWS), tmp_path / "FD_MOBPRO_2021.csv")
    with pytest.raises(ConfigError, match=r"scheduler must be one of .*'gpu'"):
        read_fd(path, scheduler="gpu")


# --------------------------------------------------------------------- distributed
def test_read_fd_on_local_cluster_equals_memory(tmp_path, local_cluster):
    frame = synthetic_fd()
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2019.csv")
    address = local_cluster.scheduler_address
    assert address.startswith("tcp://")
    table, report = read_fd(path, blocksize=30_000, scheduler=address, progress=True)
    assert report["scheduler"] == address
    assert report["partitions"] > 2
    assert report["rows_read"] == len(frame)
    assert_same_flows(table, aggregate(frame, 2019))


def test_bad_value_on_local_cluster_names_the_line(tmp_path, local_cluster):
    frame = synthetic_fd(1_200)
    frame.loc[1_000, "DCLT"] = "XX"
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2019.csv")
    with pytest.raises(DataError, match=r"DCLT must be .*line 1002: 'XX'"):
        read_fd(
            path,
            blocksize=10_000,
            scheduler=local_cluster.scheduler_address,
            progress=False,
        )


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


# --------------------------------------------------------------------- fast paths
def test_aggregate_fd_same_on_arrow_strings_categoricals_and_objects():
    frame = synthetic_fd(2_000, seed=5)
    expected = aggregate(frame.astype(object), 2021)
    arrow = frame.astype(dict.fromkeys(COLUMNS, "string[pyarrow]"))
    assert_same_flows(aggregate(arrow, 2021), expected)
    categories = frame.astype(dict.fromkeys(COLUMNS[:4], "category"))
    assert_same_flows(aggregate(categories, 2021), expected)


def test_read_fd_csv_with_latin1_bytes_in_other_columns(tmp_path):
    frame = synthetic_fd(600, seed=9)
    frame["LIBELLE"] = "caf\xe9"
    path = tmp_path / "FD_MOBPRO_2021.csv"
    path.write_bytes(frame.to_csv(sep=";", index=False).encode("latin-1"))
    table, _ = read_fd(path, blocksize=8_000, progress=False)
    assert_same_flows(table, aggregate(frame, 2021))


# --------------------------------------------------------------------- integer keys
def test_code_packing_round_trips_and_keeps_code_point_order():
    from observatory.readers.fd_mobpro import _pack, _symbols, _unpack

    rng = np.random.default_rng(4)
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    random = ["".join(rng.choice(alphabet, rng.integers(1, 6))) for _ in range(3_000)]
    fixed = ["01001", "2A004", "2B033", "29019", "30007", "99140", "ZZZZZ"]
    fixed += ["BE1", "BE10", "BE2", "AL12", "LU123", "0", "00000", "ZZZZ"]
    codes = pd.Series(fixed + random, dtype="string")
    packed = _pack(_symbols(codes))
    assert (packed >= 0).all()
    assert _unpack(packed).tolist() == codes.tolist()
    order = np.argsort(packed, kind="stable")
    assert codes.iloc[order].tolist() == sorted(codes.tolist())


@pytest.mark.parametrize(
    "code",
    ["", "010011", "01 01", "2a004", "01\x0001", "\u0660\u0661\u0660\u0660\u0661"],
)
def test_code_packing_refuses_what_is_no_code(code):
    from observatory.readers.fd_mobpro import _pack, _symbols

    assert _pack(_symbols(pd.Series([code, None], dtype="string"))).tolist() == [-1, -1]


CORSICA_ROWS = [
    ("2B033", "ZZZZZ", "2A004", "5", "1.5"),
    ("2A004", "ZZZZZ", "2B033", "5", "2.0"),
    ("29019", "ZZZZZ", "2A004", "6", "1.0"),
    ("30007", "ZZZZZ", "99140", "1", "0.5"),
    ("2A004", "ZZZZZ", "2A004", "2", "0.25"),
    (" 2A004 ", "ZZZZZ", "2A004 ", "2", "0.25"),  # stripped
    ("01001", "ZZZZZ", "AL12", "5", "3.0"),
    ("01001", "ZZZZZ", "BE1", "5", "1.0"),
    ("01001", "ZZZZZ", "BE10", "5", "1.0"),
    ("01001", "ZZZZZ", "01001", "5.0", "1.0"),
]


def test_aggregate_fd_corsica_abroad_and_leading_zeros_sorted_as_strings():
    result = aggregate(fd_frame(CORSICA_ROWS), 2021)
    assert list(result.itertuples(index=False, name=None)) == [
        ("01001", "01001", "car", 1.0),
        ("01001", "AL12", "car", 3.0),
        ("01001", "BE1", "car", 1.0),
        ("01001", "BE10", "car", 1.0),
        ("29019", "2A004", "public_transport", 1.0),
        ("2A004", "2A004", "walk", 0.5),
        ("2A004", "2B033", "car", 2.0),
        ("2B033", "2A004", "car", 1.5),
        ("30007", "99140", "none", 0.5),
    ]
    assert list(result.dtypes) == ["string", "string", "string", "float64"]
    # The same table as a plain pandas groupby, sorted the pandas way.
    frame = fd_frame(CORSICA_ROWS)
    expected = (
        frame.assign(
            origin_commune=frame["COMMUNE"].str.strip(),
            destination_commune=frame["DCLT"].str.strip(),
            mode=trans_to_mode(frame["TRANS"], 2021),
            workers=frame["IPONDI"].astype(float),
        )
        .groupby(["origin_commune", "destination_commune", "mode"])["workers"]
        .sum()
        .reset_index()
        .astype({"origin_commune": "string", "destination_commune": "string"})
    )
    expected["mode"] = expected["mode"].astype("string")
    assert_same_flows(result, expected)


def test_aggregate_fd_categorical_edge_cases():
    frame = fd_frame(RP2021_ROWS + CORSICA_ROWS)
    expected = aggregate(frame, 2021)
    # Unused categories (bad ones too), categories in no order, an ordered
    # categorical, TRANS as integer categories, ARM missing (= COMMUNE).
    cats = frame.copy()
    cats["COMMUNE"] = pd.Categorical(
        frame["COMMUNE"],
        categories=["XXX", *sorted(set(frame["COMMUNE"]), reverse=True), "99999"],
    )
    cats["ARM"] = pd.Categorical(
        frame["ARM"].where(frame["ARM"] != "ZZZZZ"), categories=["75104", "75999"]
    )
    cats["DCLT"] = pd.Categorical(frame["DCLT"], ordered=True)
    cats["TRANS"] = pd.Categorical(frame["TRANS"].astype(float).astype(int))
    assert_same_flows(aggregate(cats, 2021), expected)
    # Arrow dictionaries, as read_fd's partitions hold them.
    table = pa.Table.from_pandas(frame.astype({"IPONDI": float}), preserve_index=False)
    arrow = table.select(["COMMUNE", "ARM", "DCLT", "TRANS"]).to_pandas(
        types_mapper=lambda t: (
            pd.ArrowDtype(pa.dictionary(pa.int32(), t))
            if pa.types.is_string(t) or pa.types.is_large_string(t)
            else None
        )
    )
    for column in ["COMMUNE", "ARM", "DCLT", "TRANS"]:
        encoded = pa.chunked_array(
            [
                table.column(column).slice(0, 7).combine_chunks().dictionary_encode(),
                table.column(column).slice(7).combine_chunks().dictionary_encode(),
            ]
        )  # two chunks with dictionaries of their own
        arrow[column] = pd.Series(pd.arrays.ArrowExtensionArray(encoded))
    arrow["IPONDI"] = frame["IPONDI"].astype(float)
    assert_same_flows(aggregate(arrow, 2021), expected)
    # Arrow-backed columns that are not dictionaries, missing values included.
    plain = frame.astype(pd.ArrowDtype(pa.string()))
    plain["TRANS"] = frame["TRANS"].astype(float).astype(pd.ArrowDtype(pa.float64()))
    plain.loc[3, "ARM"] = None
    assert_same_flows(aggregate(plain, 2021), expected)


def test_aggregate_fd_bad_code_in_a_category_that_is_used():
    frame = fd_frame(RP2021_ROWS).astype({"DCLT": "category"})
    frame.loc[3, "DCLT"] = "01001"
    frame["DCLT"] = frame["DCLT"].cat.add_categories(["1001"])
    frame.loc[5, "DCLT"] = "1001"
    with pytest.raises(DataError, match=r"DCLT must be .*row 6: '1001'"):
        aggregate(frame, 2021)


def test_aggregate_fd_refuses_digits_of_other_scripts():
    frame = fd_frame(RP2021_ROWS)
    frame.loc[6, "COMMUNE"] = "\u0660\u0661\u0660\u0660\u0662"  # Arabic-Indic 01002
    with pytest.raises(
        DataError, match="must be a 5-character commune code: row 7: '٠١٠٠٢'"
    ):
        aggregate(frame, 2021)
    # Unused, the same category does no harm.
    frame = fd_frame(RP2021_ROWS).astype({"COMMUNE": "category"})
    frame["COMMUNE"] = frame["COMMUNE"].cat.add_categories(
        ["\u0660\u0661\u0660\u0660\u0662"]
    )
    assert_same_flows(aggregate(frame, 2021), aggregate(fd_frame(RP2021_ROWS), 2021))


def test_aggregate_fd_missing_arm_uses_commune_and_missing_dclt_is_an_error():
    frame = fd_frame(RP2021_ROWS)
    frame.loc[3:, "ARM"] = None
    assert_same_flows(aggregate(frame, 2021), aggregate(fd_frame(RP2021_ROWS), 2021))
    frame.loc[4, "DCLT"] = None
    with pytest.raises(DataError, match=r"DCLT must be .*: row 5: <NA>$"):
        aggregate(frame, 2021)


def test_aggregate_fd_empty_frame():
    result = aggregate(pd.DataFrame(columns=COLUMNS, dtype=str), 2021)
    assert result.empty
    assert list(result.columns) == [
        "origin_commune",
        "destination_commune",
        "mode",
        "workers",
    ]
    assert list(result.dtypes) == ["string", "string", "string", "float64"]


# --------------------------------------------------------------------- CSV blocks
@pytest.mark.parametrize("blocksize", [1, 2, 3, 29, 30, 31, 64, 100, 1_000])
def test_read_fd_csv_block_boundaries(tmp_path, blocksize):
    # Blocks of every size around a line's length (~30 bytes): each line is
    # read once, whatever byte a block starts or ends on.
    frame = fd_frame(RP2021_ROWS + CORSICA_ROWS)
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2021.csv")
    table, report = read_fd(
        path, blocksize=blocksize, scheduler="synchronous", progress=False
    )
    assert report["rows_read"] == len(frame)
    assert_same_flows(table, aggregate(frame, 2021))


@pytest.mark.parametrize(
    ("prefix", "newline", "last"),
    [
        (b"", b"\r\n", b"\r\n"),
        (b"\xef\xbb\xbf", b"\n", b""),
        (b"", b"\n", b"\n\n\n"),
    ],
    ids=["crlf", "bom-no-final-newline", "blank-lines-at-end"],
)
def test_read_fd_csv_line_ends_and_bom(tmp_path, prefix, newline, last):
    frame = fd_frame(RP2021_ROWS + CORSICA_ROWS)
    lines = [";".join(COLUMNS)] + [";".join(map(str, row)) for row in frame.values]
    path = tmp_path / "FD_MOBPRO_2021.csv"
    path.write_bytes(prefix + newline.join(line.encode() for line in lines) + last)
    table, report = read_fd(path, blocksize=40, progress=False)
    assert report["rows_read"] == len(frame)
    assert_same_flows(table, aggregate(frame, 2021))


def test_read_fd_csv_header_only(tmp_path):
    path = tmp_path / "FD_MOBPRO_2021.csv"
    path.write_text(";".join(COLUMNS) + "\n")
    table, report = read_fd(path, progress=False)
    assert table.empty
    assert list(table.dtypes) == ["string", "string", "string", "float64"]
    assert report["rows_read"] == report["triples"] == report["pairs"] == 0


def test_read_fd_csv_decimal_comma_and_bad_code_with_its_line(tmp_path):
    frame = synthetic_fd(1_000, seed=2)
    frame["IPONDI"] = frame["IPONDI"].str.replace(".", ",", regex=False)
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2021.csv")
    table, _ = read_fd(path, blocksize=9_000, progress=False)
    expected = frame.assign(IPONDI=frame["IPONDI"].str.replace(",", "."))
    assert_same_flows(table, aggregate(expected, 2021))
    frame.loc[640, "DCLT"] = "2C004"
    write_csv(frame, path)
    with pytest.raises(
        DataError, match=r"FD_MOBPRO_2021\.csv: DCLT must be .*line 642: '2C004'"
    ):
        read_fd(path, blocksize=9_000, scheduler="threads", progress=False)


def test_read_fd_report_counts(tmp_path):
    frame = fd_frame(RP2021_ROWS + CORSICA_ROWS)
    path = write_csv(frame, tmp_path / "FD_MOBPRO_2021.csv")
    table, report = read_fd(path, blocksize=50, progress=False)
    assert report["triples"] == len(table)
    assert report["pairs"] == len(commune_pairs(table))
    by_mode = table.groupby("mode")["workers"].sum()
    assert report["workers_by_mode"] == {
        mode: round(float(by_mode[mode]), 3) for mode in MODES if mode in by_mode
    }
    assert list(report["workers_by_mode"]) == [m for m in MODES if m in by_mode]


@pytest.mark.parametrize("ranges", [1, 2, 4, 7])
def test_final_ranges_laid_end_to_end_are_the_whole_merge(ranges):
    from observatory.readers.fd_mobpro import (
        _final_range,
        _flow_table,
        _merge_sums,
        _sum_fd,
    )

    frame = synthetic_fd(4_000, seed=8)
    # Partitions of uneven sizes, one of them empty.
    cuts = [0, 100, 100, 1_700, 2_500, 4_000]
    parts = []
    for start, stop in itertools.pairwise(cuts):
        keys, sums = _sum_fd(frame.iloc[start:stop], 2021)
        parts.append((keys, sums, stop - start))
    keys, sums = _merge_sums([(k, s) for k, s, _ in parts])
    pieces = [_final_range(number, ranges, *parts) for number in range(ranges)]
    assert [count["rows"] for _, count in pieces] == [len(frame)] * ranges
    table = pd.concat([piece for piece, _ in pieces], ignore_index=True)
    pd.testing.assert_frame_equal(table, _flow_table(keys, sums))
    assert sum(count["pairs"] for _, count in pieces) == len(commune_pairs(table))
    np.testing.assert_allclose(
        np.sum([count["workers"] for _, count in pieces], axis=0).sum(),
        table["workers"].sum(),
    )
    if ranges > 1:  # the work is shared
        assert sum(len(piece) > 0 for piece, _ in pieces) > 1
