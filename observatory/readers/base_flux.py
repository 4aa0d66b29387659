"""Read INSEE's base flux of home-to-work commuting (plain, zipped or gzipped).

One row per (residence, work place) commune pair with its number of workers;
the census vintage comes from the flow column's name. The file is streamed in
blocks (:mod:`observatory.readers.delimited`) and each block checked as it
comes, on its distinct codes, so memory stays within a bound whatever the file
holds (:data:`MAX_ROWS` rows of 16 bytes, blocks of a few MiB): a bad value
stops the reading at its block, naming the first lines concerned. A file with
no rows, a value that is not a number, negative, or above the number of
employed people of France, and a pair on two lines are refused.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import (
    MAX_WORKERS,
    commune_code_flags,
    text_series,
    work_place_flags,
)
from observatory.readers.delimited import Block, DelimitedFile, NotConverted, shown
from observatory.readers.text import check_exists, sniff_sep

logger = logging.getLogger(__name__)


_FLOW_COLUMN = re.compile(r"^NBFLUX_C(\d{2})_ACTOCC15P$")

#: Most rows read: over 7 times INSEE's national file (about 1.3 million pairs);
#: 16 bytes each as read, about 400 MB with :attr:`CommuneFlows.table` built.
MAX_ROWS = 10_000_000

#: Most bytes read, decompressed: over 10 times INSEE's national file (~75 MB).
MAX_BYTES = 1 << 30

_EXPECTED = "CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P"


@dataclass(frozen=True, slots=True)
class CommuneFlows:
    """Commune-to-commune flows as read from a base flux file, their ends numbered.

    ``codes`` is the book of the distinct codes read (Arrow strings, stripped,
    arrondissements not yet rolled up), in the order first met (a block's
    origins, then its destinations); ``origin`` and ``destination`` are each
    row's numbers in it (int32), ``workers`` its workers (float64), a row per
    pair in the file's order. The consumers of codes take these as they are;
    :attr:`table` writes them out as strings.
    ``warnings`` says what was accepted that needs saying (pairs on several
    lines added up, with ``[inputs] allow_duplicate_pairs``), for the manifest.
    """

    codes: Any  # pyarrow string array, distinct
    origin: np.ndarray
    destination: np.ndarray
    workers: np.ndarray
    vintage: int | None
    flow_column: str
    member: str | None  # the CSV read inside a zip archive
    warnings: tuple[str, ...] = field(default=())
    # The table once built (frozen: the holder is filled, never replaced).
    _built: dict[str, pd.DataFrame] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.workers)

    def touching(self, codes: list[str]) -> np.ndarray:
        """Tell which rows go from or to one of ``codes`` (looked up in the book)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        flagged = pc.is_in(self.codes, value_set=pa.array(codes, self.codes.type))
        found = flagged.to_numpy(zero_copy_only=False)
        return np.asarray(found[self.origin] | found[self.destination])

    @property
    def table(self) -> pd.DataFrame:
        """The flows as strings: ``origin_commune``, ``destination_commune``, ``workers``.

        Built on first use (two columns of 1.3 million strings for the national
        file: only for the consumers that need them), then kept. Two threads
        asking at once may both build it; both get the first stored.
        """
        if "table" not in self._built:
            built = pd.DataFrame(
                {
                    "origin_commune": text_series(self.codes.take(self.origin)),
                    "destination_commune": text_series(
                        self.codes.take(self.destination)
                    ),
                    "workers": self.workers.copy(),  # the table's own, to change
                },
                copy=False,
            )
            self._built.setdefault("table", built)  # atomic: the first one stays
        return self._built["table"]


# --------------------------------------------------------------------- header
def _flux_csv(names: list[str]) -> list[str]:
    """Pick the base flux CSV of a zip: the only CSV, or the only one named flux."""
    members = [m for m in names if m.lower().endswith(".csv")]
    if len(members) > 1:
        flux = [m for m in members if "flux" in Path(m).name.lower()]
        members = flux if len(flux) == 1 else members
    return members


def _flow_column(columns: list[str], where: str, path: Path) -> tuple[str, int]:
    """Return the flow column and its census year, or say what the header lacks."""
    flow_columns = [m for c in columns if (m := _FLOW_COLUMN.match(c))]
    missing = [c for c in ("CODGEO", "DCLT") if c not in columns]
    if missing or len(flow_columns) != 1:
        msg = f"{where}: line 1: expected columns {_EXPECTED}, found {[shown(c) for c in columns[:10]]}"
        raise DataError(msg, path=path, line=1)
    return flow_columns[0].group(0), 2000 + int(flow_columns[0].group(1))


