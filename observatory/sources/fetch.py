"""Download the public source files into a local cache, verified (pooch-style).

The catalogue (a TOML file with ``[sources.<id>]`` tables, geodatasets-style)
names one file per source: its URL, format, and optionally a pinned ``sha256``
and ``size``. :func:`fetch_source` returns a path, never data:

- the body is streamed to ``<name>.<random>.part`` in the cache folder while its
  sha256 is computed; sizes (``Content-Length``, pinned ``size``), the pinned
  sha256, HTML pages served instead of the file and the magic bytes of the
  format are checked, and only then is the file moved into place
  (``os.replace``). Nothing partial is ever left in the cache;
- the session retries connection errors, read timeouts and HTTP 500/502/503/504
  with exponential backoff; a 4xx fails at once;
- a cached file is reused without any request when it matches the pinned
  sha256, and otherwise revalidated with ``If-None-Match`` /
  ``If-Modified-Since`` (HTTP 304: the cached file is checked against its
  recorded sha256 and downloaded again if it was corrupted);
- ``offline=True`` never touches the network;
- archives (zip, 7z) have only the requested members extracted, safely
  (no path outside the extraction folder, bounded uncompressed size), into a
  temporary folder renamed to ``extracted/`` once complete; their sha256 is
  recorded and checked each time they are reused (a corrupted member is
  extracted again).

Cache layout::

    cache_dir/<source id>/<file name from the URL>
    cache_dir/<source id>/provenance.json
    cache_dir/<source id>/extracted/<member path inside the archive>
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import tempfile
import threading
import time
import tomllib
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from observatory import __version__
from observatory.core.errors import ConfigError, SourceError
from observatory.core.files import CHUNK, sha256_file, write_json_atomic

logger = logging.getLogger(__name__)


#: Formats a source may have; the first bytes of each binary one.
FORMATS = ("zip", "7z", "csv", "xlsx", "parquet")


ARCHIVE_FORMATS = ("zip", "7z")


MAGIC = {
    "zip": b"PK\x03\x04",
    "xlsx": b"PK\x03\x04",
    "7z": b"7z\xbc\xaf\x27\x1c",
    "parquet": b"PAR1",
}


RETRY_STATUSES = (500, 502, 503, 504)


PROVENANCE = "provenance.json"


EXTRACTED = "extracted"


_SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


_HTML_STARTS = (b"<!doctype html", b"<html")


_HEAD = 1024  # bytes sniffed for HTML pages and magic numbers


_STALE_SECONDS = 3600  # a temporary file untouched this long is a crash leftover


_MAX_LISTED = 20


_STRING_FIELDS = (
    "title",
    "publisher",
    "url",
    "format",
    "sha256",
    "licence",
    "attribution",
)


_INTEGER_FIELDS = ("size", "vintage", "geography")


@dataclass(frozen=True, slots=True)
class Source:
    """One catalogue entry: one published file."""

    id: str
    title: str
    publisher: str
    url: str
    format: str
    sha256: str | None = None
    size: int | None = None
    members: tuple[str, ...] = ()
    vintage: int | None = None
    geography: int | None = None
    licence: str = ""
    attribution: str = ""


@dataclass
class FetchResult:
    """What :func:`fetch_source` did and where the files are."""

    source: Source
    path: Path
    status: str  # "downloaded", "up_to_date" or "offline"
    provenance: dict[str, Any]
    members: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------- catalogue
def load_catalogue(path: Path) -> dict[str, Source]:
    """Read a sources catalogue.

    Parameters
    ----------
    path
        TOML file with one ``[sources.<id>]`` table per source, holding the fields
        of :class:`Source` (``members`` as a list of strings). ``sha256`` and
        ``size`` may be missing: they are then measured at the first download.

    Returns
    -------
    dict
        Source id -> :class:`Source`, in file order.

    Raises
    ------
    ConfigError
        When the file is missing or not TOML, or an entry has unknown keys,
        lacks ``url`` or ``format``, or has a malformed value; the message
        names the file and every faulty source.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{path}: sources catalogue not found"
        raise ConfigError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the sources catalogue: {exc}"
        raise ConfigError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML: {exc}"
        raise ConfigError(msg) from exc
    tables = raw.get("sources")
    if not isinstance(tables, dict) or not tables:
        msg = f"{path}: no [sources.<id>] table found; expected e.g. [sources.base_flux_2021]"
        raise ConfigError(msg)

    known = {f.name for f in fields(Source)} - {"id"}
    problems: list[str] = []
    catalogue: dict[str, Source] = {}
    for source_id, table in tables.items():
        where = f"[sources.{source_id}]"
        if not isinstance(table, dict):
            problems.append(f"{where} must be a table, got {table!r}")
            continue
        entry_problems = []
        if unknown := sorted(table.keys() - known):
            entry_problems.append(
                f"unknown key(s) {unknown}; expected some of {sorted(known)}"
            )
        entry_problems += [
            f"missing {k!r}" for k in ("url", "format") if k not in table
        ]
        entry_problems += _type_problems(table)
        if not entry_problems:
            values = {k: v for k, v in table.items() if k in known}
            values["members"] = tuple(values.get("members", ()))
            if isinstance(values.get("sha256"), str):
                values["sha256"] = values["sha256"].strip().lower()
            values.setdefault("title", "")
            values.setdefault("publisher", "")
            source = Source(id=source_id, **values)
            entry_problems = _source_problems(source)
            catalogue[source_id] = source
        problems += [f"{where} {p}" for p in entry_problems]
    if problems:
        msg = f"{path}: " + "; ".join(problems)
        raise ConfigError(msg)
    return catalogue


