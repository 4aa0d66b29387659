"""A rejected download never replaces a good one (issue 12), against a loopback server.

Every test starts from a good copy of a source in the cache (a zip with its
extracted member and provenance), then meets one fault: an HTML page for the
zip, a truncated body, a 404, a pinned sha256 or size that does not match, a
zip-slip or 7z-slip archive, a zip of 2 MB that inflates to 2 GiB, a ratio
bomb (honest or lying about its sizes), a server that stalls in the middle of
the body beyond the timeout, a catalogue whose URL changed (offline), a second
fetch of the same cache at the same time. After each refusal the cache (files,
members, provenance.json) is byte for byte what it was, and the message says
why in one line. A 500 then 200 and a redirect succeed and replace the copy.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FLOW_ROWS, flows_text
from faultserver import (
    deflated_zip,
    failing_first,
    html_page,
    redirect,
    serve,
    seven_zip,
    stalled_mid_body,
    tree,
    truncated,
    zeros_zip,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request

from observatory.cli import EXIT_ERROR, EXIT_LOCKED, main
from observatory.config import SourcesSection, load_config
from observatory.core.errors import ConfigError, SourceError
from observatory.core.lock import Locked, process_identity
from observatory.sources.cache import cached_provenance, fetch_source
from observatory.sources.catalogue import Source
from observatory.sources.limits import FetchLimits

FAST = {"retries": 1, "backoff": 0, "timeout": 5}
MEMBER = "flux.csv"
GIB = 1 << 30


def flows(extra: int = 0) -> bytes:
    rows = [(o, d, int(w) + extra) for o, d, w in FLOW_ROWS]
    return flows_text(rows).encode()


V1 = deflated_zip({MEMBER: flows()})
V2 = deflated_zip({MEMBER: flows(extra=1)})


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to 127.0.0.1 only."""


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def flows_source(server: HTTPServer, path: str = "/flux.zip", **fields) -> Source:
    fields = {"format": "zip", "members": (MEMBER,), **fields}
    return Source(
        id="flows",
        title="Base flux",
        publisher="INSEE",
        url=server.url_for(path),
        **fields,
    )


@pytest.fixture
def good(server, cache) -> dict[str, bytes]:
    """The good copy V1 in the cache (zip, member, provenance); returns its tree."""
    server.expect_request("/flux.zip").respond_with_handler(serve(V1, etag='"v1"'))
    result = fetch_source(flows_source(server), cache, **FAST)
    assert result.status == "downloaded"
    assert result.members[MEMBER].read_bytes() == flows()
    server.clear()
    before = tree(cache)
    assert sorted(before) == [
        "flows/",
        "flows/extracted/",
        "flows/extracted/flux.csv",
        "flows/flux.zip",
        "flows/provenance.json",
    ]
    return before


def refused(source: Source, cache: Path, before: dict, match: str, **limits) -> str:
    """Fetch ``source``; check it is refused with ``match`` and the cache unchanged."""
    with pytest.raises(SourceError, match=match) as caught:
        fetch_source(source, cache, **{**FAST, **limits})
    message = str(caught.value)
    assert "\n" not in message
    assert tree(cache) == before
    return message


# --------------------------------------------------------------------- refused bytes
def test_html_for_a_zip(server, cache, good):
    server.expect_request("/flux.zip").respond_with_handler(html_page())
    refused(
        flows_source(server),
        cache,
        good,
        r"^flows: .*/flux\.zip returned an HTML page instead of the expected zip file",
    )


def test_truncated_body(server, cache, good):
    server.expect_request("/flux.zip").respond_with_handler(truncated(V2, 100))
    refused(
        flows_source(server),
        cache,
        good,
        rf"truncated: expected {len(V2)} bytes \(Content-Length\), got 100 \(after 1 retries\)",
    )
    assert len(server.log) == 2


def test_404_is_not_retried(server, cache, good):
    server.expect_request("/flux.zip").respond_with_data("Not Found", status=404)
    refused(flows_source(server), cache, good, r"^flows: HTTP 404 NOT FOUND for ")
    assert len(server.log) == 1


def test_sha256_mismatch(server, cache, good):
    server.expect_request("/flux.zip").respond_with_handler(serve(V2, etag='"v2"'))
    source = flows_source(server, sha256="0" * 64)
    refused(
        source, cache, good, r"^flows: SHA256 mismatch for .*: expected 0{64}, got "
    )


