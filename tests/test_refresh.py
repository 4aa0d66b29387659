"""Unattended refreshes (issue 4): incremental, atomic, locked, traceable. Offline.

Each test fails if its guarantee breaks:

- unchanged inputs -> "up to date", nothing written; one changed input byte, the
  config, the classification rules or the package -> recomputed;
- a run SIGKILLed at a chosen stage (a subprocess that pauses when the package
  logs the start of that stage, or the first file written) leaves ``latest/``
  byte-identical, and the next run cleans up and succeeds; SIGTERM (cron's
  ``timeout``) is a recorded failure;
- disk full while writing the run or the ``latest`` copy: same guarantee, one
  line on stderr naming the stage and the log;
- a corrupted cached source (archive or extracted member) is fetched or
  extracted again; a 404 fails naming the source;
- two refreshes at once: the second exits 75 at once; stale locks are recovered;
- ``status`` on a fresh install, after success, after failure, and its judgement
  of whether a refresh would recompute.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
from conftest import FLOW_ROWS, flows_text, write_config, write_flows, zip_bytes
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from observatory.cli import EXIT_LOCKED, main
from observatory.config import configs_dir
from observatory.runs.layout import Layout
from observatory.runs.lock import (
    LOCK_GRACE_S,
    STALE_LOCK_AFTER_S,
    Lock,
    Locked,
    process_identity,
)

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


# --------------------------------------------------------------------- helpers
@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tiny_inputs with plain CSV flows (one byte can change) and its own rules file."""
    from conftest import write_communes, write_composition_xlsx

    write_communes(tmp_path / "COMMUNE.shp")
    write_composition_xlsx(tmp_path / "EPCI_au_01-01-2023.xlsx")
    write_flows(tmp_path / "flows.csv", zipped=False)
    shutil.copy(configs_dir() / "classification.toml", tmp_path / "rules.toml")
    config = write_config(tmp_path, flows="flows.csv")
    text = config.read_text(encoding="utf-8")
    text += '\n[classification]\nfile = "rules.toml"\n\n[output]\ndir = "out"\n'
    config.write_text(text, encoding="utf-8")
    return config


def cli(config: Path, *args: str) -> int:
    return main(["refresh", "--config", str(config), *args])


def layout(config: Path) -> Layout:
    return Layout(config.parent / "out")


def read_state(out: Layout) -> dict:
    """The state file, as JSON: what it records is what cron's users read."""
    return json.loads(out.state.read_text(encoding="utf-8"))


def run_folders(config: Path) -> list[str]:
    return layout(config).run_ids()


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file below a folder (maps/, charts/ included), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def snapshot(config: Path) -> dict[str, object]:
    """Everything a reader of ``latest`` can see, byte for byte."""
    out = layout(config)
    latest = out.latest
    files = {
        str(p.relative_to(latest)): p.read_bytes()
        for p in sorted(latest.rglob("*"))
        if p.is_file()
    }
    return {
        "link": str(latest.readlink()) if latest.is_symlink() else None,
        "LATEST": (out.root / "LATEST").read_text(encoding="utf-8"),
        "files": files,
    }


def change_one_byte(config: Path) -> None:
    """300 workers -> 301 on one flow line: one byte of the flows file."""
    path = config.parent / "flows.csv"
    data = path.read_bytes()
    assert data.count(b";300\n") == 1
    path.write_bytes(data.replace(b";300\n", b";301\n"))


def e1_to_metropole(config: Path) -> float:
    epci = gpd.read_parquet(layout(config).latest / "epci_indicators.parquet")
    return float(epci.set_index("epci_code").loc["200000002", "flow_to_metropole"])


def stray(config: Path) -> list[str]:
    root = layout(config).root
    return sorted(
        p.name
        for p in root.iterdir()
        if p.name.startswith((".staging-", ".latest-", ".trash-"))
    )