def _type_problems(table: dict[str, Any]) -> list[str]:
    problems = []
    for name in _STRING_FIELDS:
        if name in table and not isinstance(table[name], str):
            problems.append(f"{name!r} must be a string, got {table[name]!r}")
    for name in _INTEGER_FIELDS:
        value = table.get(name)
        if name in table and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"{name!r} must be an integer, got {value!r}")
    members = table.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        problems.append(f"'members' must be a list of strings, got {members!r}")
    return problems


def _source_problems(source: Source) -> list[str]:
    """Check one source's values; return readable problems (empty when fine)."""
    problems = []
    if not _SOURCE_ID.match(source.id):
        problems.append(
            "id must be letters, digits, '.', '_' or '-' (it names the cache folder)"
        )
    if source.format not in FORMATS:
        problems.append(
            f"'format' must be one of {list(FORMATS)}, got {source.format!r}"
        )
    if source.sha256 is not None and not _SHA256.match(source.sha256):
        problems.append(
            f"'sha256' must be 64 hexadecimal characters, got {source.sha256!r}"
        )
    if source.size is not None and source.size <= 0:
        problems.append(f"'size' must be a positive number of bytes, got {source.size}")
    if source.members and source.format not in ARCHIVE_FORMATS:
        problems.append(
            f"'members' only applies to archives {list(ARCHIVE_FORMATS)}, "
            f"not to format {source.format!r}"
        )
    if any(not m.strip() for m in source.members):
        problems.append("'members' holds an empty name")
    parts = urlsplit(source.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"'url' must be an http(s) URL, got {source.url!r}")
    else:
        name = unquote(PurePosixPath(parts.path).name)
        if (
            not name
            or name.startswith(".")
            or "/" in name
            or "\\" in name
            or name in (PROVENANCE, EXTRACTED)
        ):
            problems.append(
                f"'url' must end with a file name (it names the cached file), got {source.url!r}"
            )
    return problems


def _check_source(source: Source) -> None:
    if problems := _source_problems(source):
        msg = f"source {source.id!r}: " + "; ".join(problems)
        raise ConfigError(msg)


def _file_name(source: Source) -> str:
    return unquote(PurePosixPath(urlsplit(source.url).path).name)


