"""Read delimited text (CSV) in bounded blocks, every error naming its line.

Arrow parses a file :data:`BLOCK_BYTES` at a time from a stream, so what a
reader holds depends on the block and on what it keeps, never on what a line
contains. A line that does not fit in two blocks stops the reading, and a
second, bounded pass names the first line longer than a block; a header longer
than :data:`HEADER_BYTES` is refused at once; the stream itself stops at the
reader's bound on the bytes read (:func:`observatory.core.archives.open_member`).
Rows keep their file line numbers (the header is line 1): an empty line in the
body is a row of empty fields, so that the readers name it; at the end of the
file, lines whose fields read are all empty (empty lines) are dropped.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from observatory.core.archives import Member, Pick, mebibytes, open_member
from observatory.core.errors import DataError
from observatory.core.files import CHUNK
from observatory.readers.text import one_line

#: Bytes of text Arrow parses at a time. A line up to this long is always read;
#: one that does not fit in two blocks is refused (INSEE's lines: under 200 bytes).
BLOCK_BYTES = 4 << 20

#: The longest header line (INSEE's widest, FD_MOBPRO's, is under 300 bytes).
HEADER_BYTES = 64 << 10

#: Characters of a value quoted in a message (a longer one is cut).
SHOWN_CHARS = 40

_WRONG_FIELDS = re.compile(
    r"Row #(?P<row>\d+): Expected (?P<expected>\d+) columns, got (?P<found>\d+): "
    r"(?P<text>.*)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of a delimited file: its column names and separator."""

    columns: list[str]
    sep: str


@dataclass(frozen=True, slots=True)
class Block:
    """Rows of a delimited file as Arrow parsed them, with their first line."""

    first_line: int
    batch: Any  # pyarrow.RecordBatch of the columns asked for

    @property
    def lines(self) -> np.ndarray:
        """The file line of each row."""
        return np.arange(self.first_line, self.first_line + self.batch.num_rows)

    @property
    def end_line(self) -> int:
        """The line after the block's last row."""
        return self.first_line + self.batch.num_rows


class NotConverted(Exception):
    """A column Arrow could not convert to its type.

    Text that is not UTF-8, a number that does not parse: the reader reads the
    file again otherwise.
    """


def shown(value: object) -> str:
    """Return a value to quote in a message, cut to :data:`SHOWN_CHARS`."""
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # every byte is a character in latin-1


