"""Safe extraction of the members of a zip or 7z archive named by a catalogue source.

:func:`list_archive` lists an archive; :func:`extract_members` selects the
members matching the source's ``members`` patterns, refuses any path outside
the extraction folder (zip-slip), bounds the uncompressed size (declared, then
counted while writing) and extracts into a temporary folder renamed into place
once complete, so that a folder of extracted members is always whole.
"""

from __future__ import annotations

import fnmatch
import logging
import lzma
import re
import shutil
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path

from observatory.core.errors import SourceError
from observatory.core.files import CHUNK
from observatory.sources.catalogue import Source

logger = logging.getLogger(__name__)


#: Temporary extraction folders start with this (a crash leftover is removed).
TEMPORARY_PREFIX = ".extracted-"


_MAX_LISTED = 20


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
                raise SourceError(msg, source=self.source.id, path=self.archive)


def member_path(folder: Path, name: str) -> Path:
    """Return where the member ``name`` of an archive lands when extracted into ``folder``."""
    return folder.joinpath(*_parts(name))


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]


def list_archive(source: Source, archive: Path) -> dict[str, int]:
    """Return the files of the archive of ``source`` and their declared uncompressed size.

    Directories are left out. ``source.format`` says whether ``archive`` is a zip
    or a 7z file.

    Raises
    ------
    SourceError
        When ``archive`` cannot be read as such.
    """
    if source.format == "zip":
        try:
            with zipfile.ZipFile(archive) as handle:
                return {
                    i.filename: i.file_size for i in handle.infolist() if not i.is_dir()
                }
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            msg = f"{source.id}: cannot read {archive} as a zip archive: {exc}"
            raise SourceError(msg, source=source.id, path=archive) from exc
    import py7zr  # only 7z sources need it

    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            return {
                i.filename: i.uncompressed for i in handle.list() if not i.is_directory
            }
    except _7z_errors() as exc:
        msg = f"{source.id}: cannot read {archive} as a 7z archive: {exc}"
        raise SourceError(msg, source=source.id, path=archive) from exc


def _7z_errors() -> tuple[type[BaseException], ...]:
    """Return the errors py7zr raises on a bad archive (imported lazily, with it)."""
    import py7zr.exceptions  # only 7z sources need it

    return (
        py7zr.exceptions.ArchiveError,
        py7zr.exceptions.PasswordRequired,
        OSError,
        EOFError,
        lzma.LZMAError,
    )


def extract_members(
    source: Source, archive: Path, extracted: Path, limit: int
) -> dict[str, int]:
    """Extract the members of ``archive`` that ``source.members`` selects.

    Parameters
    ----------
    source
        The catalogue entry: format, ``members`` patterns (exact names or
        ``fnmatch`` patterns, case-sensitive).
    archive
        The downloaded archive.
    extracted
        The folder the members go into, replaced as a whole once they are all
        extracted (its parent holds the temporary folder).
    limit
        Bound on the total uncompressed size, in bytes.

    Returns
    -------
    dict
        Member name -> size in bytes, in selection order.

    Raises
    ------
    SourceError
        When a pattern matches nothing, a member's path falls outside
        ``extracted``, the size bound is passed or the archive is unreadable;
        ``extracted`` is then left as it was.
    """
    listing = list_archive(source, archive)
    selected = _select_members(source, archive, listing)
    for name in selected:
        _check_member_path(source, archive, name, extracted)
    declared = sum(listing[name] for name in selected)
    if declared > limit:
        msg = (
            f"{source.id}: the members to extract from {archive.name} declare "
            f"{declared:,} bytes uncompressed, more than max_extracted_bytes="
            f"{limit:,}; nothing extracted"
        )
        raise SourceError(msg, source=source.id, path=archive)

    budget = _Budget(source, archive, limit)
    folder = extracted.parent
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=TEMPORARY_PREFIX, suffix=".tmp"))
    try:
        if source.format == "zip":
            _extract_zip(source, archive, selected, tmp, budget)
        else:
            _extract_7z(source, archive, selected, tmp, budget)
        sizes = _extracted_sizes(source, archive, selected, tmp)
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
    return sizes


def _extracted_sizes(
    source: Source, archive: Path, selected: list[str], tmp: Path
) -> dict[str, int]:
    sizes = {}
    for name in selected:
        path = member_path(tmp, name)
        if not path.is_file():
            msg = f"{source.id}: member {name!r} of {archive.name} was not extracted"
            raise SourceError(msg, source=source.id, path=archive)
        sizes[name] = path.stat().st_size
    return sizes


def _swap_into_place(tmp: Path, extracted: Path) -> None:
    if not extracted.exists():
        tmp.rename(extracted)
        return
    old = Path(
        tempfile.mkdtemp(dir=extracted.parent, prefix=TEMPORARY_PREFIX, suffix=".old")
    )
    old.rmdir()
    extracted.rename(old)
    try:
        tmp.rename(extracted)
    except OSError:
        old.rename(extracted)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_member_path(
    source: Source, archive: Path, name: str, extracted: Path
) -> None:
    """Refuse members that would land outside the extraction folder (zip-slip)."""
    parts = _parts(name)
    root = extracted.resolve()
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
        raise SourceError(msg, source=source.id, path=archive)


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
            raise SourceError(msg, source=source.id, path=archive)
        selected.update(dict.fromkeys(matches))
    return list(selected)


def _extract_zip(
    source: Source, archive: Path, names: list[str], tmp: Path, budget: _Budget
) -> None:
    try:
        with zipfile.ZipFile(archive) as handle:
            for name in names:
                dest = member_path(tmp, name)
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
        raise SourceError(msg, source=source.id, path=archive) from exc


def _extract_7z(
    source: Source, archive: Path, names: list[str], tmp: Path, budget: _Budget
) -> None:
    import py7zr  # only 7z sources need it

    from observatory.sources.sevenzip import BoundedWriterFactory

    root = tmp.resolve()
    factory = BoundedWriterFactory(
        root, lambda name: member_path(root, name), budget.add, source.id, archive
    )
    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            handle.extract(path=root, targets=names, factory=factory)
    except SourceError:
        raise
    except _7z_errors() as exc:
        msg = f"{source.id}: cannot extract from {archive}: {exc}"
        raise SourceError(msg, source=source.id, path=archive) from exc
    finally:
        factory.close()
