"""The download cache: :func:`fetch_source` makes a source available there, verified.

It returns paths, never data. A cached file is reused without any request when
it matches the pinned sha256, and otherwise revalidated with ``If-None-Match`` /
``If-Modified-Since`` (HTTP 304: the cached file is checked against its recorded
sha256 and downloaded again if it was corrupted); ``offline=True`` never touches
the network. A third party's md5, when the catalogue pins one, is checked on the
cached file too. Archive members are extracted once and their sha256 checked
each time they are reused (a corrupted member is extracted again). Layout::

    cache_dir/<source id>/<file name from the URL>
    cache_dir/<source id>/provenance.json
    cache_dir/<source id>/extracted/<member path inside the archive>
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import requests

from observatory.core.errors import SourceError
from observatory.core.files import CHUNK, sha256_file
from observatory.sources.archives import TEMPORARY_PREFIX, extract_members, member_path
from observatory.sources.catalogue import (
    ARCHIVE_FORMATS,
    EXTRACTED,
    PROVENANCE,
    Source,
    check_source,
)
from observatory.sources.download import build_session, download
from observatory.sources.provenance import (
    Extraction,
    Provenance,
    read_provenance,
    write_provenance,
)

logger = logging.getLogger(__name__)


#: Seconds after which a temporary file or folder untouched in the cache is a
#: leftover of a killed run (SIGKILL, power loss), removed by the next fetch.
STALE_SECONDS = 3600


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
    check_source(source)
    folder = Path(cache_dir) / source.id
    target = folder / source.file_name
    _remove_stale(folder)
    record = cached_provenance(source, cache_dir)

    status: FetchStatus
    if offline:
        record, digest = _use_offline(source, target, record)
        status = "offline"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        record, status = _fetch_online(
            source, target, record, session, timeout, retries, backoff
        )
        digest = record.sha256

    members: dict[str, Path] = {}
    if source.format in ARCHIVE_FORMATS and source.members:
        extraction = _extract(source, target, digest, record, max_extracted_bytes)
        if record.extracted != extraction:
            record = replace(record, extracted=extraction)
            write_provenance(folder, record)
        members = {name: _member(folder, name) for name in extraction.members}
    return FetchResult(
        source=source, path=target, status=status, provenance=record, members=members
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _member(folder: Path, name: str) -> Path:
    return member_path(folder / EXTRACTED, name)


def _remove_stale(folder: Path) -> None:
    """Remove temporary files and folders left by a killed run (SIGKILL, power loss)."""
    if not folder.is_dir():
        return
    limit = time.time() - STALE_SECONDS
    for path in folder.iterdir():
        temporary = path.name.endswith(".part") or path.name.startswith(
            TEMPORARY_PREFIX
        )
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


def _record_placed_file(source: Source, target: Path, digest: str) -> Provenance:
    """Record a file that matches the pin but was put in the cache by hand."""
    logger.info(
        "%s: %s matches the pinned sha256; recording its provenance", source.id, target
    )
    record = Provenance.of_file(source, target, digest, target.stat().st_size)
    write_provenance(target.parent, record)
    return record


# --------------------------------------------------------------------- offline
def _use_offline(
    source: Source, target: Path, record: Provenance | None
) -> tuple[Provenance, str]:
    """Return the cached file's record and its sha256, both verified."""
    if not target.is_file():
        msg = (
            f"{source.id}: not in the cache ({target} is absent) and offline mode "
            "forbids downloading it; run `observatory fetch` with network first"
        )
        raise SourceError(msg, source=source.id, path=target)
    digest = sha256_file(target)
    if source.sha256 is not None and digest != source.sha256:
        msg = (
            f"{source.id}: cached {target} has sha256 {digest} but the catalogue pins "
            f"{source.sha256}; run `observatory fetch` with network to download the "
            "pinned version"
        )
        raise SourceError(msg, source=source.id, path=target)
    if (md5 := _md5_mismatch(source, target)) is not None:
        msg = (
            f"{source.id}: cached {target} has md5 {md5} but the catalogue pins "
            f"{source.md5} (measured by {source.md5_from}); run `observatory fetch` "
            "with network to download the pinned version"
        )
        raise SourceError(msg, source=source.id, path=target)
    if record is None:
        if source.sha256 is None:
            msg = (
                f"{source.id}: {target} has no provenance record ({PROVENANCE}) and no "
                "pinned sha256, so it cannot be verified offline; run `observatory "
                "fetch` with network first"
            )
            raise SourceError(msg, source=source.id, path=target)
        record = _record_placed_file(source, target, digest)
    elif source.sha256 is None and digest != record.sha256:
        msg = (
            f"{source.id}: cached {target} is corrupted: sha256 {digest}, recorded "
            f"{record.sha256}; run `observatory fetch` with network to download "
            "it again"
        )
        raise SourceError(msg, source=source.id, path=target)
    logger.info("%s: offline, using cached %s (sha256 verified)", source.id, target)
    return record, digest