def test_stall_in_the_middle_of_the_body(server, cache, good):
    """Headers and 1 KiB arrive, then nothing: the read timeout ends each attempt."""
    release = threading.Event()
    body = V2 + bytes(4096)  # longer than what is sent before the stall
    server.expect_request("/flux.zip").respond_with_handler(
        stalled_mid_body(body, 1024, release)
    )
    try:
        message = refused(
            flows_source(server),
            cache,
            good,
            r"^flows: download of .*/flux\.zip stalled and timed out after \d+ bytes "
            r"\(after 1 retries\); deleted the download",
            timeout=0.5,
        )
    finally:
        release.set()
    assert int(re.search(r"after (\d+) bytes", message)[1]) >= 1024


@pytest.mark.parametrize(
    ("archive", "match"),
    [
        (
            deflated_zip({MEMBER: flows(), "../evil.csv": b"pwned"}),
            r"refusing to extract member '\.\./evil\.csv' of flux\.zip: its path falls "
            r"outside the extraction folder",
        ),
        (
            zeros_zip(MEMBER, 2 * GIB),
            r"member 'flux\.csv' of flux\.zip declares 2,147,483,648 bytes from "
            r"[\d,]+ compressed, more than max_compression_ratio = 100",
        ),
        (
            zeros_zip(MEMBER, 32 << 20),
            r"member 'flux\.csv' of flux\.zip declares 33,554,432 bytes from [\d,]+ "
            r"compressed, more than max_compression_ratio = 100",
        ),
    ],
    ids=["zip-slip", "zip-bomb-2GiB", "ratio-bomb"],
)
def test_malicious_zip(server, cache, tmp_path, good, archive, match):
    server.expect_request("/flux.zip").respond_with_handler(serve(archive, etag='"x"'))
    message = refused(flows_source(server, members=("*.csv",)), cache, good, match)
    assert message.endswith("; nothing extracted, the cache is unchanged")
    assert not list(tmp_path.rglob("evil.csv"))


def test_zip_lying_about_its_size_is_stopped_by_its_crc(server, cache, good):
    """Declared sizes are not trusted: 2 GiB of zeros declared as 1 MiB stop at 1 MiB."""
    bomb = bytearray(zeros_zip(MEMBER, 2 * GIB))
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # file_size in both headers
        at = bomb.index(header) + (22 if header == b"PK\x03\x04" else 24)
        bomb[at : at + 4] = (1 << 20).to_bytes(4, "little")
    server.expect_request("/flux.zip").respond_with_handler(serve(bytes(bomb)))
    refused(
        flows_source(server),
        cache,
        good,
        r"cannot extract from flux\.zip: Bad CRC-32 for file 'flux\.csv'; nothing "
        r"extracted, the cache is unchanged",
        max_compression_ratio=1e9,
    )


def test_zip_bomb_is_stopped_by_the_size_bound(server, cache, good):
    server.expect_request("/flux.zip").respond_with_handler(
        serve(zeros_zip(MEMBER, 2 * GIB))
    )
    refused(
        flows_source(server),
        cache,
        good,
        r"the members to extract from flux\.zip declare 2,147,483,648 bytes "
        r"uncompressed, more than max_extracted_size \(16 MiB, 16,777,216 bytes\)",
        max_extracted_bytes=16 << 20,
        max_compression_ratio=1e9,
    )


def test_not_enough_free_space(server, cache, good, monkeypatch):
    from observatory.sources import archives

    server.expect_request("/flux.zip").respond_with_handler(serve(V2, etag='"v2"'))
    usage = archives.shutil.disk_usage(cache)
    monkeypatch.setattr(
        archives.shutil, "disk_usage", lambda path: usage._replace(free=100)
    )
    refused(
        flows_source(server),
        cache,
        good,
        rf"the members of flux\.zip need {len(flows(extra=1)):,} bytes but .* has 100 "
        r"free; free some space or move \[sources\] cache_dir",
    )