# --------------------------------------------------------------------- cache
def cached_provenance(source: Source, cache_dir: Path) -> dict[str, Any] | None:
    """Return the provenance recorded in the cache for ``source``, or None.

    A missing or unreadable record gives None (the file is then downloaded again,
    or refused offline).
    """
    path = Path(cache_dir) / source.id / PROVENANCE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning(
            "%s: ignoring unreadable provenance record %s: %s", source.id, path, exc
        )
        return None
    if not isinstance(record, dict):
        logger.warning("%s: ignoring malformed provenance record %s", source.id, path)
        return None
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _remove_stale(folder: Path) -> None:
    """Remove temporary files and folders left by a killed run (SIGKILL, power loss)."""
    if not folder.is_dir():
        return
    limit = time.time() - _STALE_SECONDS
    for path in folder.iterdir():
        temporary = path.name.endswith(".part") or path.name.startswith(".extracted-")
        if not temporary or not path.name.startswith("."):
            continue
        try:
            if path.lstat().st_mtime > limit:
                continue  # possibly another run at work
            logger.info("%s: removing leftover temporary %s", folder.name, path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            logger.warning("cannot remove leftover %s: %s", path, exc)


def _provenance(
    source: Source,
    target: Path,
    digest: str,
    size: int,
    final_url: str | None,
    etag: str | None,
    last_modified: str | None,
    fetched_at: str | None,
) -> dict[str, Any]:
    return {
        "source_id": source.id,
        "url": source.url,
        "final_url": final_url,
        "file": target.name,
        "etag": etag,
        "last_modified": last_modified,
        "size": size,
        "sha256": digest,
        "fetched_at": fetched_at,
        "checked_at": fetched_at,
        "pinned_sha256": source.sha256,
        "vintage": source.vintage,
        "geography": source.geography,
        "licence": source.licence,
    }


# --------------------------------------------------------------------- fetch
def fetch_source(
    source: Source,
    cache_dir: Path,
    *,
    offline: bool = False,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 4,
    backoff: float = 1.0,
    max_extracted_bytes: int = 20 * 1024**3,
) -> FetchResult:
    """Make ``source`` available in the cache, verified, and extract its members.

    Parameters
    ----------
    source
        The catalogue entry.
    cache_dir
        Cache root; the source uses ``cache_dir/<source.id>/``.
    offline
        Never touch the network: use the cached file once its sha256 is verified.
    session
        HTTP session to use as is (its adapters decide the retries); by default a
        session retrying connection errors, read timeouts and HTTP 5xx is built.
    timeout
        Seconds allowed to connect and between two reads.
    retries
        Retries after the first attempt, with exponential backoff.
    backoff
        Backoff factor in seconds (0 retries at once).
    max_extracted_bytes
        Bound on the total uncompressed size of the members extracted.

    Returns
    -------
    FetchResult
        ``status`` is ``"downloaded"``, ``"up_to_date"`` (HTTP 304, or the cached
        file matches the pinned sha256 and no request was needed) or ``"offline"``.

    Raises
    ------
    SourceError
        When the file cannot be downloaded, verified or extracted; the message
        names the source, what was expected and what was found.
    ConfigError
        When ``source`` itself is malformed.
    """
    _check_source(source)
    folder = Path(cache_dir) / source.id
    target = folder / _file_name(source)
    _remove_stale(folder)
    record = cached_provenance(source, cache_dir)

    if offline:
        record, digest = _use_offline(source, target, record)
        status = "offline"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        record, status = _fetch_online(
            source, target, record, session, timeout, retries, backoff
        )
        digest = record["sha256"]

    members: dict[str, Path] = {}
    if source.format in ARCHIVE_FORMATS and source.members:
        members, extracted = _extract(
            source, target, digest, record, max_extracted_bytes
        )
        if record.get("extracted") != extracted:
            record = {**record, "extracted": extracted}
            write_json_atomic(folder / PROVENANCE, record)
    return FetchResult(
        source=source, path=target, status=status, provenance=record, members=members
    )


def _use_offline(
    source: Source, target: Path, record: dict[str, Any] | None
) -> tuple[dict[str, Any], str]:
    if not target.is_file():
        msg = (
            f"{source.id}: not in the cache ({target} is absent) and offline mode "
            "forbids downloading it; run `observatory fetch` with network first"
        )
        raise SourceError(msg)
    digest = sha256_file(target)
    if source.sha256 is not None and digest != source.sha256:
        msg = (
            f"{source.id}: cached {target} has sha256 {digest} but the catalogue pins "
            f"{source.sha256}; run `observatory fetch` with network to download the "
            "pinned version"
        )
        raise SourceError(msg)
    if record is None:
        if source.sha256 is None:
            msg = (
                f"{source.id}: {target} has no provenance record ({PROVENANCE}) and no "
                "pinned sha256, so it cannot be verified offline; run `observatory "
                "fetch` with network first"
            )
            raise SourceError(msg)
        record = _record_placed_file(source, target, digest)
    elif source.sha256 is None and digest != record.get("sha256"):
        msg = (
            f"{source.id}: cached {target} is corrupted: sha256 {digest}, recorded "
            f"{record.get('sha256')}; run `observatory fetch` with network to download "
            "it again"
        )
        raise SourceError(msg)
    logger.info("%s: offline, using cached %s (sha256 verified)", source.id, target)
    return record, digest


def _record_placed_file(source: Source, target: Path, digest: str) -> dict[str, Any]:
    """Record a file that matches the pin but was put in the cache by hand."""
    logger.info(
        "%s: %s matches the pinned sha256; recording its provenance", source.id, target
    )
    record = _provenance(
        source, target, digest, target.stat().st_size, None, None, None, None
    )
    write_json_atomic(target.parent / PROVENANCE, record)
    return record


def _session(retries: int, backoff: float) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,  # TLS failures and the like: another attempt would fail the same way
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = (
        f"observatory/{__version__} (batch; python-requests)"
    )
    return session


@dataclass(frozen=True, slots=True)
class _Outcome:
    not_modified: bool
    final_url: str
    etag: str | None = None
    last_modified: str | None = None
    size: int = 0
    sha256: str = ""
    seconds: float = 0.0


class _BodyError(Exception):
    """The body broke off after the headers (worth another attempt)."""


def _fetch_online(
    source: Source,
    target: Path,
    record: dict[str, Any] | None,
    session: requests.Session | None,
    timeout: float,
    retries: int,
    backoff: float,
) -> tuple[dict[str, Any], str]:
    if source.sha256 is not None and target.is_file():
        digest = sha256_file(target)
        if digest == source.sha256:
            logger.info(
                "%s: %s matches the pinned sha256, no request needed", source.id, target
            )
            if record is None or record.get("sha256") != digest:
                record = _record_placed_file(source, target, digest)
            return record, "up_to_date"
        logger.warning(
            "%s: cached %s does not match the pinned sha256 (got %s); downloading it",
            source.id,
            target,
            digest,
        )

    http = session if session is not None else _session(retries, backoff)
    try:
        conditional = _conditional_headers(source, target, record)
        while True:
            outcome = _with_body_retries(
                http, source, target, conditional, timeout, retries, backoff
            )
            if not outcome.not_modified:
                break
            assert record is not None  # a 304 only answers a conditional request
            digest = sha256_file(target)
            if digest == record.get("sha256"):
                record = {
                    **record,
                    "checked_at": _now(),
                    "final_url": outcome.final_url,
                }
                write_json_atomic(target.parent / PROVENANCE, record)
                logger.info(
                    "%s: up to date (HTTP 304 Not Modified); using %s",
                    source.id,
                    target,
                )
                return record, "up_to_date"
            logger.warning(
                "%s: cached %s is corrupted (sha256 %s, recorded %s); downloading it again",
                source.id,
                target,
                digest,
                record.get("sha256"),
            )
            conditional = {}
    finally:
        if session is None:
            http.close()

    previous = record
    record = _provenance(
        source,
        target,
        outcome.sha256,
        outcome.size,
        outcome.final_url,
        outcome.etag,
        outcome.last_modified,
        _now(),
    )
    if previous is not None and previous.get("sha256") == outcome.sha256:
        logger.info("%s: same content as the cached copy (sha256 unchanged)", source.id)
        if "extracted" in previous:  # the extracted members are still valid
            record["extracted"] = previous["extracted"]
    write_json_atomic(target.parent / PROVENANCE, record)
    logger.info(
        "%s: downloaded %s (%s bytes in %.1f s) to %s",
        source.id,
        outcome.final_url,
        f"{outcome.size:,}",
        outcome.seconds,
        target,
    )
    if outcome.final_url != source.url:
        logger.info("%s: %s redirected to %s", source.id, source.url, outcome.final_url)
    if source.sha256 is None:
        logger.info(
            '%s: no sha256 pinned; measured sha256 %s (%d bytes): add sha256 = "%s" '
            "(and size = %d) to [sources.%s] in the catalogue to pin this version",
            source.id,
            outcome.sha256,
            outcome.size,
            outcome.sha256,
            outcome.size,
            source.id,
        )
    return record, "downloaded"


def _conditional_headers(
    source: Source, target: Path, record: dict[str, Any] | None
) -> dict[str, str]:
    if record is None or not target.is_file() or record.get("url") != source.url:
        return {}
    if source.sha256 is not None and record.get("sha256") != source.sha256:
        return {}  # the catalogue pins another version: download it
    headers = {}
    if record.get("etag"):
        headers["If-None-Match"] = record["etag"]
    if record.get("last_modified"):
        headers["If-Modified-Since"] = record["last_modified"]
    return headers


def _with_body_retries(
    http: requests.Session,
    source: Source,
    target: Path,
    conditional: dict[str, str],
    timeout: float,
    retries: int,
    backoff: float,
) -> _Outcome:
    """Retry a download whose body broke off (the session retries the rest)."""
    for attempt in range(retries + 1):
        try:
            return _attempt(http, source, target, conditional, timeout)
        except _BodyError as exc:
            if attempt == retries:
                msg = f"{exc} (after {retries} retries); deleted the download"
                raise SourceError(msg) from exc
            delay = backoff * 2**attempt
            logger.warning("%s; retrying in %.1f s", exc, delay)
            time.sleep(delay)
    raise AssertionError  # pragma: no cover - the loop returns or raises


def _attempt(
    http: requests.Session,
    source: Source,
    target: Path,
    conditional: dict[str, str],
    timeout: float,
) -> _Outcome:
    # identity: the stored bytes are the published file, and Content-Length counts them
    headers = {"Accept-Encoding": "identity", **conditional}
    started = time.monotonic()
    try:
        response = http.get(
            source.url, headers=headers, stream=True, timeout=(timeout, timeout)
        )
    except requests.RequestException as exc:
        raise _network_error(source, exc, timeout) from exc
    with response:
        final_url = response.url
        if response.status_code == 304 and conditional:
            return _Outcome(not_modified=True, final_url=final_url)
        _check_status(source, response)
        _check_content_type(source, response)
        expected = _content_length(response)
        if expected is not None and source.size is not None and expected != source.size:
            msg = (
                f"{source.id}: size mismatch for {final_url}: the catalogue pins "
                f"{source.size} bytes, the server announces {expected}; nothing "
                "downloaded. The file may have been updated upstream: check it and "
                "update size and sha256 in the catalogue"
            )
            raise SourceError(msg)
        fd, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
        part = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                size, digest = _stream(source, response, out, expected)
            _verify(source, final_url, size, digest)
            part.replace(target)
        except SourceError:
            raise
        except OSError as exc:  # disk full, permissions...
            msg = f"{source.id}: cannot write {target}: {exc}; deleted the download"
            raise SourceError(msg) from exc
        finally:
            part.unlink(missing_ok=True)
    return _Outcome(
        not_modified=False,
        final_url=final_url,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        size=size,
        sha256=digest,
        seconds=time.monotonic() - started,
    )


def _stream(
    source: Source, response: requests.Response, out: Any, expected: int | None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    received = 0
    head = b""
    sniffed = False
    try:
        for chunk in response.iter_content(CHUNK):
            if not sniffed:
                head += chunk[: _HEAD - len(head)]
                if len(head) >= _HEAD:
                    _check_head(source, response.url, head)
                    sniffed = True
            received += len(chunk)
            if source.size is not None and received > source.size:
                msg = (
                    f"{source.id}: size mismatch for {response.url}: expected "
                    f"{source.size} bytes (pinned), got more; deleted the download"
                )
                raise SourceError(msg)
            digest.update(chunk)
            out.write(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        # urllib3 reads by blocks: count what reached the socket, not what we got
        received = max(
            [received] + [e.partial for e in _causes(exc) if _is_incomplete(e)]
        )
        if _is_timeout(exc):
            msg = (
                f"{source.id}: download of {response.url} stalled and timed out "
                f"after {received} bytes"
            )
        elif expected is not None and received < expected:
            msg = (
                f"{source.id}: download of {response.url} truncated: expected "
                f"{expected} bytes (Content-Length), got {received}"
            )
        else:
            msg = (
                f"{source.id}: download of {response.url} broke off after "
                f"{received} bytes: {_reason(exc)}"
            )
        raise _BodyError(msg) from exc
    if not sniffed:
        _check_head(source, response.url, head)
    if expected is not None and received != expected:
        msg = (
            f"{source.id}: download of {response.url} truncated: expected {expected} "
            f"bytes (Content-Length), got {received}"
        )
        raise _BodyError(msg)
    out.flush()
    os.fsync(out.fileno())
    return received, digest.hexdigest()


def _verify(source: Source, url: str, size: int, digest: str) -> None:
    if source.size is not None and size != source.size:
        msg = (
            f"{source.id}: size mismatch for {url}: expected {source.size} bytes "
            f"(pinned), got {size}; deleted the download"
        )
        raise SourceError(msg)
    if source.sha256 is not None and digest != source.sha256:
        msg = (
            f"{source.id}: SHA256 mismatch for {url}: expected {source.sha256}, got "
            f"{digest}; deleted the download. The file may have been updated upstream "
            "(check it and update sha256 in the catalogue) or corrupted in transit "
            "(run again)"
        )
        raise SourceError(msg)


def _content_length(response: requests.Response) -> int | None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    value = response.headers.get("Content-Length", "").strip()
    if encoding not in ("", "identity") or not value.isdigit():
        return None  # a compressed transfer: the length counts other bytes
    return int(value)


def _check_status(source: Source, response: requests.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    where = source.url
    if response.url != source.url:
        where += f" (redirected to {response.url})"
    reason = f" {response.reason}" if response.reason else ""
    msg = f"{source.id}: HTTP {status}{reason} for {where}"
    if status in (404, 410):
        msg += (
            "; the file was probably moved or removed: check the URL in the catalogue"
        )
    elif status in RETRY_STATUSES:
        msg += "; the server kept failing after the retries, try again later"
    elif status == 304:
        msg += "; Not Modified answered to an unconditional request"
    elif 200 < status < 300:
        msg += "; expected 200 OK with the whole file"
    raise SourceError(msg)


def _check_content_type(source: Source, response: requests.Response) -> None:
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        raise SourceError(_html_message(source, response.url))


def _html_message(source: Source, url: str) -> str:
    return (
        f"{source.id}: {url} returned an HTML page instead of the expected "
        f"{source.format} file, probably a moved file; check the URL in the catalogue; "
        "deleted the download"
    )


def _check_head(source: Source, url: str, head: bytes) -> None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(_HTML_STARTS):
        raise SourceError(_html_message(source, url))
    magic = MAGIC.get(source.format)
    if magic is not None and not head.startswith(magic):
        msg = (
            f"{source.id}: {url} did not return a {source.format} file: it starts with "
            f"{head[:8]!r}, a {source.format} file starts with {magic!r}; check the "
            "URL and format in the catalogue; deleted the download"
        )
        raise SourceError(msg)


def _network_error(source: Source, exc: BaseException, timeout: float) -> SourceError:
    if _is_timeout(exc):
        msg = (
            f"{source.id}: timed out after {timeout:g} s waiting for {source.url} "
            "(retries exhausted); the server is not answering: try again later or "
            "raise the timeout"
        )
    elif _chain_has(exc, requests.exceptions.SSLError, urllib3.exceptions.SSLError):
        msg = f"{source.id}: TLS verification failed for {source.url}: {_reason(exc)}"
    elif isinstance(exc, requests.TooManyRedirects):
        msg = f"{source.id}: too many redirects from {source.url}"
    else:
        msg = f"{source.id}: cannot download {source.url} (retries exhausted): {_reason(exc)}"
    return SourceError(msg)


def _causes(exc: BaseException) -> list[BaseException]:
    """List the exception, its causes and the reasons urllib3 wraps (MaxRetryError)."""
    found: list[BaseException] = []
    pending: list[Any] = [exc]
    while pending and len(found) < 50:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        pending += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        pending += list(item.args)
    return found


def _chain_has(exc: BaseException, *kinds: type[BaseException]) -> bool:
    return any(isinstance(e, kinds) for e in _causes(exc))


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError (connection refused...) subclasses its
    # ConnectTimeoutError for historical reasons: it is not a timeout.
    kinds = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
    return any(
        isinstance(e, kinds)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in _causes(exc)
    )


def _is_incomplete(exc: BaseException) -> bool:
    return isinstance(exc, urllib3.exceptions.IncompleteRead) and isinstance(
        exc.partial, int
    )


def _reason(exc: BaseException) -> str:
    """Give the most specific message, past the requests and urllib3 wrappers."""
    wrappers = (requests.RequestException, urllib3.exceptions.MaxRetryError)
    for cause in _causes(exc):
        if not isinstance(cause, wrappers):
            return str(cause) or type(cause).__name__
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------- archives
class _Budget:
    """Count the bytes written by an extraction; thread-safe (py7zr uses threads)."""

    def __init__(self, source: Source, archive: Path, limit: int) -> None:
        self.source, self.archive, self.limit = source, archive, limit
        self.written = 0
        self._lock = threading.Lock()

    def add(self, count: int, member: str) -> None:
        with self._lock:
            self.written += count
            if self.written > self.limit:
                msg = (
                    f"{self.source.id}: extracting {self.archive.name} writes more than "
                    f"max_extracted_bytes={self.limit:,} bytes (stopped in member "
                    f"{member!r}); nothing extracted"
                )
                raise SourceError(msg)


def _extract(
    source: Source,
    archive: Path,
    digest: str,
    record: dict[str, Any],
    limit: int,
) -> tuple[dict[str, Path], dict[str, Any]]:
    folder = archive.parent
    extracted = folder / EXTRACTED
    previous = record.get("extracted")
    if (
        isinstance(previous, dict)
        and previous.get("archive_sha256") == digest
        and previous.get("patterns") == list(source.members)
        and isinstance(previous.get("members"), dict)
    ):
        paths = {
            name: extracted.joinpath(*_parts(name)) for name in previous["members"]
        }
        if all(
            p.is_file() and p.stat().st_size == previous["members"][name]
            for name, p in paths.items()
        ):
            digests = {name: sha256_file(p) for name, p in paths.items()}
            recorded = previous.get("sha256")
            if not isinstance(recorded, dict) or recorded == digests:
                logger.info(
                    "%s: %d member(s) already extracted in %s (sha256 verified)",
                    source.id,
                    len(paths),
                    extracted,
                )
                return paths, {**previous, "sha256": digests}
            logger.warning(
                "%s: extracted member(s) %s in %s are corrupted (sha256 differs from "
                "the one recorded at extraction); extracting them again",
                source.id,
                sorted(n for n in digests if digests[n] != recorded.get(n)),
                extracted,
            )

    listing = _list_archive(source, archive)
    selected = _select_members(source, archive, listing)
    for name in selected:
        _check_member_path(source, archive, name, folder)
    declared = sum(listing[name] for name in selected)
    if declared > limit:
        msg = (
            f"{source.id}: the members to extract from {archive.name} declare "
            f"{declared:,} bytes uncompressed, more than max_extracted_bytes="
            f"{limit:,}; nothing extracted"
        )
        raise SourceError(msg)

    budget = _Budget(source, archive, limit)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".extracted-", suffix=".tmp"))
    try:
        if source.format == "zip":
            _extract_zip(source, archive, selected, tmp, budget)
        else:
            _extract_7z(source, archive, selected, tmp, budget)
        sizes = {}
        for name in selected:
            path = tmp.joinpath(*_parts(name))
            if not path.is_file():
                msg = (
                    f"{source.id}: member {name!r} of {archive.name} was not extracted"
                )
                raise SourceError(msg)
            sizes[name] = path.stat().st_size
        _swap_into_place(tmp, extracted)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "%s: extracted %d member(s) (%s bytes) to %s",
        source.id,
        len(selected),
        f"{budget.written:,}",
        extracted,
    )
    paths = {name: extracted.joinpath(*_parts(name)) for name in selected}
    return paths, {
        "archive_sha256": digest,
        "patterns": list(source.members),
        "members": sizes,
        "sha256": {name: sha256_file(path) for name, path in paths.items()},
    }


def _swap_into_place(tmp: Path, extracted: Path) -> None:
    if not extracted.exists():
        tmp.rename(extracted)
        return
    old = Path(
        tempfile.mkdtemp(dir=extracted.parent, prefix=".extracted-", suffix=".old")
    )
    old.rmdir()
    extracted.rename(old)
    try:
        tmp.rename(extracted)
    except OSError:
        old.rename(extracted)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]


