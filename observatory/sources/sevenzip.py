"""py7zr writers that confine and count what a 7z extraction writes.

Imported only when a 7z source is extracted, as py7zr itself is. Each member is
written to its own file under the extraction root, every block counted by the
caller's budget (py7zr may write from several threads).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import py7zr

from observatory.core.errors import SourceError


class _MemberWriter(py7zr.Py7zIO):
    """Write one member to its file, counting each block."""

    def __init__(self, path: Path, member: str, count: Callable[[int, str], None]):
        self.member = member
        self.count = count
        self.handle = path.open("wb")
        self.written = 0

    def write(self, data: bytes | bytearray) -> int:
        self.count(len(data), self.member)
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


class BoundedWriterFactory(py7zr.WriterFactory):
    """Give py7zr one counting writer per member, refusing paths outside ``root``.

    Parameters
    ----------
    root
        The extraction folder, resolved.
    place
        Where a member given by its name in the archive is written under ``root``.
    count
        Called with the size of each block written and the member's name; it
        raises to stop the extraction.
    source_id, archive
        The source and archive extracted, for the error messages.
    """

    def __init__(
        self,
        root: Path,
        place: Callable[[str], Path],
        count: Callable[[int, str], None],
        source_id: str,
        archive: Path,
    ) -> None:
        self.root, self.place, self.count = root, place, count
        self.source_id, self.archive = source_id, archive
        self.writers: list[_MemberWriter] = []

    def create(self, filename: str) -> _MemberWriter:
        """Open the writer of the member ``filename``."""
        dest = Path(filename)
        dest = dest if dest.is_absolute() else self.place(filename)
        if not dest.resolve().is_relative_to(self.root):
            msg = f"{self.source_id}: refusing to extract member {filename!r} of {self.archive.name}: its path falls outside the extraction folder"
            raise SourceError(msg, source=self.source_id, path=self.archive)
        dest.parent.mkdir(parents=True, exist_ok=True)
        writer = _MemberWriter(dest, dest.relative_to(self.root).as_posix(), self.count)
        self.writers.append(writer)
        return writer

    def close(self) -> None:
        """Close every writer opened (py7zr leaves that to the factory's owner)."""
        for writer in self.writers:
            writer.close()