# --------------------------------------------------------------------- blocks
def _listed(values: Any, lines: np.ndarray, block: Block) -> str:
    """Up to five ``line N: value`` examples, and how many more in the block."""
    text = examples_at([shown(v) for v in values[:5]], lines[:5], "line")
    more = len(lines) - 5
    return text + (
        f"; and {more} more up to line {block.end_line - 1}" if more > 0 else ""
    )


def _refuse(
    bad: np.ndarray, values: Any, block: Block, what: str, where: str, path: Path
) -> None:
    """Raise a :class:`DataError` quoting the ``bad`` rows of ``block``."""
    if bad.any():
        rows = np.flatnonzero(bad)
        lines = block.lines[rows]
        msg = f"{where}: {what}; " + _listed(
            np.asarray(values, dtype=object)[rows], lines, block
        )
        raise DataError(msg, path=path, line=int(lines[0]))


def _text_array(values: Any) -> Any:
    """Decode binary values to Arrow strings: UTF-8, else as Windows-1252 shows them."""
    import pyarrow as pa

    try:
        return values.cast(pa.string())
    except pa.ArrowInvalid:
        decoded = [
            v.decode("cp1252", errors="replace") if v is not None else None
            for v in values.to_pylist()
        ]
        return pa.array(decoded, pa.string())


def _texts(values: Any) -> list[str]:
    """Decode binary values: UTF-8, else as Windows-1252 would show them."""
    return list(_text_array(values).to_pylist())


@dataclass(slots=True)
class _Book:
    """The distinct codes met so far (stripped), numbered in the order met.

    An Arrow array, searched by Arrow's hash lookups: a block's new codes are
    numbered without a Python loop over them.
    """

    codes: Any = None  # pyarrow string array

    def __len__(self) -> int:
        return 0 if self.codes is None else len(self.codes)

    def numbers(self, text: Any) -> np.ndarray:
        """Return the number of each of ``text``, numbering new codes after the known."""
        import pyarrow as pa
        import pyarrow.compute as pc

        known = len(self)
        numbers = (
            pc.index_in(text, value_set=self.codes)
            .fill_null(-1)
            .to_numpy(zero_copy_only=False)
            .astype(np.int32)
            if known
            else np.full(len(text), -1, dtype=np.int32)
        )
        new = numbers < 0
        if new.any():
            met = text.filter(pa.array(new))
            fresh = pc.unique(met)
            self.codes = pa.concat_arrays([self.codes, fresh]) if known else fresh
            # The new codes are numbered after the known ones, in the order met.
            at = pc.index_in(met, value_set=fresh).to_numpy(zero_copy_only=False)
            numbers[new] = known + at
        return numbers


@dataclass(slots=True)
class _Codes:
    """The codes of one column met so far, checked once each, numbered in a book.

    ``book`` numbers the distinct codes (stripped) of both columns; the column
    keeps the raw values it met (``raw``, Arrow binary) and their number in
    ``book`` (``code``), so a block's values are looked up by Arrow and only
    new ones decoded, stripped and checked.
    """

    book: _Book
    raw: Any = None
    code: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def rows(
        self, column: Any, valid: Any, what: str, block: Block, where: str, path: Path
    ) -> np.ndarray:
        """Each row's code in ``book``; a bad code raises, naming its lines."""
        import pyarrow as pa
        import pyarrow.compute as pc

        values = column.dictionary
        known = (
            pc.index_in(values, value_set=self.raw)
            .fill_null(-1)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
            if self.raw is not None
            else np.full(len(values), -1, dtype=np.int64)
        )
        new = known < 0
        if new.any():
            fresh = values.filter(pa.array(new))
            text = pc.utf8_trim_whitespace(_text_array(fresh))
            bad = ~valid(text)
            if bad.any():
                listed = np.full(len(values), None, dtype=object)
                stripped = text_series(text)
                listed[np.flatnonzero(new)[bad]] = stripped[bad].to_numpy(dtype=object)
                row_values = listed[column.indices.to_numpy(zero_copy_only=False)]
                _refuse(pd.notna(row_values), row_values, block, what, where, path)
            codes = self.book.numbers(text)
            known[new] = len(self.code) + np.arange(len(codes))
            self.raw = (
                fresh if self.raw is None else pa.concat_arrays([self.raw, fresh])
            )
            self.code = np.concatenate([self.code, codes])
        return self.code[known][column.indices.to_numpy(zero_copy_only=False)]