def test_7z_ratio_is_counted_while_inflating(server, cache, good):
    """A 7z declares no compressed size per member: the bytes written are counted."""
    bomb = seven_zip({MEMBER: bytes(32 << 20)})
    server.expect_request("/flux.7z").respond_with_handler(serve(bomb))
    source = flows_source(server, "/flux.7z", format="7z")
    refused(
        source,
        cache,
        good,
        rf"the members of flux\.7z inflate more than max_compression_ratio = 100 "
        rf"times their {len(bomb):,} compressed bytes \(stopped after [\d,]+ bytes\)",
    )


def test_7z_slip_keeps_the_earlier_zip_usable(server, cache, tmp_path, good):
    """The catalogue moved to a 7z that is malicious: the zip and its record stay."""
    evil = seven_zip({"../evil.csv": b"pwned", MEMBER: flows(extra=1)})
    server.expect_request("/flux.7z").respond_with_handler(serve(evil))
    moved = flows_source(server, "/flux.7z", format="7z", members=("*.csv",))
    refused(
        moved, cache, good, r"refusing to extract member '\.\./evil\.csv' of flux\.7z"
    )
    assert not list(tmp_path.rglob("evil.csv"))

    with pytest.raises(
        SourceError,
        match=r"^flows: the cached .*/flux\.zip was fetched from "
        r"http://127\.0\.0\.1:\d+/flux\.zip but the catalogue now points to "
        r"http://127\.0\.0\.1:\d+/flux\.7z; run `observatory fetch` with network",
    ):
        fetch_source(moved, cache, offline=True)
    assert tree(cache) == good
    result = fetch_source(flows_source(server), cache, offline=True)  # the zip: fine
    assert result.members[MEMBER].read_bytes() == flows()


# --------------------------------------------------------------------- pins on a cached file
def test_size_pin_is_checked_on_the_cached_file(server, cache, good):
    """After a 304 or offline, a cached file off its pinned size is refused."""
    calls: list[Request] = []
    server.expect_request("/flux.zip").respond_with_handler(
        serve(V1, etag='"v1"', calls=calls)
    )
    pinned = flows_source(server, size=1000)
    refused(
        pinned,
        cache,
        good,
        rf"the catalogue pins 1000 bytes, the server announces {len(V1)}; nothing "
        "downloaded",
    )
    # the record's size differs from the pin: no conditional request, so no 304
    assert [r.headers.get("If-None-Match") for r in calls] == [None]
    with pytest.raises(
        SourceError,
        match=rf"^flows: cached .*/flux\.zip has {len(V1):,} bytes but the catalogue "
        r"pins size = 1000 \(checked offline\)",
    ):
        fetch_source(pinned, cache, offline=True)
    assert tree(cache) == good


def test_304_is_checked_against_the_pins(server, cache, good, monkeypatch):
    """Even when the validators are sent, a 304 does not vouch for an off-pin file."""
    from observatory.sources import cache as cache_module

    server.expect_request("/flux.zip").respond_with_handler(serve(V1, etag='"v1"'))
    monkeypatch.setattr(
        cache_module, "conditional_headers", lambda *a: {"If-None-Match": '"v1"'}
    )
    refused(
        flows_source(server, md5="0" * 32, md5_from="a mirror"),
        cache,
        good,
        r"^flows: cached .*/flux\.zip has md5 [0-9a-f]{32} but the catalogue pins 0{32} "
        r"\(measured by a mirror; after HTTP 304 Not Modified\)",
    )


def test_offline_refuses_a_file_from_another_url(server, cache, good):
    moved = flows_source(server, "/elsewhere/flux.zip")
    with pytest.raises(SourceError, match=r"the catalogue now points to .*/elsewhere/"):
        fetch_source(moved, cache, offline=True)
    assert tree(cache) == good
    assert server.log == []


# --------------------------------------------------------------------- successes
def test_500_then_success_replaces_the_copy_whole(server, cache, good):
    calls: list[Request] = []
    server.expect_request("/flux.zip").respond_with_handler(
        failing_first(500, serve(V2, etag='"v2"'), calls)
    )
    result = fetch_source(flows_source(server), cache, **FAST)
    assert len(calls) == 2
    assert result.status == "downloaded"
    assert result.path.read_bytes() == V2
    assert result.members[MEMBER].read_bytes() == flows(extra=1)
    assert result.provenance.extracted.archive_sha256 == result.provenance.sha256
    assert cached_provenance(flows_source(server), cache) == result.provenance
    assert [p.name for p in cache.iterdir()] == ["flows"]  # no staging, no lock left