#: Where a paused refresh stops: the log message it pauses on.
PAUSE_POINTS = {
    "read": "read: started",  # the stage that reads the inputs begins
    "write.partial": "wrote epci_indicators.parquet",  # one file of the run staged
    "publish.renamed": "latest: started",  # the run folder is complete, not shown
    "publish.switched": "prune: started",  # latest shows the new run
}


#: ``observatory`` with its arguments, pausing (to be killed) when the package
#: logs a message starting with ``$PAUSE_AT``, after writing its pid to
#: ``$PAUSE_FLAG``: fault injection from outside, nothing in the package.
PAUSING_MAIN = """
import logging, os, sys, time
from pathlib import Path


class PauseAt(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith(os.environ["PAUSE_AT"]):
            Path(os.environ["PAUSE_FLAG"]).write_text(str(os.getpid()))
            deadline = time.monotonic() + 120  # never hang a forgotten process
            while time.monotonic() < deadline:
                time.sleep(0.05)
            raise RuntimeError("paused at " + os.environ["PAUSE_AT"] + ", never killed")


logging.getLogger("observatory").addHandler(PauseAt())
from observatory.cli import main

sys.exit(main(sys.argv[1:]))
"""


def start_paused(config: Path, point: str, *args: str) -> subprocess.Popen[str]:
    """Start ``observatory refresh`` in a subprocess that pauses at ``point``."""
    flag = config.parent / f"paused-{point}"
    flag.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PAUSE_AT": PAUSE_POINTS[point],
        "PAUSE_FLAG": str(flag),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSING_MAIN,
            "refresh",
            "--config",
            str(config),
            "-q",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not flag.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(
                f"the refresh ended before {point}: {proc.returncode}\n{out}\n{err}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"the refresh never reached {point}")
        time.sleep(0.02)
    return proc


def kill(proc: subprocess.Popen[str], signum: int = signal.SIGKILL) -> tuple[int, str]:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


# --------------------------------------------------------------------- incremental
def test_unchanged_inputs_are_up_to_date(project, capsys):
    assert cli(project) == 0
    first = capsys.readouterr().out
    assert "Recomputed because: no successful run recorded" in first
    (run_id,) = run_folders(project)
    assert RUN_ID.match(run_id)
    assert f"latest -> {run_id} (symlink)" in first
    before = snapshot(project)
    state = read_state(layout(project))
    assert state["last_success"]["run_id"] == run_id

    assert cli(project) == 0
    out = capsys.readouterr().out
    assert out.startswith("observatory refresh: up to date;")
    assert run_id in out
    assert run_folders(project) == [run_id]  # nothing written
    assert snapshot(project) == before
    state = read_state(layout(project))
    assert state["last_attempt"]["outcome"] == "up_to_date"
    assert state["last_success"]["run_id"] == run_id

    assert cli(project, "--quiet") == 0  # cron: silent when all is well
    assert capsys.readouterr() == ("", "")

    assert cli(project, "--force") == 0
    assert "Recomputed because: --force" in capsys.readouterr().out
    assert len(run_folders(project)) == 2
    assert layout(project).latest_run() == run_folders(project)[-1]


def test_one_changed_input_byte_recomputes(project, capsys):
    assert cli(project, "-q") == 0
    assert e1_to_metropole(project) == 300
    change_one_byte(project)
    assert cli(project) == 0
    out = capsys.readouterr().out
    assert re.search(r"Recomputed because: input flows changed: .*flows\.csv", out)
    assert len(run_folders(project)) == 2
    assert e1_to_metropole(project) == 301


@pytest.mark.parametrize(
    "what", ["config", "classification rules", "package version", "package code"]
)
def test_changed_config_or_package_recomputes(project, capsys, monkeypatch, what):
    assert cli(project, "-q") == 0
    if what == "config":
        project.write_text(
            project.read_text(encoding="utf-8").replace(
                "crown_depth = 2", "crown_depth = 1"
            ),
            encoding="utf-8",
        )
    elif what == "classification rules":
        rules = project.parent / "rules.toml"
        rules.write_text(
            rules.read_text(encoding="utf-8").replace(
                "dependence_share = 0.40", "dependence_share = 0.45"
            ),
            encoding="utf-8",
        )
    elif what == "package version":
        monkeypatch.setattr("observatory.runs.fingerprint.__version__", "99.0")
    else:
        monkeypatch.setattr(
            "observatory.runs.fingerprint.code_sha256", lambda: "0" * 64
        )
    assert cli(project) == 0
    assert f"Recomputed because: {what} changed" in capsys.readouterr().out
    assert len(run_folders(project)) == 2


def test_manifest_log_and_state_trace_the_run(project):
    assert cli(project, "-q") == 0
    out = layout(project)
    manifest = json.loads((out.latest / "manifest.json").read_text(encoding="utf-8"))
    run_id = manifest["run_id"]
    assert out.latest.readlink() == Path(run_id)
    assert manifest["package"]["version"]
    assert manifest["rows"]["epci_indicators"] == 4
    assert set(manifest["rows"]) == {
        "epci_indicators",
        "flows",
        "metropoles",
        "flow_matrix",
        "dominant_flows",
    }
    assert set(manifest["timings_s"]) >= {
        "fetch",
        "fingerprint",
        "read",
        "flows",
        "export",
        "write",
    }
    assert any(
        "match no EPCI" in w for w in manifest["warnings"]
    )  # unmapped code 01999
    assert any("order of magnitude" in w for w in manifest["warnings"])  # fragile flows
    fingerprint = manifest["refresh"]["fingerprint"]
    assert (
        fingerprint["config_sha256"] == hashlib.sha256(project.read_bytes()).hexdigest()
    )
    flows = next(i for i in fingerprint["inputs"] if i["role"] == "flows")
    assert (
        flows["sha256"]
        == hashlib.sha256((project.parent / "flows.csv").read_bytes()).hexdigest()
    )
    for record in fingerprint["inputs"]:  # every part, hashed a few at a time
        assert (
            record["sha256"]
            == hashlib.sha256(Path(record["path"]).read_bytes()).hexdigest()
        )
    # Every input states its geography (issue 10); the flows' is [inputs] geography.
    assert {i["role"] for i in manifest["inputs"] if i.get("geography") == 2023} == {
        "communes",
        "epci_composition",
        "flows",
    }

    log = out.logs / f"{run_id}.log"
    text = log.read_text(encoding="utf-8")
    assert " DEBUG " in text or " INFO " in text
    assert f"refresh {run_id}: published" in text
    state = read_state(out)
    assert state["last_success"]["log"] == str(log)
    assert state["last_success"]["duration_s"] > 0
    assert state["last_success"]["fingerprint"] == fingerprint
    assert not out.lock.exists()


def test_keep_runs_prunes_only_after_a_successful_publish(project, monkeypatch):
    project.write_text(
        project.read_text(encoding="utf-8") + "keep_runs = 2\n", encoding="utf-8"
    )
    for _ in range(3):
        assert cli(project, "-q", "--force") == 0
    runs = run_folders(project)
    assert len(runs) == 2
    assert layout(project).latest_run() == runs[-1]

    project.write_text(
        project.read_text(encoding="utf-8").replace("keep_runs = 2", "keep_runs = 1"),
        encoding="utf-8",
    )
    real = pq.write_table
    monkeypatch.setattr(pq, "write_table", _disk_full)
    assert cli(project, "-q") == 1
    assert run_folders(project) == runs  # a failed run prunes nothing
    monkeypatch.setattr(pq, "write_table", real)
    assert cli(project, "-q") == 0
    (newest,) = run_folders(project)
    assert newest not in runs
    assert layout(project).latest_run() == newest


# --------------------------------------------------------------------- SIGKILL, SIGTERM
@pytest.mark.parametrize(
    "point", ["read", "write.partial", "publish.renamed", "publish.switched"]
)
def test_sigkill_at_any_stage_leaves_latest_intact(project, point):
    assert cli(project, "-q") == 0
    (good,) = run_folders(project)
    before = snapshot(project)
    change_one_byte(project)  # so that the killed run would publish a new run

    proc = start_paused(project, point)
    killed = json.loads(layout(project).lock.read_text(encoding="utf-8"))["run_id"]
    if point == "write.partial":  # really in the middle of writing
        staged = layout(project).root / f".staging-{killed}"
        assert (staged / "epci_indicators.parquet").is_file()
        assert not (staged / "manifest.json").exists()
    code, _ = kill(proc)
    assert code == -signal.SIGKILL

    if point == "publish.switched":  # latest shows the new, complete run
        assert layout(project).latest_run() == killed
        manifest = json.loads(
            (layout(project).latest / "manifest.json").read_text(encoding="utf-8")
        )
        latest = layout(project).latest
        assert sorted(manifest["files"]) == sorted(
            str(p.relative_to(latest)) for p in latest.rglob("*") if p.is_file()
        )
    else:
        assert snapshot(project) == before  # byte-identical
    if point == "publish.renamed":  # complete but never shown
        assert run_folders(project) == [good, killed]
    assert layout(project).lock.exists()  # left by the killed process

    assert cli(project, "-q") == 0  # the next run recovers and succeeds
    state = read_state(layout(project))
    assert state["last_failure"]["run_id"] == killed
    assert state["last_failure"]["outcome"] == "interrupted"
    assert state["last_attempt"]["outcome"] == "published"
    assert stray(project) == []
    assert not layout(project).lock.exists()
    assert e1_to_metropole(project) == 301
    assert good in run_folders(project)  # kept: keep_runs = 5


def test_two_refreshes_at_once_and_the_stale_lock_of_a_killed_one(project, capsys):
    assert cli(project, "-q") == 0
    before = snapshot(project)
    proc = start_paused(project, "read", "--force")
    holder = json.loads(layout(project).lock.read_text(encoding="utf-8"))
    assert holder["pid"] == proc.pid
    assert holder["host"] == socket.gethostname()

    started = time.monotonic()
    assert cli(project) == EXIT_LOCKED
    assert time.monotonic() - started < 5  # at once
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    out = layout(project).root
    assert err[0].startswith(
        f"observatory refresh: the output folder {out} is in use by refresh "
        f"{holder['run_id']}: pid {proc.pid} on host {socket.gethostname()}, "
        f"started {holder['started']}"
    )
    assert main(["run", "--config", str(project), "-q"]) == EXIT_LOCKED  # run too
    err = (
        capsys.readouterr().err
    )  # a run is told what holds the folder, not "another run"
    assert err.startswith(
        f"observatory run: the output folder {out} is in use by refresh {holder['run_id']}"
    )
    assert main(["status", "--config", str(project)]) == 0
    assert (
        f"Lock:          held by refresh {holder['run_id']}: pid {proc.pid}"
        in capsys.readouterr().out
    )

    kill(proc)
    assert main(["status", "--config", str(project)]) == 1  # interrupted
    text = capsys.readouterr().out
    assert f"Lock:          stale (process {proc.pid} is not running)" in text
    assert "interrupted (ended without recording an outcome" in text

    assert cli(project, "-q") == 0  # recovers the stale lock
    assert snapshot(project) == before  # nothing changed: up to date
    log = Path(read_state(layout(project))["last_attempt"]["log"]).read_text(
        encoding="utf-8"
    )
    assert f"recovered a stale lock (process {proc.pid} is not running)" in log


def test_sigterm_from_a_timeout_is_a_recorded_failure(project):
    assert cli(project, "-q") == 0
    before = snapshot(project)
    proc = start_paused(project, "write.partial", "--force")
    code, err = kill(proc, signal.SIGTERM)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(
        r"observatory refresh failed at stage 'write': terminated by SIGTERM; log: .*\.log",
        lines[0],
    )
    assert snapshot(project) == before
    assert stray(project) == []
    assert not layout(project).lock.exists()  # released on the way out
    state = read_state(layout(project))
    assert state["last_attempt"]["outcome"] == "failed"
    assert state["last_attempt"]["stage"] == "write"


# --------------------------------------------------------------------- disk full
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_writing_the_run(project, monkeypatch, capsys):
    assert cli(project, "-q") == 0
    before = snapshot(project)
    change_one_byte(project)
    calls = []
    real = pq.write_table

    def second_file_fails(table, where, **kwargs):
        if isinstance(where, str | Path):  # a file, not geopandas' buffer
            calls.append(where)
            if len(calls) == 2:
                _disk_full()
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", second_file_fails)
    assert cli(project, "-q") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.fullmatch(
        r"observatory refresh failed at stage 'write': .*No space left on device.*; "
        r"earlier outputs left in place; log: (.*\.log)",
        err[0],
    )
    log = Path(err[0].rsplit("; log: ", 1)[1])
    assert "No space left on device" in log.read_text(encoding="utf-8")
    assert snapshot(project) == before
    assert stray(project) == []
    assert len(run_folders(project)) == 1
    state = read_state(layout(project))
    assert state["last_attempt"]["outcome"] == "failed"
    assert state["last_attempt"]["error"] == err[0]

    monkeypatch.setattr(pq, "write_table", real)
    assert cli(project, "-q") == 0
    assert e1_to_metropole(project) == 301


def test_disk_full_while_copying_latest(project, monkeypatch, capsys):
    project.write_text(
        project.read_text(encoding="utf-8") + 'latest = "copy"\n', encoding="utf-8"
    )
    assert cli(project, "-q") == 0
    assert layout(project).latest.is_dir()
    assert not layout(project).latest.is_symlink()
    before = snapshot(project)
    change_one_byte(project)
    real = shutil.copyfile
    calls = []

    def third_copy_fails(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 3:
            _disk_full()
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", third_copy_fails)
    assert cli(project, "-q") == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("observatory refresh failed at stage 'latest': ")
    assert "No space left on device" in line
    assert snapshot(project) == before
    assert stray(project) == []

    monkeypatch.setattr(shutil, "copyfile", real)
    assert cli(project, "-q") == 0
    assert e1_to_metropole(project) == 301
    newest = run_folders(project)[-1]
    assert (layout(project).root / "LATEST").read_text(
        encoding="utf-8"
    ) == newest + "\n"
    assert (
        json.loads(
            (layout(project).latest / "manifest.json").read_text(encoding="utf-8")
        )["run_id"]
        == newest
    )


def test_a_bug_names_its_stage_and_logs_its_traceback(project, monkeypatch, capsys):
    def bug(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr("observatory.runs.execute.switch_latest", bug)
    assert cli(project, "-q") == 1
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"observatory refresh failed at stage 'latest': unexpected error "
        r"ZeroDivisionError: division by zero \(a bug: the traceback is in the "
        r"log\); log: \S+\.log",
        line,
    )
    log = Path(line.rsplit("; log: ", 1)[1]).read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log
    state = read_state(layout(project))
    assert state["last_attempt"]["stage"] == "latest"
    assert state["last_attempt"]["source"] is None
    assert not layout(project).lock.exists()


def test_latest_falls_back_to_a_copy_without_symlinks(project, monkeypatch, capsys):
    def no_symlinks(self, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(Path, "symlink_to", no_symlinks)
    assert cli(project) == 0
    assert "(copy)" in capsys.readouterr().out
    out = layout(project)
    (run_id,) = run_folders(project)
    assert out.latest.is_dir()
    assert not out.latest.is_symlink()
    assert _tree(out.latest) == _tree(out.run_dir(run_id))
    # A copy-mode switch killed between its two renames leaves no latest: healed.
    shutil.rmtree(out.latest)
    assert cli(project, "-q") == 0
    assert out.latest_run() == run_id


# --------------------------------------------------------------------- locks
def _write_lock(path: Path, **info) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info), encoding="utf-8")


def test_lock_of_a_dead_process_is_recovered(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "lock"
    _write_lock(
        path,
        pid=dead.pid,
        host=socket.gethostname(),
        run_id="old",
        started_epoch=time.time(),
    )
    lock = Lock(path, "new", "refresh")
    lock.acquire()
    assert json.loads(path.read_text())["run_id"] == "new"
    assert f"stale lock (process {dead.pid} is not running)" in lock.recovered
    assert [p.name for p in tmp_path.iterdir()] == ["lock"]  # the stale copy is gone
    lock.release()
    assert not path.exists()


@pytest.mark.parametrize(
    ("case", "age", "stale"),
    [
        ("other-host", 60, False),
        ("other-host", STALE_LOCK_AFTER_S + 60, True),
        ("being-written", 5, False),
        ("being-written", LOCK_GRACE_S + 5, True),
        ("live", 60, False),
        (
            "live",
            STALE_LOCK_AFTER_S + 60,
            False,
        ),  # never steal from a live process
        ("pid-reused", 60, True),
    ],
)
def test_lock_staleness(tmp_path, case, age, stale):
    path = tmp_path / "lock"
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    identity = process_identity(os.getpid())
    if case == "other-host":
        _write_lock(
            path, host="elsewhere", pid=1, run_id="x", started_epoch=time.time() - age
        )
    elif case == "being-written":
        path.write_text("", encoding="utf-8")
    else:
        if identity is None:
            pytest.skip("no /proc here: a process cannot be identified beyond its pid")
        process = identity if case == "live" else "another-boot:1"
        _write_lock(
            path, **me, process=process, run_id="x", started_epoch=time.time() - age
        )
    old = time.time() - age
    os.utime(path, (old, old))
    lock = Lock(path, "mine", "refresh")
    if stale:
        lock.acquire()
        assert json.loads(path.read_text(encoding="utf-8"))["run_id"] == "mine"
        lock.release()
    else:
        with pytest.raises(
            Locked, match=r"^the output folder .* is in use by a process"
        ):
            lock.acquire()
        assert path.exists()


# --------------------------------------------------------------------- sources
def zipped(csv: bytes) -> bytes:
    return zip_bytes({"flux.csv": csv})


def flows_bytes(extra: int = 0) -> bytes:
    rows = [(o, d, int(w) + extra) for o, d, w in FLOW_ROWS]
    return flows_text(rows, labels=("O", "D")).encode()


@pytest.fixture
def http(local_http_server, no_proxy):
    return local_http_server


@pytest.fixture
def sourced(project, http) -> Path:
    """The project with its flows taken from a catalogue source on a local server."""
    http.clear()
    (project.parent / "catalogue.toml").write_text(
        "[sources.flows]\n"
        'title = "Base flux"\npublisher = "INSEE"\n'
        f'url = "{http.url_for("/flux.zip")}"\n'
        'format = "zip"\nmembers = ["flux.csv"]\nvintage = 2021\ngeography = 2023\n',
        encoding="utf-8",
    )
    text = project.read_text(encoding="utf-8").replace(
        'flows = "flows.csv"', 'flows = { source = "flows" }'
    )
    project.write_text(
        '[sources]\ncatalogue = "catalogue.toml"\ncache_dir = "cache"\n' + text,
        encoding="utf-8",
    )
    yield project
    http.clear()


def serve(http: HTTPServer, body: bytes, etag: str, status: int = 200) -> None:
    def handler(request: Request) -> Response:
        if status != 200:
            return Response("gone", status=status)
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag}, content_type="application/zip")

    http.clear()
    http.expect_request("/flux.zip").respond_with_handler(handler)


