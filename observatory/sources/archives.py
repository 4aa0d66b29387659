"""Safe extraction of the members of a zip or 7z archive named by a catalogue source.

:func:`list_archive` lists an archive; :func:`extract_members` selects the
members matching the source's ``members`` patterns and extracts them into a new
folder (the cache's staging folder), verifying every one: its path stays inside
the folder (zip-slip), the declared sizes fit ``max_extracted_bytes`` and the
free space, each member's declared and counted ratio of uncompressed to
compressed bytes stays under ``max_compression_ratio`` (bytes are counted while
inflating: declared sizes are not trusted), what was written matches what was
declared, and the CRC (checked by :mod:`zipfile` and py7zr as they read).
"""

from __future__ import annotations

import fnmatch
import logging
import lzma
import re
import shutil
import threading
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from observatory.core.errors import SourceError
from observatory.core.files import CHUNK
from observatory.core.fserrors import describe_os_error
from observatory.sources.catalogue import Source
from observatory.sources.limits import RATIO_FLOOR, FetchLimits, human_bytes

logger = logging.getLogger(__name__)


_MAX_LISTED = 20


_REFUSED = "nothing extracted, the cache is unchanged"


@dataclass(frozen=True, slots=True)
class Listed:
    """A file in an archive, as its directory declares it."""

    #: uncompressed size in bytes
    size: int
    #: compressed size in bytes; None in a 7z (its members share solid blocks)
    compressed: int | None


class _Budget:
    """Count the bytes an extraction writes, by member; thread-safe (py7zr uses threads)."""

    def __init__(
        self,
        source: Source,
        archive: Path,
        limits: FetchLimits,
        listing: dict[str, Listed],
    ) -> None:
        self.source, self.archive, self.limits = source, archive, limits
        self.listing = listing
        self.archive_size = archive.stat().st_size
        self.written = 0
        self.by_member: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, count: int, member: str) -> None:
        """Count ``count`` bytes written to ``member``; raise past a bound."""
        with self._lock:
            self.written += count
            self.by_member[member] += count
            if self.written > self.limits.max_extracted_bytes:
                self._refuse(
                    f"extracting {self.archive.name} writes more than "
                    f"max_extracted_size ({_size(self.limits.max_extracted_bytes)}) "
                    f"(stopped in member {member!r}); raise [sources] "
                    "max_extracted_size if the file is genuine"
                )
            listed = self.listing.get(member)
            if listed is not None and self.by_member[member] > listed.size:
                self._refuse(
                    f"member {member!r} of {self.archive.name} writes more than the "
                    f"{listed.size:,} bytes it declares: the archive is corrupted or forged"
                )
            self._check_ratio(member, listed)

    def _check_ratio(self, member: str, listed: Listed | None) -> None:
        # A 7z's members share compressed blocks: hold the whole archive to the ratio.
        per_member = listed is not None and listed.compressed is not None
        compressed = listed.compressed if per_member and listed else self.archive_size
        written = self.by_member[member] if per_member else self.written
        ratio = self.limits.max_compression_ratio
        if written > max(ratio * (compressed or 0), RATIO_FLOOR):
            what = f"member {member!r} of" if per_member else "the members of"
            self._refuse(
                f"{what} {self.archive.name} inflate more than max_compression_ratio "
                f"= {ratio:g} times their {compressed:,} compressed bytes (stopped "
                f"after {written:,} bytes): a decompression bomb or a corrupted "
                "archive; raise [sources] max_compression_ratio if the file is genuine"
            )

    def _refuse(self, why: str) -> None:
        msg = f"{self.source.id}: {why}; {_REFUSED}"
        raise SourceError(msg, source=self.source.id, path=self.archive)


def _size(count: int) -> str:
    return f"{human_bytes(count)}, {count:,} bytes"


def member_path(folder: Path, name: str) -> Path:
    """Return where the member ``name`` of an archive lands when extracted into ``folder``."""
    return folder.joinpath(*_parts(name))


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]