def _check_member_path(source: Source, archive: Path, name: str, folder: Path) -> None:
    """Refuse members that would land outside the extraction folder (zip-slip)."""
    parts = _parts(name)
    root = (folder / EXTRACTED).resolve()
    unsafe = (
        name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
        or not parts
        or not root.joinpath(*parts).resolve().is_relative_to(root)
    )
    if unsafe:
        msg = (
            f"{source.id}: refusing to extract member {name!r} of {archive.name}: its "
            "path falls outside the extraction folder (absolute path or '..'); the "
            "archive is malformed or malicious"
        )
        raise SourceError(msg)


def _list_archive(source: Source, archive: Path) -> dict[str, int]:
    """Files in the archive -> declared uncompressed size (directories left out)."""
    if source.format == "zip":
        try:
            with zipfile.ZipFile(archive) as handle:
                return {
                    i.filename: i.file_size for i in handle.infolist() if not i.is_dir()
                }
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            msg = f"{source.id}: cannot read {archive} as a zip archive: {exc}"
            raise SourceError(msg) from exc
    import py7zr  # only 7z sources need it

    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            return {
                i.filename: i.uncompressed for i in handle.list() if not i.is_directory
            }
    except (*_7z_errors(), OSError, EOFError, lzma.LZMAError) as exc:
        msg = f"{source.id}: cannot read {archive} as a 7z archive: {exc}"
        raise SourceError(msg) from exc