def test_corrupted_cached_source_is_fetched_again(sourced, http, capsys):
    body = zipped(flows_bytes())
    serve(http, body, '"v1"')
    assert cli(sourced, "-q") == 0
    cached = sourced.parent / "cache" / "flows" / "flux.zip"
    member = sourced.parent / "cache" / "flows" / "extracted" / "flux.csv"
    assert cached.read_bytes() == body

    cached.write_bytes(b"PK\x03\x04" + b"\0" * (len(body) - 4))  # bit rot, same size
    requests_before = len(http.log)
    assert cli(sourced) == 0
    assert "up to date" in capsys.readouterr().out  # same bytes once fetched again
    assert cached.read_bytes() == body
    sent = [request for request, _ in http.log[requests_before:]]
    assert [r.headers.get("If-None-Match") for r in sent] == [
        '"v1"',
        None,
    ]  # 304, then GET

    member.write_bytes(member.read_bytes().replace(b";300\n", b";999\n"))  # same size
    assert cli(sourced) == 0
    assert "up to date" in capsys.readouterr().out
    assert member.read_bytes() == flows_bytes()  # extracted again
    assert e1_to_metropole(sourced) == 300

    serve(http, zipped(flows_bytes(extra=1)), '"v2"')  # upstream publishes a new file
    assert cli(sourced) == 0
    assert re.search(
        r"Recomputed because: input flows changed", capsys.readouterr().out
    )
    assert e1_to_metropole(sourced) == 301


