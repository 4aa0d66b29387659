"""The download cache: :func:`fetch_source` makes a source available there, verified.

It returns paths, never data. A cached file is reused without any request when
it matches the pinned sha256, and otherwise revalidated with ``If-None-Match`` /
``If-Modified-Since`` (HTTP 304: the cached file is checked against its recorded
sha256 and the catalogue's pins, and downloaded again if it was corrupted);
``offline=True`` never touches the network and verifies the cached file (size,
sha256, md5, and that it came from the catalogue's URL). Archive members are
extracted once and their sha256 checked each time they are reused.

A source changes all at once or not at all: a new file, its extracted members
and its provenance are built in a staging folder and swapped in together
(:mod:`observatory.sources.staging`); any refusal leaves the cache as it was.
One fetch at a time per cache folder (:func:`~observatory.sources.staging.cache_lock`).
Layout::

    cache_dir/.lock
    cache_dir/<source id>/<file name from the URL>
    cache_dir/<source id>/provenance.json
    cache_dir/<source id>/extracted/<member path inside the archive>
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import requests

from observatory.core.errors import SourceError
from observatory.core.fserrors import describe_os_error
from observatory.sources.archives import extract_members, member_path
from observatory.sources.catalogue import (
    ARCHIVE_FORMATS,
    EXTRACTED,
    Source,
    check_source,
)
from observatory.sources.download import build_session, download
from observatory.sources.limits import (
    BACKOFF_S,
    MAX_COMPRESSION_RATIO,
    MAX_EXTRACTED_BYTES,
    RETRIES,
    TIMEOUT_S,
    FetchLimits,
)
from observatory.sources.provenance import (
    Extraction,
    Provenance,
    read_provenance,
    write_provenance,
)
from observatory.sources.staging import Staging, cache_lock, recover_leftovers
from observatory.sources.verify import (
    check_pins,
    conditional_headers,
    pinned_in_cache,
    reusable_extraction,
    sha256_file,
    use_offline,
)

logger = logging.getLogger(__name__)


FetchStatus = Literal["downloaded", "up_to_date", "offline"]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What :func:`fetch_source` did and where the files are."""

    source: Source
    path: Path
    status: FetchStatus
    provenance: Provenance
    #: extracted member name -> its path (archives with ``members`` only)
    members: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """The file a fetch settled on, before its members and before the cache changes."""

    status: FetchStatus
    record: Provenance
    #: sha256 of the file, verified by this fetch
    digest: str
    #: True when the file is a new download waiting in the staging folder
    staged: bool = False


def cached_provenance(source: Source, cache_dir: Path) -> Provenance | None:
    """Return the provenance recorded in the cache for ``source``, or None.

    A missing, unreadable or malformed record gives None (the file is then
    downloaded again, or refused offline).
    """
    return read_provenance(Path(cache_dir) / source.id, source.id)


def fetch_source(
    source: Source,
    cache_dir: Path,
    *,
    offline: bool = False,
    session: requests.Session | None = None,
    timeout: float = TIMEOUT_S,
    retries: int = RETRIES,
    backoff: float = BACKOFF_S,
    max_extracted_bytes: int = MAX_EXTRACTED_BYTES,
    max_compression_ratio: float = MAX_COMPRESSION_RATIO,
    command: str = "fetch",
) -> FetchResult:
    """Make ``source`` available in the cache, verified, and extract its members.

    Takes the cache's lock for the time of the fetch (see :func:`fetch_locked`
    to fetch several sources under one lock).

    Parameters
    ----------
    source
        The catalogue entry.
    cache_dir
        Cache root; the source uses ``cache_dir/<source.id>/``.
    offline
        Never touch the network: use the cached file once verified.
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
        Bound on the members extracted from the archive together (and on the
        downloaded file), counted while writing.
    max_compression_ratio
        Bound on each member's uncompressed / compressed bytes.
    command
        What fetches (``fetch``, ``run``, ``refresh``), for the lock's holder.

    Returns
    -------
    FetchResult
        ``status`` is ``"downloaded"``, ``"up_to_date"`` (HTTP 304, or the cached
        file matches the pinned sha256 and no request was needed) or ``"offline"``.

    Raises
    ------
    SourceError
        When the file cannot be downloaded, verified or extracted; the message
        names the source, what was expected and what was found, and the cache
        is left as it was.
    Locked
        Another process is fetching into ``cache_dir``.
    ConfigError
        When ``source`` itself is malformed.
    """
    cache_dir = Path(cache_dir)
    bounds = FetchLimits(
        timeout, retries, backoff, max_extracted_bytes, max_compression_ratio
    )
    if offline and not cache_dir.is_dir():  # nothing to lock: nothing cached
        return fetch_locked(source, cache_dir, offline=True, limits=bounds)
    with cache_lock(cache_dir, command):
        return fetch_locked(
            source, cache_dir, offline=offline, session=session, limits=bounds
        )


def fetch_locked(
    source: Source,
    cache_dir: Path,
    *,
    offline: bool = False,
    session: requests.Session | None = None,
    limits: FetchLimits | None = None,
) -> FetchResult:
    """Do what :func:`fetch_source` does; the caller holds ``cache_lock(cache_dir)``."""
    check_source(source)
    limits = limits or FetchLimits()
    folder = Path(cache_dir) / source.id
    target = folder / source.file_name
    recover_leftovers(Path(cache_dir), source.id)
    before = cached_provenance(source, cache_dir)
    if not offline:  # where the source's files will be (the swap replaces it)
        _make_folder(source, folder)
    with Staging(Path(cache_dir), source.id) as staging:
        if offline:
            record, digest = use_offline(source, target, before)
            fetched = _Fetched("offline", record, digest)
        else:
            fetched = _fetch_online(source, target, before, session, limits, staging)
        record, staged_members = _members(source, fetched, before, limits, staging)
        if fetched.staged or staged_members:
            if not fetched.staged:
                staging.adopt(source.file_name)
            _record(source, staging.folder, record)
            staging.commit()
        elif record != before:
            _record(source, folder, record)  # the same files: one atomic write
    members = {}
    if record.extracted is not None and source.members:
        members = {n: _member(folder, n) for n in record.extracted.members}
    return FetchResult(source, target, fetched.status, record, members)


