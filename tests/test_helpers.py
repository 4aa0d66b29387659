"""Helper processes (observatory.core.helpers): real ``python -m`` children."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

from observatory.core.helpers import LATER, Helper

ECHO = """
    import os
    from observatory.core.helpers import serve

    def work(request):
        if request == "fail":
            raise ValueError("told to fail")
        # More than a pipe holds (64 KiB): the answer must come whole.
        return {"got": request, "pid": os.getpid(), "big": bytes(300_000)}

    serve(work)
"""


@pytest.fixture
def echo(tmp_path, monkeypatch):
    """The module name of a helper answering what it is asked, on PYTHONPATH."""
    (tmp_path / "echo_helper.py").write_text(textwrap.dedent(ECHO))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "echo_helper"


def _temporary_answers(tmp_path):
    return sorted(tmp_path.glob("observatory-helper-*"))


def test_a_helper_answers_through_its_file(echo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the answer's file
    helper = Helper(echo, {"a": [1, 2]})
    status, answer, said = helper.answer()
    assert (status, said) == (0, "no message")
    assert answer["got"] == {"a": [1, 2]}
    assert answer["big"] == bytes(300_000)
    assert answer["pid"] == helper._process.pid  # answered by the child
    assert _temporary_answers(tmp_path) == []  # removed once read
    helper.stop()


def test_a_helper_started_first_is_asked_later(echo):
    helper = Helper(echo, LATER)
    try:
        with pytest.raises(RuntimeError, match="echo_helper was never asked"):
            helper.answer()
        assert helper.returncode is None  # waiting for its request
        helper.ask("later")
        with pytest.raises(RuntimeError, match="echo_helper was asked already"):
            helper.ask("again")
        assert helper.answer()[1]["got"] == "later"
    finally:
        helper.stop()


def test_a_helper_never_asked_is_killed_and_its_file_removed(
    echo, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    helper = Helper(echo)
    assert len(_temporary_answers(tmp_path)) == 1
    helper.stop()
    assert helper.returncode == -signal.SIGKILL
    assert _temporary_answers(tmp_path) == []


def test_a_failing_helper_gives_its_status_and_last_line(echo):
    helper = Helper(echo, "fail")
    try:
        assert helper.answer() == (1, None, "ValueError: told to fail")
    finally:
        helper.stop()


def test_by_hand_a_helper_answers_on_its_standard_output(echo, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", echo],
        input=pickle.dumps("by hand"),
        capture_output=True,
        check=True,
        cwd=tmp_path,
    )
    assert pickle.loads(done.stdout)["got"] == "by hand"