def test_redirect_records_the_final_url(server, cache, good):
    server.expect_request("/flux.zip").respond_with_handler(
        redirect(server.url_for("/cdn/flux.zip"))
    )
    server.expect_request("/cdn/flux.zip").respond_with_handler(serve(V2))
    result = fetch_source(flows_source(server), cache, **FAST)
    assert result.provenance.final_url == server.url_for("/cdn/flux.zip")
    assert result.provenance.url == server.url_for("/flux.zip")
    assert result.members[MEMBER].read_bytes() == flows(extra=1)


def test_a_swap_cut_short_is_undone(server, cache, good):
    """Killed between the two renames: the next fetch puts the old folder back."""
    (cache / "flows").rename(cache / ".flows.old-1a2b3c4d")
    (cache / ".flows.staging-abcd1234").mkdir()  # and a staging folder left over
    result = fetch_source(flows_source(server), cache, offline=True)
    assert result.status == "offline"
    assert tree(cache) == good


# --------------------------------------------------------------------- one fetch at a time
def test_two_fetches_of_one_cache(server, cache, good):
    release = threading.Event()
    arrived = threading.Event()

    def slow(request: Request):
        arrived.set()
        return stalled_mid_body(V2, 10, release)(request)

    server.expect_request("/flux.zip").respond_with_handler(slow)
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["result"] = fetch_source(flows_source(server), cache, **FAST)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert arrived.wait(10)
        holder = json.loads((cache / ".lock").read_text(encoding="utf-8"))
        other = replace(flows_source(server), id="other")
        with pytest.raises(Locked) as caught:
            fetch_source(other, cache, **FAST)
        assert re.fullmatch(
            rf"the download cache {re.escape(str(cache))} is in use by fetch "
            rf"{holder['run_id']}: pid {os.getpid()} on host "
            rf"{re.escape(socket.gethostname())}, started {re.escape(holder['started'])}"
            rf", \d+ s ago; lock {re.escape(str(cache / '.lock'))}",
            str(caught.value),
        )
        assert not (cache / "other").exists()
    finally:
        release.set()
        thread.join(30)
    assert "error" not in outcome, outcome
    assert outcome["result"].path.read_bytes() == V2
    assert not (cache / ".lock").exists()


# --------------------------------------------------------------------- the command line
@pytest.fixture
def project(tiny_inputs, server) -> Path:
    """tiny_inputs with its flows from a catalogue source served on 127.0.0.1."""
    folder = tiny_inputs.parent
    (folder / "catalogue.toml").write_text(
        "[sources.flows]\n"
        'title = "Base flux"\npublisher = "INSEE"\n'
        f'url = "{server.url_for("/flux.zip")}"\n'
        f'format = "zip"\nmembers = ["{MEMBER}"]\nvintage = 2021\ngeography = 2023\n',
        encoding="utf-8",
    )
    text = tiny_inputs.read_text(encoding="utf-8").replace(
        'flows = "base-flux-2021.zip"', 'flows = { source = "flows" }'
    )
    tiny_inputs.write_text(
        '[sources]\ncatalogue = "catalogue.toml"\ncache_dir = "cache"\n' + text,
        encoding="utf-8",
    )
    return tiny_inputs


def test_cli_zip_bomb_with_bounds_from_the_config(project, server, capsys, caplog):
    cache = project.parent / "cache"
    server.expect_request("/flux.zip").respond_with_handler(serve(V1, etag='"v1"'))
    assert main(["fetch", "--config", str(project), "-q"]) == 0
    before = tree(cache)
    server.clear()
    server.expect_request("/flux.zip").respond_with_handler(
        serve(zeros_zip(MEMBER, 2 * GIB), etag='"bomb"')
    )
    capsys.readouterr()
    assert main(["fetch", "--config", str(project), "-q"]) == EXIT_ERROR
    assert "more than max_compression_ratio = 100" in caplog.text
    assert tree(cache) == before

    caplog.clear()
    text = project.read_text(encoding="utf-8").replace(
        "[sources]\n",
        '[sources]\nmax_extracted_size = "16 MiB"\nmax_compression_ratio = 5000\n',
    )
    project.write_text(text, encoding="utf-8")
    assert main(["fetch", "--config", str(project), "-q"]) == EXIT_ERROR
    assert "more than max_extracted_size (16 MiB, 16,777,216 bytes)" in caplog.text
    assert tree(cache) == before
    assert "FAILED      flows" in capsys.readouterr().out

    caplog.clear()  # an option replaces the config's bound for one command
    args = ["fetch", "--config", str(project), "-q", "--max-extracted-size", "8MiB"]
    assert main(args) == EXIT_ERROR
    assert "more than max_extracted_size (8 MiB, 8,388,608 bytes)" in caplog.text
    assert tree(cache) == before


