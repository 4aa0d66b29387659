"""The census base flux read by a helper process (observatory.runs.census_reading).

Real helper processes (``python -m observatory.readers.base_flux_helper``), on
small files made here.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from conftest import FLOW_ROWS, write_flows

from observatory.core.errors import DataError, SourceError
from observatory.readers.base_flux import read_base_flux
from observatory.runs import census_reading
from observatory.runs.census_reading import CensusReading

EARLIER = [(o, d, str(float(w) + 1)) for o, d, w in FLOW_ROWS]


def test_the_helper_reads_what_the_reader_reads(tmp_path):
    paths = {
        "flows": write_flows(tmp_path / "flux-2021.zip"),
        "flows_previous": write_flows(tmp_path / "flux-2016.zip", rows=EARLIER),
    }
    reading = CensusReading(paths, allow_duplicate_pairs=False)
    try:
        read = reading.result()
    finally:
        reading.stop()
    assert set(read) == set(paths)
    for role, path in paths.items():
        here = read_base_flux(path)
        there = read[role]
        assert there.codes.equals(here.codes)
        for name in ("origin", "destination", "workers"):
            assert np.array_equal(getattr(there, name), getattr(here, name))
        assert (there.vintage, there.flow_column, there.member) == (
            here.vintage,
            here.flow_column,
            here.member,
        )
    assert reading.seconds is not None
    assert reading.seconds > 0
    assert reading.result() is read  # asked twice, answered once


def test_a_refused_file_is_the_readers_error_at_stage_read(tmp_path):
    path = write_flows(tmp_path / "flux.zip", rows=[("6938", "69266", "50")])
    with pytest.raises(DataError) as in_process:
        read_base_flux(path)
    reading = CensusReading({"flows": path}, allow_duplicate_pairs=False)
    with pytest.raises(DataError) as helped:
        reading.result()
    reading.stop()
    assert str(helped.value) == str(in_process.value)
    assert helped.value.path == in_process.value.path == path
    assert helped.value.line == in_process.value.line
    assert helped.value.stage == "read"


def test_a_helper_that_fails_is_a_source_error_quoting_it(tmp_path, monkeypatch):
    monkeypatch.setattr(census_reading, "HELPER", "observatory.no_such_helper")
    path = write_flows(tmp_path / "flux.zip")
    reading = CensusReading({"flows": path}, allow_duplicate_pairs=False)
    with pytest.raises(SourceError, match=r"exit status 1\): .*no_such_helper") as err:
        reading.result()
    assert err.value.stage == "read"
    assert str(path) in str(err.value)


def test_stop_kills_a_helper_still_reading(tmp_path, monkeypatch):
    (tmp_path / "slow_helper.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(census_reading, "HELPER", "slow_helper")
    reading = CensusReading({"flows": tmp_path / "flux.zip"}, False)
    started = time.monotonic()
    reading.stop()
    assert time.monotonic() - started < 30  # killed, not awaited
    assert reading._helper.returncode == -signal.SIGKILL


def test_a_reading_matches_only_its_own_files(tmp_path):
    path = write_flows(tmp_path / "flux.zip")
    reading = CensusReading({"flows": path}, allow_duplicate_pairs=False)
    try:
        assert reading.matches({"flows": path}, False)
        assert not reading.matches({"flows": path}, True)
        assert not reading.matches({"flows": tmp_path / "other.zip"}, False)
    finally:
        reading.stop()