# --------------------------------------------------------------------- online
def _fetch_online(
    source: Source,
    target: Path,
    record: Provenance | None,
    session: requests.Session | None,
    timeout: float,
    retries: int,
    backoff: float,
) -> tuple[Provenance, FetchStatus]:
    """Use the pinned cached file, or revalidate it, or download the file."""
    if (pinned := _pinned_in_cache(source, target, record)) is not None:
        return pinned, "up_to_date"
    http = session if session is not None else build_session(retries, backoff)
    try:
        return _revalidate_or_download(
            http, source, target, record, timeout, retries, backoff
        )
    finally:
        if session is None:
            http.close()


def _revalidate_or_download(
    http: requests.Session,
    source: Source,
    target: Path,
    record: Provenance | None,
    timeout: float,
    retries: int,
    backoff: float,
) -> tuple[Provenance, FetchStatus]:
    """Ask the server (conditionally when a record allows it) and record the answer."""
    conditional = _conditional_headers(source, target, record)
    while True:
        outcome = download(
            http,
            source,
            target,
            conditional,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        if not outcome.not_modified:
            break
        assert record is not None  # a 304 only answers a conditional request
        digest = sha256_file(target)
        if digest == record.sha256:
            record = replace(record, checked_at=_now(), final_url=outcome.final_url)
            write_provenance(target.parent, record)
            logger.info(
                "%s: up to date (HTTP 304 Not Modified); using %s", source.id, target
            )
            return record, "up_to_date"
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
        # the extracted members are still valid
        downloaded = replace(downloaded, extracted=record.extracted)
    write_provenance(target.parent, downloaded)
    _log_download(source, target, downloaded, outcome.seconds)
    return downloaded, "downloaded"


def _pinned_in_cache(
    source: Source, target: Path, record: Provenance | None
) -> Provenance | None:
    """Return the record of a cached file matching the pinned sha256, else None."""
    if source.sha256 is None or not target.is_file():
        return None
    digest = sha256_file(target)
    if digest == source.sha256:
        logger.info(
            "%s: %s matches the pinned sha256, no request needed", source.id, target
        )
        if record is None or record.sha256 != digest:
            record = _record_placed_file(source, target, digest)
        return record
    logger.warning(
        "%s: cached %s does not match the pinned sha256 (got %s); downloading it",
        source.id,
        target,
        digest,
    )
    return None


def _conditional_headers(
    source: Source, target: Path, record: Provenance | None
) -> dict[str, str]:
    if record is None or not target.is_file() or record.url != source.url:
        return {}
    if source.sha256 is not None and record.sha256 != source.sha256:
        return {}  # the catalogue pins another version: download it
    if _md5_mismatch(source, target) is not None:
        return {}
    headers = {}
    if record.etag:
        headers["If-None-Match"] = record.etag
    if record.last_modified:
        headers["If-Modified-Since"] = record.last_modified
    return headers


def _md5_mismatch(source: Source, target: Path) -> str | None:
    """Return the md5 of the cached file when it differs from the md5 pinned."""
    if source.md5 is None:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    with target.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    found = digest.hexdigest()
    return None if found == source.md5 else found


def _log_download(
    source: Source, target: Path, record: Provenance, seconds: float
) -> None:
    """Say what was downloaded, and how to pin it when no sha256 is pinned."""
    logger.info(
        "%s: downloaded %s (%s bytes in %.1f s) to %s",
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


# --------------------------------------------------------------------- extraction
def _extract(
    source: Source, archive: Path, digest: str, record: Provenance, limit: int
) -> Extraction:
    """Return the extraction of the archive's members: reused if intact, else made.

    ``digest`` is the sha256 of ``archive`` as verified by this fetch.
    """
    if (reused := _reusable_extraction(source, archive, digest, record)) is not None:
        return reused
    folder = archive.parent
    sizes = extract_members(source, archive, folder / EXTRACTED, limit)
    return Extraction(
        archive_sha256=digest,
        patterns=source.members,
        members=sizes,
        sha256={name: sha256_file(_member(folder, name)) for name in sizes},
    )


def _reusable_extraction(
    source: Source, archive: Path, digest: str, record: Provenance
) -> Extraction | None:
    """Return the recorded extraction if its files are all there, intact; else None."""
    previous = record.extracted
    if (
        previous is None
        or previous.archive_sha256 != digest
        or previous.patterns != source.members
    ):
        return None
    folder = archive.parent
    paths = {name: _member(folder, name) for name in previous.members}
    if not all(
        p.is_file() and p.stat().st_size == previous.members[name]
        for name, p in paths.items()
    ):
        return None
    digests = {name: sha256_file(p) for name, p in paths.items()}
    recorded = previous.sha256
    if recorded is None or recorded == digests:
        logger.info(
            "%s: %d member(s) already extracted in %s (sha256 verified)",
            source.id,
            len(paths),
            folder / EXTRACTED,
        )
        return replace(previous, sha256=digests)
    logger.warning(
        "%s: extracted member(s) %s in %s are corrupted (sha256 differs from "
        "the one recorded at extraction); extracting them again",
        source.id,
        sorted(n for n in digests if digests[n] != recorded.get(n)),
        folder / EXTRACTED,
    )
    return None
