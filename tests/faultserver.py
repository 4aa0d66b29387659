"""What a download can meet, served by the tests' loopback HTTP server (pytest-httpserver).

Each function returns a werkzeug handler (``server.expect_request(path)
.respond_with_handler(handler)``) or the bytes of a malformed archive; ``tree``
records a cache folder byte for byte, to check that a refused fetch changed
nothing. Used by ``tests/test_fetch_faults.py``.
"""

from __future__ import annotations

import io
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import py7zr
from werkzeug import Request, Response

Handler = Callable[[Request], Response]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes); folders as ``name/``."""
    if not folder.exists():
        return {}
    return {
        path.relative_to(folder).as_posix() + ("/" if path.is_dir() else ""): (
            b"" if path.is_dir() else path.read_bytes()
        )
        for path in sorted(folder.rglob("*"))
    }


def serve(
    body: bytes,
    *,
    etag: str | None = None,
    content_type: str = "application/zip",
    calls: list[Request] | None = None,
) -> Handler:
    """Serve ``body``; HTTP 304 to a client that already has ``etag``."""

    def handler(request: Request) -> Response:
        if calls is not None:
            calls.append(request)
        headers = {"ETag": etag} if etag else {}
        if etag and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers=headers)
        return Response(body, headers=headers, content_type=content_type)

    return handler


def html_page(etag: str = '"html"') -> Handler:
    """A portal's page where the archive was (a moved file), with status 200."""
    page = b"<!DOCTYPE html><html><body>Page introuvable</body></html>"
    return serve(page, etag=etag, content_type="text/html; charset=utf-8")


def truncated(body: bytes, sent: int) -> Handler:
    """Announce the whole body, send ``sent`` bytes of it, close the connection."""

    def handler(request: Request) -> Response:
        return Response(
            iter([body[:sent]]),
            headers={"Content-Length": str(len(body)), "ETag": '"cut"'},
            content_type="application/zip",
        )

    return handler


def stalled_mid_body(body: bytes, sent: int, release: threading.Event) -> Handler:
    """Send the headers and ``sent`` bytes, then nothing until ``release`` is set."""

    def chunks() -> Iterator[bytes]:
        yield body[:sent]
        release.wait(30)
        yield body[sent:]

    def handler(request: Request) -> Response:
        return Response(
            chunks(),
            headers={"Content-Length": str(len(body)), "ETag": '"slow"'},
            content_type="application/zip",
        )

    return handler


def failing_first(status: int, then: Handler, calls: list[Request]) -> Handler:
    """Answer ``status`` to the first request, then as ``then`` does."""

    def handler(request: Request) -> Response:
        calls.append(request)
        if len(calls) == 1:
            return Response("boom", status=status)
        return then(request)

    return handler


def redirect(location: str) -> Handler:
    """A 302 to ``location`` (a portal moving its files to a CDN)."""

    def handler(request: Request) -> Response:
        return Response(status=302, headers={"Location": location})

    return handler


# --------------------------------------------------------------------- archives
def deflated_zip(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` deflated, names written as given (``../x`` included)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2023, 5, 3, 10, 0, 0)), data)
    return buffer.getvalue()


def seven_zip(members: dict[str, bytes]) -> bytes:
    """A 7z of ``members``, names written as given (``../x`` included)."""
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive._writestr(data, name)  # writestr refuses "..": that is the point
    return buffer.getvalue()


def zeros_zip(name: str, size: int) -> bytes:
    """A zip whose one member is ``size`` zero bytes, deflated about 1,000 to 1.

    Built without holding ``size`` bytes: one MiB of zeros is deflated with a
    full flush (so its compressed block repeats exactly) and the block is
    written ``size`` / 1 MiB times; the CRC is computed block by block. The
    headers declare the true sizes and CRC: a well-formed bomb.
    """
    block = 1 << 20
    assert size % block == 0
    assert size < 1 << 32  # no zip64 here
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = repeated * (size // block) + compressor.flush(zlib.Z_FINISH)
    crc = 0
    zeros = bytes(block)
    for _ in range(size // block):
        crc = zlib.crc32(zeros, crc)
    return _one_member_zip(name.encode(), data, crc, size)


def _one_member_zip(name: bytes, data: bytes, crc: int, size: int) -> bytes:
    """The bytes of a zip of one deflated member: local header, data, directory, end."""
    time, date = 0x5000, 0x56A3  # 2023-05-03 10:00
    local = struct.pack(
        "<4s5H3L2H",
        b"PK\x03\x04",
        20,
        0,
        8,
        time,
        date,
        crc,
        len(data),
        size,
        len(name),
        0,
    )
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        time,
        date,
        crc,
        len(data),
        size,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    start = len(local) + len(name) + len(data)
    directory = central + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), start, 0)
    return local + name + data + directory + end
