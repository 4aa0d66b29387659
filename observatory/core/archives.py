"""Open an input file, plain, gzipped or one member of a zip, as a binary stream.

The one opener of every reader (:mod:`observatory.readers`): it tells the three
apart, picks the member of a zip archive, turns a corrupt archive into a
:class:`~observatory.core.errors.DataError` naming the file, and can bound the
bytes read (decompressed), so that a reader's memory and time never depend on
what a file holds. Extracting downloads into the cache is another job, done by
:mod:`observatory.sources`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from observatory.core.errors import DataError

#: What a reader accepts in a zip archive: the candidates among its files.
Pick = Callable[[list[str]], list[str]]

Compression = Literal["zip", "gzip"]

#: A binary stream as the standard library opens one.
Stream = IO[bytes] | io.BufferedIOBase

_GZIP_MAGIC = b"\x1f\x8b"

# Raised while inflating: a truncated stream, bad data or a bad checksum.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)

# NotImplementedError: a compression zipfile cannot read (Deflate64); OSError
# and ValueError: offsets in a corrupt directory (a seek before the start).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    NotImplementedError,
    OSError,
    ValueError,
)


def _flat(error: BaseException) -> str:
    """Return a library's message on one line (zipfile's may hold several)."""
    return " ".join(str(error).split())[:200]


@dataclass(frozen=True, slots=True)
class Member:
    """The bytes of an input file being read.

    Attributes
    ----------
    path
        The file on disk.
    name
        The member read inside a zip archive; None for a plain or gzipped file.
    stream
        Its bytes, decompressed; a corrupt archive raises :class:`DataError`.
    """

    path: Path
    name: str | None
    stream: Stream

    @property
    def where(self) -> str:
        """Name the file in messages: ``path``, or ``path [member]`` in a zip."""
        return f"{self.path}" + (f" [{self.name}]" if self.name else "")


def compression_of(path: Path) -> Compression | None:
    """Tell whether ``path`` is a zip archive, a gzip file, or a plain file.

    A file is gzipped when its first bytes say so or its name ends in ``.gz``.

    Raises
    ------
    DataError
        A file named ``.zip`` that is not a zip archive.
    """
    if zipfile.is_zipfile(path):
        return "zip"
    if path.suffix.lower() == ".zip":
        msg = f"{path}: not a valid zip archive"
        raise DataError(msg, path=path)
    with path.open("rb") as handle:
        magic = handle.read(len(_GZIP_MAGIC))
    if magic == _GZIP_MAGIC or path.suffix.lower() == ".gz":
        return "gzip"
    return None


def mebibytes(size: int) -> str:
    """Say a size in bytes for a message: ``64 MiB``, ``1.5 GiB``, ``1,000 bytes``."""
    if size >= 1 << 30:
        return f"{size / (1 << 30):g} GiB"
    if size >= 1 << 20:
        return f"{size / (1 << 20):g} MiB"
    return f"{size:,} bytes"


@contextlib.contextmanager
def open_member(
    path: Path, pick: Pick, *, what: str, limit: int | None = None
) -> Iterator[Member]:
    """Open a plain file, a gzip file or the one wanted member of a zip archive.

    Parameters
    ----------
    path
        The file to read.
    pick
        Given the files of a zip archive (folders and ``__MACOSX`` left out),
        return the candidates: exactly one must remain.
    what
        What the archive should hold, for the error message (``"CSV file"``).
    limit
        The most bytes (decompressed) the stream gives: reading beyond raises
        :class:`DataError` naming the file and the bound. None: no bound.

    Yields
    ------
    Member
        The file, the member's name, and a binary stream of its bytes; reading
        a corrupt gzip or zip raises :class:`DataError` naming ``path``.

    Raises
    ------
    DataError
        Not exactly one candidate in the archive (naming the files found), or
        an archive that cannot be opened.
    """
    kind = compression_of(path)
    with contextlib.ExitStack() as stack:
        if kind == "zip":
            member = stack.enter_context(_open_zip(path, pick, what))
        elif kind == "gzip":
            raw = stack.enter_context(gzip.open(path, "rb"))
            stream = _Checked(raw, _GZIP_ERRORS, path, "not a valid gzip file ({})")
            member = Member(path, None, stream)
        else:
            member = Member(path, None, stack.enter_context(path.open("rb")))
        if limit is not None:
            bounded = _Bounded(limit, member, what, unpacked=kind is not None)
            member = Member(path, member.name, bounded)
        yield member


@contextlib.contextmanager
def _open_zip(path: Path, pick: Pick, what: str) -> Iterator[Member]:
    corrupt = "corrupt zip archive: {}"
    with contextlib.ExitStack() as stack:
        try:  # the archive's directory and the member's header
            archive = stack.enter_context(zipfile.ZipFile(path))
            names = [
                name
                for name in archive.namelist()
                if not name.endswith("/") and not name.startswith("__MACOSX")
            ]
            chosen = pick(names)
            if len(chosen) != 1:
                msg = f"{path}: expected one {what} in the archive, found {names}"
                raise DataError(msg, path=path)
            raw = stack.enter_context(archive.open(chosen[0]))
        except _ZIP_ERRORS as exc:
            msg = f"{path}: " + corrupt.format(_flat(exc))
            raise DataError(msg, path=path) from exc
        yield Member(path, chosen[0], _Checked(raw, _ZIP_ERRORS, path, corrupt))


class _Checked(io.BufferedIOBase):
    """A decompressing stream whose decompression errors name the file."""

    def __init__(
        self,
        raw: Stream,
        errors: tuple[type[BaseException], ...],
        path: Path,
        message: str,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._errors = errors
        self._path = path
        self._message = message

    def readable(self) -> bool:
        """Say the stream can be read."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Read up to ``size`` decompressed bytes (all if negative)."""
        try:
            return self._raw.read(-1 if size is None else size)
        except self._errors as exc:
            msg = f"{self._path}: " + self._message.format(_flat(exc))
            raise DataError(msg, path=self._path) from exc

    def read1(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` decompressed bytes."""
        return self.read(size)

    def readline(self, size: int | None = -1, /) -> bytes:
        """Read one line, at most ``size`` decompressed bytes of it."""
        try:
            return self._raw.readline(-1 if size is None else size)
        except self._errors as exc:
            msg = f"{self._path}: " + self._message.format(_flat(exc))
            raise DataError(msg, path=self._path) from exc


class _Bounded(io.BufferedIOBase):
    """A stream that refuses to give more than ``limit`` bytes.

    What a reader keeps in memory, and how long it reads, then depend on the
    bound, not on the file: a zip bomb or a file of zeros stops at the bound.
    """

    def __init__(
        self, limit: int, member: Member, what: str, *, unpacked: bool
    ) -> None:
        super().__init__()
        self._raw = member.stream
        self._left = limit
        self._limit = limit
        self._member = member
        self._what = what
        self._unpacked = " once decompressed" if unpacked else ""

    def readable(self) -> bool:
        """Say the stream can be read."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Read up to ``size`` bytes (all if negative), within the bound."""
        return self._count(self._raw.read(self._wanted(size)))

    def read1(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes, within the bound."""
        return self.read(size)

    def readline(self, size: int | None = -1, /) -> bytes:
        """Read one line, at most ``size`` bytes of it, within the bound."""
        return self._count(self._raw.readline(self._wanted(size)))

    def _wanted(self, size: int | None) -> int:
        # One byte beyond the bound tells a file of exactly `limit` bytes apart.
        if size is None or size < 0:
            return self._left + 1
        return min(size, self._left + 1)

    def _count(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            msg = (
                f"{self._member.where}: more than {mebibytes(self._limit)} of data"
                f"{self._unpacked}: refused, no {self._what} read here is that "
                "large (the bound keeps reading within memory and time)"
            )
            raise DataError(msg, path=self._member.path)
        return data
