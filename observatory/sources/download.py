"""HTTP downloads of one source file: session, retries, streaming and the checks on a response.

:func:`download` streams the body to ``.<name>.<random>.part`` beside the target
while its sha256 (and the md5, when a third party's is pinned) is computed,
checks the status, the sizes (``Content-Length``, pinned ``size``), the pinned
sha256 and md5, HTML pages served instead of the file and the format's magic
bytes, and only then moves it into place (``os.replace``). A file that cannot be
fetched (HTTP error, network failure) raises :class:`SourceUnavailable`.
The session of :func:`build_session` retries connection errors, read timeouts
and HTTP 500/502/503/504 with exponential backoff; a 4xx fails at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeGuard

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from observatory import __version__
from observatory.core.errors import SourceError
from observatory.core.files import CHUNK
from observatory.core.fserrors import describe_os_error
from observatory.sources.catalogue import MAGIC, Source
from observatory.sources.limits import FetchLimits

logger = logging.getLogger(__name__)


#: HTTP statuses retried by the session (with backoff).
RETRY_STATUSES = (500, 502, 503, 504)


_HTML_STARTS = (b"<!doctype html", b"<html")


_HEAD = 1024  # bytes sniffed for HTML pages and magic numbers


@dataclass(frozen=True, slots=True)
class Download:
    """What a GET of a source brought: not modified (HTTP 304), or the file in place."""

    not_modified: bool
    final_url: str
    etag: str | None = None
    last_modified: str | None = None
    size: int = 0
    sha256: str = ""
    seconds: float = 0.0


class SourceUnavailable(SourceError):
    """The file could not be fetched: an HTTP error or a network failure.

    A catalogue input's ``fallback`` is used on this error only; a file that
    arrived but fails a check (size, sha256, md5, HTML page, magic bytes) is a
    plain :class:`SourceError` and never falls back.
    """


class _BodyError(Exception):
    """The body broke off after the headers (worth another attempt)."""


def build_session(retries: int, backoff: float) -> requests.Session:
    """Return a session retrying connection errors, read timeouts and HTTP 5xx.

    Parameters
    ----------
    retries
        Retries after the first attempt.
    backoff
        Backoff factor in seconds (0 retries at once).
    """
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


def download(
    http: requests.Session,
    source: Source,
    target: Path,
    conditional: dict[str, str],
    limits: FetchLimits,
) -> Download:
    """Download ``source`` to ``target``, verified, or learn that it is not modified.

    Parameters
    ----------
    http
        The session (its adapters retry what fails before the body).
    source
        The catalogue entry: URL, format, pinned size and sha256.
    target
        Where the file goes; its folder must exist and holds the ``.part`` file.
    conditional
        ``If-None-Match`` / ``If-Modified-Since`` headers, or none.
    limits
        ``timeout`` to connect and between two reads; ``retries`` of a body that
        broke off, with exponential ``backoff``; ``max_extracted_bytes`` bounds
        the body too.

    Raises
    ------
    SourceError
        When the file fails a check (size, sha256, md5, HTML page, magic bytes);
        :class:`SourceUnavailable` when it cannot be downloaded (HTTP error,
        network failure). Nothing is left in ``target``'s folder but what was
        there before.
    """
    retries = limits.retries
    for attempt in range(retries + 1):
        try:
            return _attempt(http, source, target, conditional, limits)
        except _BodyError as exc:
            if attempt == retries:
                msg = f"{exc} (after {retries} retries); deleted the download"
                raise SourceUnavailable(msg, source=source.id) from exc
            delay = limits.backoff * 2**attempt
            logger.warning("%s; retrying in %.1f s", exc, delay)
            time.sleep(delay)
    raise AssertionError  # pragma: no cover - the loop returns or raises


def _attempt(
    http: requests.Session,
    source: Source,
    target: Path,
    conditional: dict[str, str],
    limits: FetchLimits,
) -> Download:
    timeout = limits.timeout
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
        if response.status_code == 304 and conditional:
            return Download(not_modified=True, final_url=response.url)
        _check_status(source, response)
        _check_content_type(source, response)
        expected = _content_length(response)
        _check_announced_size(source, response.url, expected, limits)
        size, digest = _write_part(source, response, target, expected, limits)
    return Download(
        not_modified=False,
        final_url=response.url,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        size=size,
        sha256=digest,
        seconds=time.monotonic() - started,
    )


def _write_part(
    source: Source,
    response: requests.Response,
    target: Path,
    expected: int | None,
    limits: FetchLimits,
) -> tuple[int, str]:
    """Stream the body to a ``.part`` file, verify it, move it onto ``target``."""
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest, md5 = _stream(
                source, response, out, expected, limits.max_extracted_bytes
            )
        _verify(source, response.url, size, digest)
        if md5 is not None:
            _verify_md5(source, response.url, md5)
        part.replace(target)
    except SourceError:
        raise
    except OSError as exc:  # disk full, permissions...
        msg = (
            f"{source.id}: cannot write {target}: {describe_os_error(exc)}; "
            "deleted the download"
        )
        raise SourceError(msg, source=source.id, path=target) from exc
    finally:
        part.unlink(missing_ok=True)
    return size, digest


def _stream(
    source: Source,
    response: requests.Response,
    out: IO[bytes],
    expected: int | None,
    max_bytes: int,
) -> tuple[int, str, str | None]:
    """Write the body to ``out``; return its size, sha256 and md5 (if pinned)."""
    digest = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if source.md5 is not None else None
    received = 0
    head = b""
    sniffed = False
    try:
        for chunk in _body(response):
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
                raise SourceError(msg, source=source.id)
            if received > max_bytes:
                raise _too_large(
                    source, response.url, f"sent more than {max_bytes:,} bytes"
                )
            digest.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            out.write(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise _body_error(source, response.url, exc, received, expected) from exc
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
    return received, digest.hexdigest(), md5.hexdigest() if md5 is not None else None


def _body(response: requests.Response) -> Iterator[bytes]:
    """Yield the body as it arrives (``read1``: what came, so a stall counts it)."""
    while chunk := response.raw.read1(CHUNK):
        yield chunk


def _body_error(
    source: Source, url: str, exc: BaseException, received: int, expected: int | None
) -> _BodyError:
    """Say how a body broke off: stalled, truncated or cut."""
    # urllib3 reads by blocks: count what reached the socket, not what we got
    received = max([received] + [e.partial for e in _causes(exc) if _is_incomplete(e)])
    if _is_timeout(exc):
        msg = (
            f"{source.id}: download of {url} stalled and timed out "
            f"after {received} bytes"
        )
    elif expected is not None and received < expected:
        msg = (
            f"{source.id}: download of {url} truncated: expected "
            f"{expected} bytes (Content-Length), got {received}"
        )
    else:
        msg = (
            f"{source.id}: download of {url} broke off after "
            f"{received} bytes: {_reason(exc)}"
        )
    return _BodyError(msg)


def _verify(source: Source, url: str, size: int, digest: str) -> None:
    if source.size is not None and size != source.size:
        msg = (
            f"{source.id}: size mismatch for {url}: expected {source.size} bytes "
            f"(pinned), got {size}; deleted the download"
        )
        raise SourceError(msg, source=source.id)
    if source.sha256 is not None and digest != source.sha256:
        msg = (
            f"{source.id}: SHA256 mismatch for {url}: expected {source.sha256}, got "
            f"{digest}; deleted the download. The file may have been updated upstream "
            "(check it and update sha256 in the catalogue) or corrupted in transit "
            "(run again)"
        )
        raise SourceError(msg, source=source.id)


def _verify_md5(source: Source, url: str, digest: str) -> None:
    """Check the third-party md5 pin, naming who measured it."""
    if digest != source.md5:
        msg = (
            f"{source.id}: MD5 mismatch for {url}: expected {source.md5} (third-party "
            f"pin, measured by {source.md5_from}), got {digest}; deleted the download. "
            "The file may have been updated upstream (check it and update md5 in the "
            "catalogue) or corrupted in transit (run again)"
        )
        raise SourceError(msg, source=source.id)


# --------------------------------------------------------------------- response checks
def _content_length(response: requests.Response) -> int | None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    value = response.headers.get("Content-Length", "").strip()
    if encoding not in ("", "identity") or not value.isdigit():
        return None  # a compressed transfer: the length counts other bytes
    return int(value)


def _too_large(source: Source, url: str, got: str) -> SourceError:
    msg = (
        f"{source.id}: {url} {got}, above max_extracted_size (which bounds "
        "a downloaded file too); raise [sources] max_extracted_size "
        "if the file is genuine; deleted the download"
    )
    return SourceError(msg, source=source.id)


def _check_announced_size(
    source: Source, url: str, expected: int | None, limits: FetchLimits
) -> None:
    if expected is not None and expected > limits.max_extracted_bytes:
        raise _too_large(source, url, f"announces {expected:,} bytes")
    if expected is not None and source.size is not None and expected != source.size:
        msg = (
            f"{source.id}: size mismatch for {url}: the catalogue pins "
            f"{source.size} bytes, the server announces {expected}; nothing "
            "downloaded. The file may have been updated upstream: check it and "
            "update size and sha256 in the catalogue"
        )
        raise SourceError(msg, source=source.id)


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
    raise SourceUnavailable(msg, source=source.id)


def _check_content_type(source: Source, response: requests.Response) -> None:
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        raise SourceError(_html_message(source, response.url), source=source.id)


def _html_message(source: Source, url: str) -> str:
    return (
        f"{source.id}: {url} returned an HTML page instead of the expected "
        f"{source.format} file, probably a moved file; check the URL in the catalogue; "
        "deleted the download"
    )


def _check_head(source: Source, url: str, head: bytes) -> None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(_HTML_STARTS):
        raise SourceError(_html_message(source, url), source=source.id)
    magic = MAGIC.get(source.format)
    if magic is not None and not head.startswith(magic):
        msg = (
            f"{source.id}: {url} did not return a {source.format} file: it starts with "
            f"{head[:8]!r}, a {source.format} file starts with {magic!r}; check the "
            "URL and format in the catalogue; deleted the download"
        )
        raise SourceError(msg, source=source.id)


# --------------------------------------------------------------------- network errors
def _network_error(
    source: Source, exc: BaseException, timeout: float
) -> SourceUnavailable:
    if _is_timeout(exc):
        msg = (
            f"{source.id}: timed out after {timeout:g} s waiting for {source.url} "
            "(retries exhausted); the server is not answering: try again later or "
            "raise [sources] timeout_s (--timeout)"
        )
    elif _chain_has(exc, requests.exceptions.SSLError, urllib3.exceptions.SSLError):
        msg = f"{source.id}: TLS verification failed for {source.url}: {_reason(exc)}"
    elif isinstance(exc, requests.TooManyRedirects):
        msg = f"{source.id}: too many redirects from {source.url}"
    else:
        msg = f"{source.id}: cannot download {source.url} (retries exhausted): {_reason(exc)}"
    return SourceUnavailable(msg, source=source.id)


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


def _is_incomplete(
    exc: BaseException,
) -> TypeGuard[urllib3.exceptions.IncompleteRead]:
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