def test_failed_fetch_names_the_source_and_status_says_so(sourced, http, capsys):
    assert main(["status", "--config", str(sourced)]) == 0  # fresh install
    text = capsys.readouterr().out
    assert "Last success:  none" in text
    assert "Last attempt:  none" in text
    assert "Lock:          free" in text
    assert (
        "flows: source flows (INSEE, RP 2021, geography 2023): not in the cache" in text
    )
    assert "A refresh would recompute: yes (no successful run recorded" in text

    serve(http, zipped(flows_bytes()), '"v1"')
    assert cli(sourced, "-q") == 0
    (run_id,) = run_folders(sourced)
    assert main(["status", "--config", str(sourced)]) == 0  # after success
    text = capsys.readouterr().out
    digest = hashlib.sha256(zipped(flows_bytes())).hexdigest()
    assert f"Last success:  {run_id}, finished " in text
    assert f"-> {run_id} (symlink)" in text
    assert re.search(rf"fetched \S+ \(\d+ s ago\), checked .*, sha256 {digest}", text)
    assert http.url_for("/flux.zip") in text
    assert "EPCI_au_01-01-2023.xlsx: modified" in text
    assert "A refresh would recompute: no" in text

    before = snapshot(sourced)
    serve(http, b"", '"v1"', status=404)
    assert cli(sourced, "--force", "-q") == 1
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"observatory refresh failed at stage 'fetch' \(source flows\): HTTP 404 .*; log: \S+\.log",
        line,
    ), line
    assert snapshot(sourced) == before
    assert main(["status", "--config", str(sourced)]) == 1  # after failure
    text = capsys.readouterr().out
    assert (
        f"Last attempt:  refresh {read_state(layout(sourced))['last_attempt']['run_id']}"
        in text
    )
    assert f"failed: {line}" in text
    assert f"Last success:  {run_id}" in text

    (sourced.parent / "rules.toml").write_text(
        (sourced.parent / "rules.toml").read_text(encoding="utf-8") + "\n",
        encoding="utf-8",
    )
    assert main(["status", "--config", str(sourced)]) == 1
    assert (
        "A refresh would recompute: yes (classification rules changed"
        in capsys.readouterr().out
    )


def test_status_sees_a_changed_local_input(project, capsys):
    assert cli(project, "-q") == 0
    change_one_byte(project)
    assert (
        main(
            [
                "status",
                "--config",
                str(project),
                "--output",
                str(project.parent / "out"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert re.search(
        r"A refresh would recompute: yes \(input flows changed: .*flows\.csv\)", text
    )
    # Every local input states its geography (issue 10): a bare path, the config's.
    assert "flows: local file (vintage 2021, geography 2023)" in text


def test_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[output]\nkeep_runs = 0\n[inputs]\n", encoding="utf-8")
    assert main(["refresh", "--config", str(bad), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("observatory refresh failed at stage 'config': ")
