"""FD_MOBPRO read out of core: read_fd on CSV, zip, gzip and Parquet files.

Cases that must be covered:
- the dask path equals the in-memory one: CSV in several partitions (blocks of
  every size around a line, CRLF, BOM, header only), Parquet in several row
  groups, CSV inside a zip, a dask.distributed LocalCluster; the last merge cut
  in key ranges is the whole merge;
- bad values are reported with their file line (CSV) or row (Parquet), and the
  error carries the file and the line;
- the report counts rows, triples, pairs and workers by mode.
"""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mobpro_samples import (
    COLUMNS,
    CORSICA_ROWS,
    RP2016_ROWS,
    RP2021_ROWS,
    assert_same_flows,
    commune_pairs,
    fd_frame,
    synthetic_fd,
    write_csv,
)

from observatory.core.errors import ConfigError, DataError, SourceError
from observatory.readers.fd_mobpro import aggregate_fd as aggregate
from observatory.readers.fd_mobpro import read_fd
from observatory.readers.fd_mobpro.frame import flow_table, sum_frame
from observatory.readers.fd_mobpro.partials import (
    PartitionError,
    final_range,
    merge_sums,
)
from observatory.systems.modes import MODES


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
        match=r"FD_MOBPRO_2021\.csv: IPONDI must be a number >= 0 and <= 35,000,000 "
        r"\(the employed people of France\): line 1735: 'n/a'",
    ) as info:
        read_fd(path, blocksize=15_000, scheduler="synchronous", progress=False)
    assert (info.value.path, info.value.line) == (path, 1735)


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


def test_read_fd_csv_with_latin1_bytes_in_other_columns(tmp_path):
    frame = synthetic_fd(600, seed=9)
    frame["LIBELLE"] = "caf\xe9"
    path = tmp_path / "FD_MOBPRO_2021.csv"
    path.write_bytes(frame.to_csv(sep=";", index=False).encode("latin-1"))
    table, _ = read_fd(path, blocksize=8_000, progress=False)
    assert_same_flows(table, aggregate(frame, 2021))


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
    with pytest.raises(DataError, match=r"DCLT must be .*line 1002: 'XX'") as info:
        read_fd(
            path,
            blocksize=10_000,
            scheduler=local_cluster.scheduler_address,
            progress=False,
        )
    # The partition's number crossed the workers in the pickled error.
    assert isinstance(info.value.__cause__, PartitionError)
    assert info.value.__cause__.partition > 0
    assert info.value.line == 1002


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


def test_read_fd_csv_header_only_is_refused(tmp_path):
    # A file of no worker would give a run of empty modal shares: never published.
    path = tmp_path / "FD_MOBPRO_2021.csv"
    path.write_text(";".join(COLUMNS) + "\n")
    with pytest.raises(DataError, match=r"FD_MOBPRO_2021\.csv: no data lines") as info:
        read_fd(path, progress=False)
    assert (info.value.path, info.value.line) == (path, 2)


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
    frame = synthetic_fd(4_000, seed=8)
    # Partitions of uneven sizes, one of them empty.
    cuts = [0, 100, 100, 1_700, 2_500, 4_000]
    parts = []
    for start, stop in itertools.pairwise(cuts):
        keys, sums = sum_frame(frame.iloc[start:stop], 2021)
        parts.append((keys, sums, stop - start))
    keys, sums = merge_sums([(k, s) for k, s, _ in parts])
    pieces = [final_range(number, ranges, *parts) for number in range(ranges)]
    assert [count["rows"] for _, count in pieces] == [len(frame)] * ranges
    table = pd.concat([piece for piece, _ in pieces], ignore_index=True)
    pd.testing.assert_frame_equal(table, flow_table(keys, sums))
    assert sum(count["pairs"] for _, count in pieces) == len(commune_pairs(table))
    np.testing.assert_allclose(
        np.sum([count["workers"] for _, count in pieces], axis=0).sum(),
        table["workers"].sum(),
    )
    if ranges > 1:  # the work is shared
        assert sum(len(piece) > 0 for piece, _ in pieces) > 1
