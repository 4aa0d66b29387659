"""Checks on a file already in the cache: against the catalogue's pins, its URL, its record.

Offline means verified: :func:`use_offline` accepts a cached file only when its
size, sha256 and md5 match what the catalogue pins (or, without a pin, what its
provenance recorded) and it was fetched from the URL the catalogue names now.
:func:`check_pins` holds the cached file of a 304 to the same pins. None of
these functions writes anything.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from observatory.core.errors import SourceError
from observatory.core.files import CHUNK, sha256_file
from observatory.sources.archives import member_path
from observatory.sources.catalogue import EXTRACTED, PROVENANCE, Source
from observatory.sources.provenance import Extraction, Provenance

__all__ = [
    "check_pins",
    "conditional_headers",
    "md5_mismatch",
    "pinned_in_cache",
    "reusable_extraction",
    "sha256_file",
    "use_offline",
]

logger = logging.getLogger(__name__)


_FETCH = "run `observatory fetch` with network"


def check_pins(source: Source, target: Path, digest: str, why: str) -> None:
    """Refuse a cached file whose size, sha256 or md5 differs from the catalogue's pins.

    ``why`` says when the cached file was checked ("checked offline", "after
    HTTP 304 Not Modified").
    """
    size = target.stat().st_size
    if source.size is not None and size != source.size:
        msg = (
            f"{source.id}: cached {target} has {size:,} bytes but the catalogue pins "
            f"size = {source.size} ({why}); the file may have been updated "
            "upstream: check it and update size and sha256 in the catalogue"
        )
        raise SourceError(msg, source=source.id, path=target)
    if source.sha256 is not None and digest != source.sha256:
        msg = (
            f"{source.id}: cached {target} has sha256 {digest} but the catalogue pins "
            f"{source.sha256} ({why}); {_FETCH} to download the pinned version"
        )
        raise SourceError(msg, source=source.id, path=target)
    if (md5 := md5_mismatch(source, target)) is not None:
        msg = (
            f"{source.id}: cached {target} has md5 {md5} but the catalogue pins "
            f"{source.md5} (measured by {source.md5_from}; {why}); {_FETCH} to "
            "download the pinned version"
        )
        raise SourceError(msg, source=source.id, path=target)


def use_offline(
    source: Source, target: Path, record: Provenance | None
) -> tuple[Provenance, str]:
    """Return the cached file's record and its sha256, both verified; write nothing.

    A file placed in the cache by hand that matches the pinned sha256 gets a
    new record (the caller writes it).
    """
    if record is not None and record.url != source.url:
        cached = target.with_name(record.file)
        msg = (
            f"{source.id}: the cached {cached} was fetched from {record.url} but the "
            f"catalogue now points to {source.url}; {_FETCH} to download it"
        )
        raise SourceError(msg, source=source.id, path=cached)
    if not target.is_file():
        msg = (
            f"{source.id}: not in the cache ({target} is absent) and offline mode "
            f"forbids downloading it; {_FETCH} first"
        )
        raise SourceError(msg, source=source.id, path=target)
    digest = sha256_file(target)
    check_pins(source, target, digest, "checked offline")
    if record is None:
        if source.sha256 is None:
            msg = (
                f"{source.id}: {target} has no provenance record ({PROVENANCE}) and no "
                f"pinned sha256, so it cannot be verified offline; {_FETCH} first"
            )
            raise SourceError(msg, source=source.id, path=target)
        record = placed_record(source, target, digest)
    elif digest != record.sha256:
        if source.sha256 is None:
            msg = (
                f"{source.id}: cached {target} is corrupted: sha256 {digest}, "
                f"recorded {record.sha256}; {_FETCH} to download it again"
            )
            raise SourceError(msg, source=source.id, path=target)
        record = placed_record(source, target, digest)  # the pin vouches for it
    logger.info("%s: offline, using cached %s (verified)", source.id, target)
    return record, digest


def placed_record(source: Source, target: Path, digest: str) -> Provenance:
    """Record a file that matches the pin but was put in the cache by hand."""
    logger.info(
        "%s: %s matches the pinned sha256; recording its provenance", source.id, target
    )
    return Provenance.of_file(source, target, digest, target.stat().st_size)


def pinned_in_cache(
    source: Source, target: Path, record: Provenance | None
) -> Provenance | None:
    """Return the record of a cached file matching the pinned sha256, else None.

    A file fetched from another URL than the catalogue's is fetched again (the
    new URL is confirmed, and recorded).
    """
    if source.sha256 is None or not target.is_file():
        return None
    if record is not None and record.url != source.url:
        logger.info(
            "%s: the catalogue now points to %s (cached from %s); downloading it",
            source.id,
            source.url,
            record.url,
        )
        return None
    digest = sha256_file(target)
    if digest == source.sha256 and md5_mismatch(source, target) is None:
        logger.info(
            "%s: %s matches the pinned sha256, no request needed", source.id, target
        )
        if record is None or record.sha256 != digest:
            return placed_record(source, target, digest)
        return record
    logger.warning(
        "%s: cached %s does not match the pinned sha256 (got %s); downloading it",
        source.id,
        target,
        digest,
    )
    return None


def conditional_headers(
    source: Source, target: Path, record: Provenance | None
) -> dict[str, str]:
    """Return the validators to send, or none when the cached file cannot be kept anyway."""
    if record is None or not target.is_file() or record.url != source.url:
        return {}
    if source.sha256 is not None and record.sha256 != source.sha256:
        return {}  # the catalogue pins another version: download it
    if source.size is not None and record.size != source.size:
        return {}  # likewise: the download then says what the server has
    if md5_mismatch(source, target) is not None:
        return {}
    headers = {}
    if record.etag:
        headers["If-None-Match"] = record.etag
    if record.last_modified:
        headers["If-Modified-Since"] = record.last_modified
    return headers


def md5_mismatch(source: Source, target: Path) -> str | None:
    """Return the md5 of the cached file when it differs from the md5 pinned."""
    if source.md5 is None:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    with target.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    found = digest.hexdigest()
    return None if found == source.md5 else found


def reusable_extraction(
    source: Source, folder: Path, digest: str, previous: Extraction | None
) -> Extraction | None:
    """Return the recorded extraction if its files in ``folder`` are all there, intact.

    ``digest`` is the sha256 of the archive as verified by this fetch: members
    extracted from other bytes, or with other patterns, are not reused.
    """
    if (
        previous is None
        or previous.archive_sha256 != digest
        or previous.patterns != source.members
    ):
        return None
    paths = {n: member_path(folder / EXTRACTED, n) for n in previous.members}
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