def _7z_errors() -> tuple[type[Exception], ...]:
    import py7zr.exceptions  # only 7z sources need it

    return (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired)


def _select_members(
    source: Source, archive: Path, listing: dict[str, int]
) -> list[str]:
    selected: dict[str, None] = {}
    for pattern in source.members:
        if pattern in listing:
            selected[pattern] = None
            continue
        matches = [name for name in listing if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            names = sorted(listing)
            shown = ", ".join(names[:_MAX_LISTED])
            more = (
                f", and {len(names) - _MAX_LISTED} more"
                if len(names) > _MAX_LISTED
                else ""
            )
            msg = (
                f"{source.id}: member {pattern!r} matches nothing in {archive.name}; "
                f"the archive holds {len(names)} file(s): {shown}{more}"
            )
            raise SourceError(msg)
        selected.update(dict.fromkeys(matches))
    return list(selected)


def _extract_zip(
    source: Source, archive: Path, names: list[str], tmp: Path, budget: _Budget
) -> None:
    try:
        with zipfile.ZipFile(archive) as handle:
            for name in names:
                dest = tmp.joinpath(*_parts(name))
                dest.parent.mkdir(parents=True, exist_ok=True)
                with handle.open(name) as src, dest.open("wb") as out:
                    while chunk := src.read(CHUNK):
                        budget.add(len(chunk), name)
                        out.write(chunk)
    except SourceError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        EOFError,
        OSError,
    ) as exc:
        # NotImplementedError: e.g. Deflate64, which zipfile cannot read
        msg = f"{source.id}: cannot extract from {archive}: {exc}"
        raise SourceError(msg) from exc