def _unique_names(names: list[str]) -> list[str]:
    """Rename repeated column names as pandas does: ``a``, ``a.1``, ``a.2``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}.{count}")
    return out


@dataclass(frozen=True, slots=True)
class DelimitedFile:
    """A delimited input file, read within bounds.

    Attributes
    ----------
    path
        The file: plain, gzipped, or a zip archive holding it.
    pick
        Which member of a zip archive is the file (see
        :func:`~observatory.core.archives.open_member`).
    member
        What that member is, for messages about the archive (``"CSV file"``).
    what
        What the file is, for messages about its text (``"a base flux CSV"``).
    limit
        The most bytes (decompressed) read from it.
    separator
        Tells the separator from the header's text.
    """

    path: Path
    pick: Pick
    member: str
    what: str
    limit: int
    separator: Callable[[str], str]

    @contextlib.contextmanager
    def open(self) -> Iterator[tuple[Member, Header]]:
        """Open the file and read its header line."""
        with open_member(
            self.path, self.pick, what=self.member, limit=self.limit
        ) as opened:
            yield opened, self._header(opened)

    def _header(self, opened: Member) -> Header:
        raw = opened.stream.readline(HEADER_BYTES + 1)
        if len(raw) > HEADER_BYTES:
            msg = (
                f"{opened.where}: line 1 (the header) is longer than "
                f"{HEADER_BYTES >> 10} KiB: not {self.what}"
            )
            raise DataError(msg, path=self.path, line=1)
        text = _decode(raw).strip("\r\n")
        if not text.strip():
            msg = f"{opened.where}: line 1 is empty: expected the header of {self.what}"
            raise DataError(msg, path=self.path, line=1)
        sep = self.separator(text)
        columns = [c.strip().strip('"').strip() for c in text.split(sep)]
        return Header(_unique_names(columns), sep)

    def blocks(
        self, opened: Member, header: Header, types: dict[str, Any], encoding: str
    ) -> Iterator[Block]:
        """Parse the body in blocks: the columns of ``types``, typed so.

        Empty lines at the end are left out. Raises :class:`DataError` for a
        line with another number of fields than the header (naming it), a line
        longer than :data:`BLOCK_BYTES`, or a file Arrow cannot parse;
        :class:`NotConverted` when a column cannot be converted to its type.
        """
        held: list[Block] = []
        for block in self._parsed(opened, header, types, encoding):
            empty = _empty_rows(block.batch)
            if empty.all():
                held.append(block)
                continue
            yield from held  # empty lines followed by others: rows to check
            last = int(np.flatnonzero(~empty)[-1]) + 1
            yield Block(block.first_line, block.batch.slice(0, last))
            tail = block.batch.slice(last)
            held = [Block(block.first_line + last, tail)] if tail.num_rows else []

    def _parsed(
        self, opened: Member, header: Header, types: dict[str, Any], encoding: str
    ) -> Iterator[Block]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        line = 2
        try:
            reader = pacsv.open_csv(
                opened.stream,
                read_options=pacsv.ReadOptions(
                    column_names=header.columns,
                    block_size=BLOCK_BYTES,
                    use_threads=False,  # rows numbered (and fast enough: one pass)
                    encoding=encoding,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=header.sep,
                    ignore_empty_lines=False,
                    newlines_in_values=False,
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(types),
                    column_types=types,
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in reader:
                yield Block(line, batch)
                line += batch.num_rows
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):  # a header and nothing else
                return
            raise self._parse_error(opened, header, exc) from exc

    def _parse_error(self, opened: Member, header: Header, exc: Exception) -> Exception:
        text = str(exc)
        # Arrow numbers rows when it reads on one thread ("Row #12: Expected 5
        # columns, got 3: <text>"); the header is line 1.
        if wrong := _WRONG_FIELDS.search(text):
            line = int(wrong["row"]) + 1
            msg = (
                f"{opened.where}: line {line}: expected {wrong['expected']} fields "
                f"separated by {header.sep!r} as in the header, found "
                f"{wrong['found']}: {shown(wrong['text'])!r}"
            )
            return DataError(msg, path=self.path, line=line)
        if "straddl" in text:  # Arrow: a row longer than a block
            long = self.long_line()
            at = f"line {long}" if long is not None else "a line"
            msg = (
                f"{opened.where}: {at} is longer than {mebibytes(BLOCK_BYTES)}: "
                f"not {self.what} (lines hold a few dozen bytes)"
            )
            return DataError(msg, path=self.path, line=long)
        if "conversion error" in text:
            return NotConverted(text)
        msg = f"{opened.where}: cannot parse as {self.what}: {one_line(text)}"
        return DataError(msg, path=self.path)

    def long_line(self) -> int | None:
        """Return the number of the first line longer than :data:`BLOCK_BYTES`.

        A second pass over the file, in blocks of 1 MiB: it stops at that line.
        """
        with open_member(self.path, self.pick, what=self.member) as opened:
            return first_long_line(opened.stream, BLOCK_BYTES)


def first_long_line(stream: Any, limit: int) -> int | None:
    """Return the number (from 1) of the first line of ``stream`` over ``limit`` bytes.

    Reads blocks of 1 MiB and stops at that line; None when no line is longer.
    """
    line, length = 1, 0
    while chunk := stream.read(CHUNK):
        ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
        if len(ends):
            lengths = np.diff(ends, prepend=-1) - 1  # bytes of each line ended here
            lengths[0] += length
            over = np.flatnonzero(lengths > limit)
            if len(over):
                return line + int(over[0])
            line += len(ends)
            length = len(chunk) - int(ends[-1]) - 1
        else:
            length += len(chunk)
        if length > limit:
            return line
    return None


def _empty_rows(batch: Any) -> np.ndarray:
    """Rows whose every field read is empty (an empty line)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = np.ones(batch.num_rows, dtype=bool)
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary).to_numpy(zero_copy_only=False)
            empty &= lengths[column.indices.to_numpy(zero_copy_only=False)] == 0
        elif pa.types.is_binary(column.type) or pa.types.is_string(column.type):
            empty &= pc.binary_length(column).to_numpy(zero_copy_only=False) == 0
        else:
            empty[:] = False
    return empty


def read_strings(file: DelimitedFile) -> tuple[pd.DataFrame, str]:
    """Read every column of a small delimited file as text.

    Returns
    -------
    tuple
        The rows as strings (nothing missing), indexed by their file line, and
        the file's name for messages (``path [member]`` in a zip).

    Raises
    ------
    DataError
        A bad archive, header or line (naming it), or more bytes than the bound.
    """
    try:
        return _read_strings(file, "utf8")
    except NotConverted:  # text that is not UTF-8
        pass
    try:
        return _read_strings(file, "cp1252")
    except UnicodeDecodeError as exc:  # bytes Windows-1252 leaves undefined
        msg = (
            f"{file.path}: not {file.what} in UTF-8 or Windows-1252 text "
            f"(byte 0x{exc.object[exc.start]:02x} has no character in either)"
        )
        raise DataError(msg, path=file.path) from exc


def _read_strings(file: DelimitedFile, encoding: str) -> tuple[pd.DataFrame, str]:
    import pyarrow as pa

    with file.open() as (opened, header):
        types = {name: pa.string() for name in header.columns}
        blocks = list(file.blocks(opened, header, types, encoding))
        where = opened.where
    schema = pa.schema([(name, pa.string()) for name in header.columns])
    table = pa.Table.from_batches([b.batch for b in blocks], schema=schema)
    frame = table.to_pandas()
    lines = [b.lines for b in blocks]
    frame.index = pd.Index(np.concatenate(lines) if lines else [], dtype="int64")
    return frame, where
