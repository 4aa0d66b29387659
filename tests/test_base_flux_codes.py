"""The base flux as read hands its codes on as numbers: coded flows, table on demand.

:meth:`CodedFlows.from_codes` (a book in the order met, each row's numbers in
it) must give what :meth:`CodedFlows.from_frame` gives on the table of those
codes, to the last bit; the string table is built only when asked for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import write_flows

from observatory.core.errors import DataError
from observatory.readers.base_flux import CommuneFlows, read_base_flux
from observatory.runs.census import coded_flows
from observatory.systems.codebook import CodedFlows

# Codes with spaces around them (stripped), arrondissements, abroad codes, and
# 13055 and 99140 met first as a destination.
ROWS = [
    (" 75101", "13055 ", "12.5"),
    ("69381", "99140", "3"),
    ("13055", "75101", "7.25"),
    ("01001", "01001", "0"),
    ("2A004", " 99140", "1e-9"),
]


def _same(left: CodedFlows, right: CodedFlows) -> None:
    pd.testing.assert_series_equal(left.codes, right.codes, check_exact=True)
    for name in ("origin", "destination", "workers"):
        a, b = getattr(left, name), getattr(right, name)
        assert a.dtype == b.dtype, name
        assert a.tobytes() == b.tobytes(), name


@pytest.fixture
def flows(tmp_path) -> CommuneFlows:
    return read_base_flux(write_flows(tmp_path / "flux.zip", ROWS))


def test_codes_as_read_are_those_of_the_table(flows):
    # Numbered as met, a block's origins before its destinations: not sorted.
    assert flows.codes.to_pylist() == [
        "75101", "69381", "13055", "01001", "2A004", "99140",
    ]  # fmt: skip
    assert flows.table["origin_commune"].tolist() == [
        "75101", "69381", "13055", "01001", "2A004",
    ]  # fmt: skip
    assert flows.table["destination_commune"].tolist() == [
        "13055", "99140", "75101", "01001", "99140",
    ]  # fmt: skip
    assert flows.workers.tolist() == [12.5, 3.0, 7.25, 0.0, 1e-9]
    assert len(flows) == 5
    assert flows.touching(["99140"]).tolist() == [False, True, False, False, True]
    assert flows.touching(["75101", "01001"]).tolist() == [1, 0, 1, 1, 0]
    assert not flows.touching(["75056"]).any()  # arrondissements as read


def test_coded_from_the_book_is_coded_from_the_table(flows):
    _same(coded_flows(flows), CodedFlows.from_frame(flows.table))


def test_from_codes_sorts_the_book_and_keeps_only_the_codes_used():
    """A shuffled book with codes no row uses, and one that differs by a space."""
    rng = np.random.default_rng(2)
    book = ["75056", " 75056", "99999", "01001", "13201", "2B033", "unused", "69123"]
    origin = rng.integers(0, 6, 300)
    destination = rng.integers(0, 6, 300)
    destination[:3] = 7  # 69123: a destination only
    workers = rng.gamma(0.5, 20.0, 300)
    coded = CodedFlows.from_codes(pa.array(book), origin, destination, workers)
    table = pd.DataFrame(
        {
            "origin_commune": np.asarray(book)[origin],
            "destination_commune": np.asarray(book)[destination],
            "workers": workers,
        }
    ).astype({"origin_commune": "string", "destination_commune": "string"})
    _same(coded, CodedFlows.from_frame(table))
    assert "unused" not in set(coded.codes)
    assert coded.workers is not workers  # the flows' own array, as from_frame's


def test_from_codes_refuses_a_row_without_a_code_as_from_frame_does():
    book = pa.array(["01001", None, "01002"])
    origin = np.array([0, 2, 0, -1])
    destination = np.array([2, 1, 0, 0])
    with pytest.raises(DataError) as coded:
        CodedFlows.from_codes(book, origin, destination, np.ones(4))
    table = pd.DataFrame(
        {
            "origin_commune": ["01001", "01002", "01001", None],
            "destination_commune": ["01002", None, "01001", "01001"],
            "workers": np.ones(4),
        }
    ).astype({"origin_commune": "string", "destination_commune": "string"})
    with pytest.raises(DataError) as framed:
        CodedFlows.from_frame(table)
    assert str(coded.value) == str(framed.value)
    assert str(coded.value).startswith("flows: 2 row(s) without an origin")


def test_the_table_is_built_on_demand_once(flows):
    table = flows.table
    assert flows.table is table  # kept
    assert table.dtypes.to_dict() == {
        "origin_commune": pd.StringDtype("pyarrow"),
        "destination_commune": pd.StringDtype("pyarrow"),
        "workers": np.dtype("float64"),
    }
    table.loc[0, "workers"] = -1.0  # the table's own column
    assert flows.workers[0] == 12.5


def test_duplicated_pairs_added_up_in_codes(tmp_path):
    rows = [("01001", "01002", "1"), ("01001", "01004", "2"), ("01001 ", "01002", "3")]
    flows = read_base_flux(
        write_flows(tmp_path / "flux.zip", rows), allow_duplicate_pairs=True
    )
    assert flows.codes.to_pylist() == ["01001", "01002", "01004"]
    assert flows.origin.tolist() == [0, 0]
    assert flows.destination.tolist() == [1, 2]
    assert flows.workers.tolist() == [4.0, 2.0]
    _same(coded_flows(flows), CodedFlows.from_frame(flows.table))


def test_a_run_without_fd_mobpro_never_builds_the_string_table(
    tiny_inputs, monkeypatch
):
    from observatory.cli import main

    def refused(self):
        msg = "the string table was built"
        raise AssertionError(msg)

    monkeypatch.setattr(CommuneFlows, "table", property(refused))
    out = tiny_inputs.parent / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out), "-q"]) == 0