def _hold_the_cache_lock(cache: Path, command: str = "fetch") -> dict:
    """Write the lock of a live fetch (this very process) into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process": process_identity(os.getpid()),
        "run_id": "20260101T000000.000Z-abcdef",
        "command": command,
        "started": "2026-01-01T00:00:00+00:00",
        "started_epoch": time.time(),
    }
    (cache / ".lock").write_text(json.dumps(holder), encoding="utf-8")
    return holder


def test_cli_fetch_and_run_refused_by_the_cache_lock(project, server, capsys):
    if process_identity(os.getpid()) is None:
        pytest.skip("no /proc here: a live holder cannot be told from a stale one")
    cache = project.parent / "cache"
    _hold_the_cache_lock(cache)
    holder = (
        f"the download cache {cache} is in use by fetch 20260101T000000.000Z-abcdef: "
        f"pid {os.getpid()} on host {socket.gethostname()}, started "
        "2026-01-01T00:00:00+00:00"
    )
    assert main(["fetch", "--config", str(project), "-q"]) == EXIT_LOCKED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"observatory fetch: {holder}")
    assert err[0].endswith("; exiting")

    out = project.parent / "out"
    assert main(["run", "--config", str(project), "--output", str(out)]) == EXIT_LOCKED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"observatory run failed at stage 'fetch': {holder}")
    assert "refresh" not in err[-1]
    assert server.log == []


def test_cli_cache_folder_that_is_a_file(project, server, capsys, caplog):
    (project.parent / "cache").write_text("not a folder\n", encoding="utf-8")
    assert main(["fetch", "--config", str(project)]) == EXIT_ERROR
    assert server.log == []
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == (
        f"cannot create the download cache {project.parent / 'cache'}: a file of that "
        f"name is in the way: {project.parent / 'cache'}; set [sources] cache_dir or "
        "$OBSERVATORY_CACHE to a writable folder"
    )
    assert "Traceback" not in capsys.readouterr().err


def test_disk_full_while_downloading(server, cache, good, monkeypatch):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc here: the download's file cannot be told from the lock's")
    real_fsync = os.fsync

    def full(fd):  # the disk fills up on the downloaded file, not on the lock
        if Path(f"/proc/self/fd/{fd}").readlink().name.endswith(".part"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    server.expect_request("/flux.zip").respond_with_handler(serve(V2, etag='"v2"'))
    monkeypatch.setattr(os, "fsync", full)
    refused(
        flows_source(server),
        cache,
        good,
        r"^flows: cannot write .*/flux\.zip: the disk is full \(no space left on "
        r"device\); deleted the download$",
    )


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('max_extracted_size = "lots"', r"max_extracted_size must be a size above 0"),
        ("max_extracted_size = 4294967296", r"max_extracted_size must be str"),
        ("max_compression_ratio = 0.5", r"max_compression_ratio must be >= 1"),
        ("timeout_s = 0", r"timeout_s must be > 0 seconds"),
        ("retries = -1", r"retries must be between 0 and 20"),
    ],
)
def test_sources_bounds_are_checked_when_the_config_loads(tmp_path, line, match):
    config = tmp_path / "c.toml"
    inputs = 'communes = "c.shp"\nepci_composition = "e.xlsx"\nflows = "f.csv"\n'
    config.write_text(f"[sources]\n{line}\n[inputs]\n{inputs}", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"c\.toml: \[sources\] {match}"):
        load_config(config)


def test_default_bounds_are_the_configs():
    section = SourcesSection(max_extracted_size="500 MB", max_compression_ratio=20)
    assert FetchLimits.of(SourcesSection()) == FetchLimits()
    assert FetchLimits.of(section).max_extracted_bytes == 500_000_000
    assert FetchLimits.of(section).max_compression_ratio == 20
