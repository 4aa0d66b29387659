"""Prepare an FD_MOBPRO file for reading: the plain file, its format and vintage.

INSEE ships FD_MOBPRO as a ``;``-separated CSV inside a zip (RP 2020 and
earlier) or as Parquet (RP 2021 and later). A zipped or gzipped file is
extracted once to a temporary folder, so that dask can split a plain file; the
census vintage comes from the file's (or member's) name unless given.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from observatory.core.archives import compression_of, open_member
from observatory.core.errors import DataError, SourceError
from observatory.core.files import CHUNK
from observatory.readers.delimited import HEADER_BYTES
from observatory.readers.fd_mobpro.coding import trans_coding

logger = logging.getLogger(__name__)


_VINTAGE_IN_NAME = re.compile(r"(?:RP|MOBPRO_)((?:19|20)\d{2})(?!\d)", re.IGNORECASE)


_DATA_SUFFIXES = (".csv", ".txt", ".parquet")


_PARQUET_MAGIC = b"PAR1"


#: Most bytes extracted from a zipped or gzipped FD_MOBPRO file: 8 times the
#: national CSV (about 0.8 to 1 GB).
MAX_EXTRACTED = 8 << 30


@dataclass(frozen=True, slots=True)
class FdSource:
    """An FD_MOBPRO file ready to be split into partitions.

    Attributes
    ----------
    path
        The file given.
    file
        The plain file read: ``path`` itself, or its extracted copy.
    member
        The member extracted from a zip archive, if any.
    vintage
        Census year, which sets the ``TRANS`` coding.
    format
        ``csv`` or ``parquet``.
    """

    path: Path
    file: Path
    member: str | None
    vintage: int
    format: Literal["csv", "parquet"]

    @property
    def where(self) -> str:
        """Name the file in messages: ``path``, or ``path [member]``."""
        return f"{self.path}" + (f" [{self.member}]" if self.member else "")

    @property
    def first(self) -> int:
        """Number of the first record: its line (CSV, after the header) or row."""
        return 2 if self.format == "csv" else 1

    @property
    def word(self) -> str:
        """What a record is called in messages: ``line`` (CSV) or ``row``."""
        return "line" if self.format == "csv" else "row"


def prepare_source(
    path: Path,
    vintage: int | None,
    stack: contextlib.ExitStack,
    temp_dir: Path | None,
) -> FdSource:
    """Return the plain file dask can split, extracting a zip or gzip member.

    Parameters
    ----------
    path
        The file given: plain, zipped or gzipped CSV, or Parquet.
    vintage
        Census year, or None to read it from the file's name.
    stack
        Holds the temporary folder of an extracted file until the caller is done.
    temp_dir
        Where to extract (the system's temporary folder by default).

    Raises
    ------
    DataError
        A corrupt archive, no single FD_MOBPRO file in a zip, or no vintage.
    """
    file, member = path, None
    if compression_of(path) is not None:
        folder = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="observatory-mobpro-", dir=temp_dir)
            )
        )
        member, file = _extract(path, folder)
        logger.debug("%s: extracted %s to %s", path, member or path.name, file)
    vintage = _resolve_vintage(path, member, vintage)
    with file.open("rb") as handle:
        parquet = handle.read(4) == _PARQUET_MAGIC
    return FdSource(path, file, member, vintage, "parquet" if parquet else "csv")


def _extract(path: Path, folder: Path) -> tuple[str | None, Path]:
    """Extract the FD_MOBPRO file of a zip or gzip into ``folder``, within bounds.

    Streamed in chunks, memory stays bounded whatever the size; a CSV whose
    first 64 KiB hold no line end is refused before anything is written.
    """
    with open_member(
        path, _fd_members, what="FD_MOBPRO_*.csv file", limit=MAX_EXTRACTED
    ) as opened:
        member = opened.name
        file = folder / (Path(member).name if member else path.with_suffix("").name)
        head = opened.stream.read(CHUNK)
        if (
            not head.startswith(_PARQUET_MAGIC)
            and len(head) > HEADER_BYTES
            and b"\n" not in head[: HEADER_BYTES + 1]
        ):
            msg = (
                f"{opened.where}: line 1 (the header) is longer than "
                f"{HEADER_BYTES >> 10} KiB: not an FD_MOBPRO file"
            )
            raise DataError(msg, path=path, line=1)
        try:
            with file.open("wb") as target:
                target.write(head)
                shutil.copyfileobj(opened.stream, target, CHUNK)
        except OSError as exc:
            msg = f"{opened.where}: cannot extract to {folder}: {exc.strerror or exc}"
            raise SourceError(msg, path=path) from exc
    return member, file


def _fd_members(names: list[str]) -> list[str]:
    """Pick the FD_MOBPRO file of a zip: ``FD_*`` data, else any data but ``varmod``."""
    data = [m for m in names if Path(m).suffix.lower() in _DATA_SUFFIXES]
    chosen = [m for m in data if Path(m).name.upper().startswith("FD_")]
    return chosen or [m for m in data if "varmod" not in Path(m).name.lower()]


def _vintage_from_name(name: str) -> int | None:
    match = _VINTAGE_IN_NAME.search(name)
    return int(match.group(1)) if match else None


def _resolve_vintage(path: Path, member: str | None, vintage: int | None) -> int:
    found = _vintage_from_name(path.name)
    if found is None and member:
        found = _vintage_from_name(Path(member).name)
    if vintage is None:
        if found is None:
            msg = (
                f"{path}: cannot tell the census vintage from the file name "
                "(expected e.g. RP2019_mobpro_csv.zip or FD_MOBPRO_2016.csv); "
                "pass vintage=<census year>, which sets the TRANS coding"
            )
            raise DataError(msg, path=path)
        vintage = found
    elif found is not None and found != vintage:
        logger.warning(
            "%s: the file name says RP%d but vintage=%d was given; using %d",
            path,
            found,
            vintage,
            vintage,
        )
    trans_coding(vintage)  # validates
    return vintage