def _numbers(column: Any) -> np.ndarray:
    """Decode the flow column read as text: float64, NaN where it is not a number."""
    text = pd.Series(_texts(column), dtype="string").str.strip()
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _workers(
    column: Any, name: str, block: Block, where: str, path: Path
) -> np.ndarray:
    """Check the flow column: a number, >= 0, at most :data:`MAX_WORKERS`.

    Read as numbers, a bad value raises :class:`NotConverted`: the file is read
    again as text, to quote the values as written.
    """
    import pyarrow as pa

    as_numbers = pa.types.is_floating(column.type)
    workers = column.to_numpy(zero_copy_only=False) if as_numbers else _numbers(column)
    with np.errstate(invalid="ignore"):
        plausible = np.isfinite(workers) & (workers >= 0) & (workers <= MAX_WORKERS)
        if plausible.all():
            return workers
        if as_numbers:
            raise NotConverted(name)
        raw = pd.Series(_texts(column)).str.strip().to_numpy()
        _refuse(
            ~np.isfinite(workers), raw, block, f"{name} must be a number", where, path
        )
        _refuse(workers < 0, raw, block, f"{name} must be >= 0", where, path)
        too_many = (
            f"{name} must be at most {MAX_WORKERS:,} workers (more than the "
            "employed people of France)"
        )
        _refuse(workers > MAX_WORKERS, raw, block, too_many, where, path)
    return workers  # pragma: no cover - one of the checks above raised


@dataclass(slots=True)
class _Read:
    """What the blocks gave: codes of both columns in one book, and workers."""

    book: _Book = field(default_factory=_Book)
    origins: list[np.ndarray] = field(default_factory=list)
    destinations: list[np.ndarray] = field(default_factory=list)
    workers: list[np.ndarray] = field(default_factory=list)
    rows: int = 0


_ORIGIN = "CODGEO must be a 5-character commune code"
_DESTINATION = "DCLT must be a 5-character commune code or an abroad code (99xxx)"


def _read_blocks(
    file: DelimitedFile, path: Path, *, numbers: bool
) -> tuple[_Read, str, int, str, str | None]:
    """Stream and check the file: its rows, flow column, vintage, name, member.

    ``numbers``: Arrow parses the flow column as float64 (raising
    :class:`NotConverted` where it cannot), else reads it as text.
    """
    import pyarrow as pa

    binary_codes = pa.dictionary(pa.int32(), pa.binary())
    read = _Read()
    origins, destinations = _Codes(read.book), _Codes(read.book)
    with file.open() as (opened, header):
        where, member = opened.where, opened.name
        flow_column, vintage = _flow_column(header.columns, where, path)
        # Codes as binary: decoded and checked on their distinct values only.
        types = {
            "CODGEO": binary_codes,
            "DCLT": binary_codes,
            flow_column: pa.float64() if numbers else pa.binary(),
        }
        for block in file.blocks(opened, header, types, "utf8"):
            batch = block.batch
            read.origins.append(
                origins.rows(
                    batch.column("CODGEO"),
                    commune_code_flags,
                    _ORIGIN,
                    block,
                    where,
                    path,
                )
            )
            read.destinations.append(
                destinations.rows(
                    batch.column("DCLT"),
                    work_place_flags,
                    _DESTINATION,
                    block,
                    where,
                    path,
                )
            )
            read.workers.append(
                _workers(batch.column(flow_column), flow_column, block, where, path)
            )
            read.rows += batch.num_rows
            if read.rows > MAX_ROWS:
                msg = f"{where}: more than {MAX_ROWS:,} lines of commune pairs (INSEE's national file has about 1.3 million): refused"
                raise DataError(msg, path=path, line=int(block.end_line - 1))
    if read.rows == 0:
        msg = f"{where}: no data lines under the header: expected one line per commune pair ({_EXPECTED})"
        raise DataError(msg, path=path, line=2)
    return read, flow_column, vintage, where, member


# --------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class _Rows:
    """The rows read, in the file's order: numbers of both ends in a book, workers."""

    origin: np.ndarray
    destination: np.ndarray
    workers: np.ndarray


def _rows(read: _Read) -> tuple[_Rows, np.ndarray]:
    """Return the rows read, their blocks let go, and a key per pair."""
    rows = _Rows(
        np.concatenate(read.origins),
        np.concatenate(read.destinations),
        np.concatenate(read.workers),
    )
    read.origins.clear()
    read.destinations.clear()
    read.workers.clear()
    key = rows.origin.astype(np.int64) * len(read.book) + rows.destination
    return rows, key