def _extract_7z(
    source: Source, archive: Path, names: list[str], tmp: Path, budget: _Budget
) -> None:
    import py7zr  # only 7z sources need it

    root = tmp.resolve()

    class Writer(py7zr.Py7zIO):
        def __init__(self, path: Path, member: str) -> None:
            self.member = member
            self.handle = path.open("wb")
            self.written = 0

        def write(self, data: bytes | bytearray) -> int:
            budget.add(len(data), self.member)
            self.written += len(data)
            return self.handle.write(data)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.written  # written sequentially; py7zr rewinds when done

        def flush(self) -> None:
            self.handle.flush()

        def size(self) -> int:
            return self.written

        def close(self) -> None:
            self.handle.close()

    class Factory(py7zr.WriterFactory):
        def __init__(self) -> None:
            self.writers: list[Writer] = []

        def create(self, filename: str) -> Writer:
            dest = Path(filename)
            dest = dest if dest.is_absolute() else root.joinpath(*_parts(filename))
            if not dest.resolve().is_relative_to(root):
                msg = f"{source.id}: refusing to extract member {filename!r} of {archive.name}: its path falls outside the extraction folder"
                raise SourceError(msg)
            dest.parent.mkdir(parents=True, exist_ok=True)
            writer = Writer(dest, dest.relative_to(root).as_posix())
            self.writers.append(writer)
            return writer

    factory = Factory()
    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            handle.extract(path=root, targets=names, factory=factory)
    except SourceError:
        raise
    except (*_7z_errors(), OSError, EOFError, lzma.LZMAError) as exc:
        msg = f"{source.id}: cannot extract from {archive}: {exc}"
        raise SourceError(msg) from exc
    finally:
        for writer in factory.writers:
            writer.close()


__all__ = [
    "ARCHIVE_FORMATS",
    "FORMATS",
    "FetchResult",
    "Source",
    "cached_provenance",
    "fetch_source",
    "load_catalogue",
]