def _record(source: Source, folder: Path, record: Provenance) -> None:
    """Write ``provenance.json``, or say in one sentence why it cannot be written."""
    try:
        write_provenance(folder, record)
    except OSError as exc:
        msg = (
            f"{source.id}: cannot write its provenance in {folder}: "
            f"{describe_os_error(exc)}; the cache is unchanged"
        )
        raise SourceError(msg, source=source.id, path=folder) from exc


def _make_folder(source: Source, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"{source.id}: cannot create {folder}: {describe_os_error(exc)}"
        raise SourceError(msg, source=source.id, path=folder) from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _member(folder: Path, name: str) -> Path:
    return member_path(folder / EXTRACTED, name)


# --------------------------------------------------------------------- online
def _fetch_online(
    source: Source,
    target: Path,
    record: Provenance | None,
    session: requests.Session | None,
    limits: FetchLimits,
    staging: Staging,
) -> _Fetched:
    """Use the pinned cached file, or revalidate it, or download the file."""
    if (pinned := pinned_in_cache(source, target, record)) is not None:
        return _Fetched("up_to_date", pinned, pinned.sha256)
    http = (
        session
        if session is not None
        else build_session(limits.retries, limits.backoff)
    )
    try:
        return _revalidate_or_download(http, source, target, record, limits, staging)
    finally:
        if session is None:
            http.close()


def _revalidate_or_download(
    http: requests.Session,
    source: Source,
    target: Path,
    record: Provenance | None,
    limits: FetchLimits,
    staging: Staging,
) -> _Fetched:
    """Ask the server (conditionally when a record allows it); nothing is moved yet."""
    conditional = conditional_headers(source, target, record)
    staged = staging.folder / source.file_name
    while True:
        outcome = download(http, source, staged, conditional, limits)
        if not outcome.not_modified:
            break
        assert record is not None  # a 304 only answers a conditional request
        digest = sha256_file(target)
        if digest == record.sha256:
            check_pins(source, target, digest, "after HTTP 304 Not Modified")
            logger.info(
                "%s: up to date (HTTP 304 Not Modified); using %s", source.id, target
            )
            checked = replace(record, checked_at=_now(), final_url=outcome.final_url)
            return _Fetched("up_to_date", checked, digest)
        logger.warning(
            "%s: cached %s is corrupted (sha256 %s, recorded %s); downloading it again",
            source.id,
            target,
            digest,
            record.sha256,
        )
        conditional = {}
    downloaded = Provenance.of_file(
        source,
        target,
        outcome.sha256,
        outcome.size,
        final_url=outcome.final_url,
        etag=outcome.etag,
        last_modified=outcome.last_modified,
        fetched_at=_now(),
    )
    if record is not None and record.sha256 == outcome.sha256:
        logger.info("%s: same content as the cached copy (sha256 unchanged)", source.id)
    _log_download(source, target, downloaded, outcome.seconds)
    return _Fetched("downloaded", downloaded, outcome.sha256, staged=True)


def _log_download(
    source: Source, target: Path, record: Provenance, seconds: float
) -> None:
    """Say what was downloaded, and how to pin it when no sha256 is pinned."""
    logger.info(
        "%s: downloaded %s (%s bytes in %.1f s) for %s",
        source.id,
        record.final_url,
        f"{record.size:,}",
        seconds,
        target,
    )
    if record.final_url != source.url:
        logger.info("%s: %s redirected to %s", source.id, source.url, record.final_url)
    if source.sha256 is None:
        logger.info(
            '%s: no sha256 pinned; measured sha256 %s (%d bytes): add sha256 = "%s" '
            "(and size = %d) to [sources.%s] in the catalogue to pin this version",
            source.id,
            record.sha256,
            record.size,
            record.sha256,
            record.size,
            source.id,
        )


# --------------------------------------------------------------------- members
def _members(
    source: Source,
    fetched: _Fetched,
    before: Provenance | None,
    limits: FetchLimits,
    staging: Staging,
) -> tuple[Provenance, bool]:
    """Return the record with its extraction, and whether members were staged.

    Intact members extracted from the same bytes are reused (linked into the
    staging folder when the file itself is staged); otherwise the members are
    extracted into the staging folder and verified there.
    """
    record = fetched.record
    if source.format not in ARCHIVE_FORMATS or not source.members:
        return record, False
    live = staging.live
    previous = before.extracted if before is not None else None
    reused = reusable_extraction(source, live, fetched.digest, previous)
    if reused is not None:
        if fetched.staged:
            for name in reused.members:
                staging.adopt(_member(Path(), name).as_posix())
        return replace(record, extracted=reused), fetched.staged
    archive = staging.folder / source.file_name
    if not fetched.staged:
        archive = staging.adopt(source.file_name)
    extracted = staging.folder / EXTRACTED
    sizes = extract_members(source, archive, extracted, limits)
    extraction = Extraction(
        archive_sha256=fetched.digest,
        patterns=source.members,
        members=sizes,
        sha256={name: sha256_file(member_path(extracted, name)) for name in sizes},
    )
    return replace(record, extracted=extraction), True