def list_archive(source: Source, archive: Path) -> dict[str, Listed]:
    """Return the files of the archive of ``source`` and their declared sizes.

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
                    i.filename: Listed(i.file_size, i.compress_size)
                    for i in handle.infolist()
                    if not i.is_dir()
                }
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            msg = f"{source.id}: cannot read {archive} as a zip archive: {exc}"
            raise SourceError(msg, source=source.id, path=archive) from exc
    import py7zr  # only 7z sources need it

    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            return {
                i.filename: Listed(i.uncompressed, None)
                for i in handle.list()
                if not i.is_directory
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
    source: Source, archive: Path, extracted: Path, limits: FetchLimits
) -> dict[str, int]:
    """Extract the members of ``archive`` that ``source.members`` selects, verified.

    Parameters
    ----------
    source
        The catalogue entry: format, ``members`` patterns (exact names or
        ``fnmatch`` patterns, case-sensitive).
    archive
        The downloaded archive.
    extracted
        The folder the members go into; it must not exist yet (the caller's
        staging folder holds it, and is discarded whole on failure).
    limits
        ``max_extracted_bytes`` and ``max_compression_ratio``.

    Returns
    -------
    dict
        Member name -> size in bytes, in selection order.

    Raises
    ------
    SourceError
        When a pattern matches nothing, a member's path falls outside
        ``extracted``, a bound is passed (declared or counted), the free space
        is short, a member's size or CRC is wrong or the archive is unreadable.
    """
    listing = list_archive(source, archive)
    selected = _select_members(source, archive, listing)
    for name in selected:
        _check_member_path(source, archive, name, extracted)
    _check_declared(source, archive, {n: listing[n] for n in selected}, limits)
    budget = _Budget(source, archive, limits, listing)
    extracted.mkdir(parents=True)
    if source.format == "zip":
        _extract_zip(source, archive, selected, extracted, budget)
    else:
        _extract_7z(source, archive, selected, extracted, budget)
    sizes = _extracted_sizes(source, archive, selected, extracted, listing)
    logger.info(
        "%s: extracted %d member(s) (%s bytes) from %s",
        source.id,
        len(selected),
        f"{budget.written:,}",
        archive.name,
    )
    return sizes


def _check_declared(
    source: Source, archive: Path, selected: dict[str, Listed], limits: FetchLimits
) -> None:
    """Refuse before writing what the archive's directory already gives away."""
    declared = sum(m.size for m in selected.values())

    def refuse(why: str) -> None:
        msg = f"{source.id}: {why}; {_REFUSED}"
        raise SourceError(msg, source=source.id, path=archive)

    if declared > limits.max_extracted_bytes:
        refuse(
            f"the members to extract from {archive.name} declare {declared:,} bytes "
            f"uncompressed, more than max_extracted_size "
            f"({_size(limits.max_extracted_bytes)}); raise [sources] "
            "max_extracted_size if the file is genuine"
        )
    ratio = limits.max_compression_ratio
    for name, member in selected.items():
        if member.compressed is not None and member.size > max(
            ratio * member.compressed, RATIO_FLOOR
        ):
            refuse(
                f"member {name!r} of {archive.name} declares {member.size:,} bytes "
                f"from {member.compressed:,} compressed, more than "
                f"max_compression_ratio = {ratio:g}: a decompression bomb or a "
                "corrupted archive; raise [sources] max_compression_ratio if the "
                "file is genuine"
            )
    free = shutil.disk_usage(archive.parent).free
    if declared > free:
        refuse(
            f"the members of {archive.name} need {declared:,} bytes but "
            f"{archive.parent} has {free:,} free; free some space or move "
            "[sources] cache_dir"
        )


def _extracted_sizes(
    source: Source,
    archive: Path,
    selected: list[str],
    folder: Path,
    listing: dict[str, Listed],
) -> dict[str, int]:
    """Return each member's size on disk; refuse one missing or of another size."""
    sizes = {}
    for name in selected:
        path = member_path(folder, name)
        if not path.is_file():
            msg = (
                f"{source.id}: member {name!r} of {archive.name} was not extracted; "
                f"{_REFUSED}"
            )
            raise SourceError(msg, source=source.id, path=archive)
        sizes[name] = path.stat().st_size
        if sizes[name] != listing[name].size:
            msg = (
                f"{source.id}: member {name!r} of {archive.name} declares "
                f"{listing[name].size:,} bytes but {sizes[name]:,} were extracted: "
                f"the archive is corrupted or forged; {_REFUSED}"
            )
            raise SourceError(msg, source=source.id, path=archive)
    return sizes


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
            f"archive is malformed or malicious; {_REFUSED}"
        )
        raise SourceError(msg, source=source.id, path=archive)


def _select_members(
    source: Source, archive: Path, listing: dict[str, Listed]
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
    source: Source, archive: Path, names: list[str], folder: Path, budget: _Budget
) -> None:
    try:
        with zipfile.ZipFile(archive) as handle:
            for name in names:
                dest = member_path(folder, name)
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
        raise _cannot_extract(source, archive, exc) from exc


def _extract_7z(
    source: Source, archive: Path, names: list[str], folder: Path, budget: _Budget
) -> None:
    import py7zr  # only 7z sources need it

    from observatory.sources.sevenzip import BoundedWriterFactory

    root = folder.resolve()
    factory = BoundedWriterFactory(
        root, lambda name: member_path(root, name), budget.add, source.id, archive
    )
    try:
        with py7zr.SevenZipFile(archive, "r") as handle:
            handle.extract(path=root, targets=names, factory=factory)
    except SourceError:
        raise
    except _7z_errors() as exc:
        raise _cannot_extract(source, archive, exc) from exc
    finally:
        factory.close()


def _cannot_extract(source: Source, archive: Path, exc: BaseException) -> SourceError:
    """Say why an archive could not be read or its members written (one line)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        why = describe_os_error(exc)  # disk full, permissions: plain words
    else:
        why = str(exc) or type(exc).__name__
    msg = f"{source.id}: cannot extract from {archive.name}: {why}; {_REFUSED}"
    return SourceError(msg, source=source.id, path=archive)
