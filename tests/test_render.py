"""The report's pictures drawn on every core (observatory.report.render).

A share of the systems' PNG files is drawn by a helper process
(``python -m observatory.report.helper``): the files must be the same bytes,
in the same order, as when one process draws them all, and a failing helper
must stop the report with a message saying so.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys

import pytest
from test_maps import run_demo

from observatory.core.errors import OutputError
from observatory.report import render


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's layers, manifest and config, read back from its run folder."""
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_a_helper_draws_the_same_bytes_as_one_process(demo, monkeypatch):
    layers, manifest, config = demo
    args = (layers, manifest, config.classification, config.reliability)
    alone = render.render_maps(*args, processes=1)
    monkeypatch.setattr(render, "MIN_SYSTEMS_SHARED", 1)  # the demo has 3 systems
    here, shares = render._shared(render.map_systems(layers, manifest), 2)
    assert len(here) == 1
    assert [len(s) for s in shares] == [2]
    shared = render.render_maps(*args, processes=2)
    assert list(shared) == list(alone)
    assert shared == alone


def test_few_systems_are_drawn_here(demo):
    layers, manifest, _ = demo
    systems = render.map_systems(layers, manifest)
    assert len(systems) < render.MIN_SYSTEMS_SHARED
    assert render._shared(systems, 4) == ({s.code for s in systems}, [])


def test_a_failing_helper_stops_the_report(demo, monkeypatch):
    layers, manifest, config = demo
    monkeypatch.setattr(render, "MIN_SYSTEMS_SHARED", 1)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # exits 1, says nothing
    with pytest.raises(
        OutputError,
        match=r"report: the helper drawing the maps of 2 system\(s\) failed \(exit status 1\)",
    ):
        render.render_maps(
            layers, manifest, config.classification, config.reliability, processes=2
        )


def test_the_helper_command_says_what_it_could_not_read():
    done = subprocess.run(
        [sys.executable, "-m", "observatory.report.helper"],
        input=b"not a pickle",
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("UnpicklingError")


def test_the_helper_command_draws_what_it_is_given(demo):
    layers, manifest, config = demo
    systems = render.map_systems(layers, manifest)[:1]
    payload = (systems, manifest, config.classification, config.reliability)
    done = subprocess.run(
        [sys.executable, "-m", "observatory.report.helper"],
        input=pickle.dumps(payload),
        capture_output=True,
        check=True,
    )
    files = pickle.loads(done.stdout)
    code = systems[0].code
    assert list(files)[:3] == [
        f"maps/{code}.png",
        f"charts/{code}_dependance.png",
        f"charts/{code}_flux.png",
    ]
    assert all(png.startswith(b"\x89PNG") for png in files.values())


def test_a_report_that_stops_kills_its_helper(demo, monkeypatch):
    layers, manifest, config = demo
    started = []

    class Recorded(render._Helper):
        def __init__(self, *args):
            super().__init__(*args)
            started.append(self)

    def broken(*args, **kwargs):
        msg = "drawing failed here"
        raise RuntimeError(msg)

    monkeypatch.setattr(render, "_Helper", Recorded)
    monkeypatch.setattr(render, "MIN_SYSTEMS_SHARED", 1)
    monkeypatch.setattr(render, "map_figure", broken)  # in this process only
    with pytest.raises(RuntimeError, match="drawing failed here"):
        render.render_maps(
            layers, manifest, config.classification, config.reliability, processes=2
        )
    assert len(started) == 1
    assert started[0]._helper.returncode == -signal.SIGKILL  # killed, not awaited