def _repeated(groups: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the first row of each of ``count`` groups, and the rows repeating one."""
    rows = np.arange(len(groups))
    first = np.full(count, len(groups), dtype=np.int64)
    np.minimum.at(first, groups, rows)
    return first, np.flatnonzero(first[groups] != rows)


def _duplicates(
    key: np.ndarray, rows: _Rows, book: _Book, allow: bool, where: str, path: Path
) -> tuple[_Rows, tuple[str, ...]]:
    """Refuse pairs on several lines, or add them up when ``allow``, saying so."""
    ordered = np.sort(key)  # a sort finds repeats faster than a hash table
    if not (ordered[1:] == ordered[:-1]).any():
        return rows, ()
    groups, distinct = pd.factorize(key)
    first, again = _repeated(groups, len(distinct))
    pairs = len(np.unique(groups[again]))
    origins = book.codes.take(rows.origin[again[:5]]).to_pylist()
    destinations = book.codes.take(rows.destination[again[:5]]).to_pylist()
    shown_pairs = [
        f"{o} -> {d} (as line {first[groups[row]] + 2})"
        for o, d, row in zip(origins, destinations, again[:5], strict=True)
    ]
    found = (
        f"{pairs} (CODGEO, DCLT) pair(s) on more than one line; "
        + examples_at(shown_pairs, again[:5] + 2, "line")
        + (f"; and {len(again) - 5} more" if len(again) > 5 else "")
    )
    if not allow:
        msg = (
            f"{where}: {found}. INSEE's base flux has one line per pair (a file "
            "concatenated twice?); set [inputs] allow_duplicate_pairs = true to add them up"
        )
        raise DataError(msg, path=path, line=int(again[0]) + 2)
    # Each pair on the line it is first met, with the workers of all its lines.
    summed = _Rows(
        rows.origin[first],
        rows.destination[first],
        np.bincount(groups, weights=rows.workers),
    )
    extra = float(rows.workers[again].sum())
    warning = (
        f"{where}: {found}; added up ([inputs] allow_duplicate_pairs = true), "
        f"{extra:,.1f} workers on the repeated lines"
    )
    logger.warning("%s", warning)
    return summed, (warning,)


def read_base_flux(path: Path, *, allow_duplicate_pairs: bool = False) -> CommuneFlows:
    """Read INSEE's base flux of home-to-work mobility (plain or zipped CSV).

    Parameters
    ----------
    path
        ``;``-separated file with columns ``CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P``,
        plain, zipped or gzipped.
    allow_duplicate_pairs
        Add up the workers of a (CODGEO, DCLT) pair written on several lines,
        with a warning (``warnings``), rather than refuse the file.

    Returns
    -------
    CommuneFlows
        The book of the codes read (stripped, arrondissements not yet rolled
        up), each row's origin and destination numbers in it and its workers
        (float), in the file's order (``table``: the same as strings);
        ``vintage`` is the census year read from the flow column name.

    Raises
    ------
    SourceError
        The file does not exist.
    DataError
        A bad archive, header or value, an over-long line (see
        :mod:`~observatory.readers.delimited`), no data line, a pair on several
        lines, or more than :data:`MAX_ROWS` lines: naming the file and the
        first lines concerned.
    """
    check_exists(path, "flows")
    file = DelimitedFile(
        path, _flux_csv, "CSV file", "a base flux CSV", MAX_BYTES, sniff_sep
    )
    try:
        read, flow_column, vintage, where, member = _read_blocks(
            file, path, numbers=True
        )
    except NotConverted:  # a value Arrow cannot parse: read it as text to quote it
        read, flow_column, vintage, where, member = _read_blocks(
            file, path, numbers=False
        )
    rows, key = _rows(read)
    rows, warnings = _duplicates(
        key, rows, read.book, allow_duplicate_pairs, where, path
    )
    logger.info(
        "%s: %d commune pairs, %.1f workers (%s)",
        where,
        len(rows.workers),
        rows.workers.sum(),
        flow_column,
    )
    return CommuneFlows(
        codes=read.book.codes,
        origin=rows.origin,
        destination=rows.destination,
        workers=rows.workers,
        vintage=vintage,
        flow_column=flow_column,
        member=member,
        warnings=warnings,
    )
