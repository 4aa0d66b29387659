"""Flows whose ends are positions in a sorted book of codes (pure functions).

A national base flux repeats some 35,000 commune codes over 1.3 million pairs.
Here each end of a flow is the position of its code in a book of the distinct
codes, sorted as pandas sorts strings: a change of codes (a passage, the roll-up
of arrondissements, commune to EPCI) is worked out once per code of the book and
taken back to the rows with a numpy ``take``, and flows are summed by integer
pair keys rather than by two string columns.

The results are those of grouping the string columns, to the last bit: the book
is sorted, so pairs sorted by position are sorted by code, and each pair's
workers are summed by pandas' own groupby sum (compensated summation) over the
same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatory.core.errors import DataError
from observatory.geography import text_array, text_series

# Codes are hashed, looked up and sorted by Arrow (C++, which lets go of the
# GIL) on the few thousand codes of a book; rows only see numpy takes.


def sorted_distinct(text: pa.Array) -> pa.Array:
    """Return the distinct strings of ``text`` but nulls, sorted as pandas sorts them."""
    distinct = pc.unique(text.drop_null())
    return distinct.take(pc.array_sort_indices(distinct))


def positions(text: pa.Array, book: pa.Array) -> np.ndarray:
    """Return the position of each of ``text`` in ``book`` (-1 where it is absent)."""
    found = pc.fill_null(pc.index_in(text, value_set=book), -1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def _rows_in(encoded: pa.DictionaryArray, book: pa.Array) -> np.ndarray:
    # Each row's position in ``book`` (-1 when missing), looked up once per
    # distinct code (the dictionary).
    place = np.append(positions(encoded.dictionary, book), -1)
    rows = pc.fill_null(encoded.indices, len(place) - 1)
    return np.asarray(place[rows.to_numpy(zero_copy_only=False)], dtype=np.int64)


def sorted_book(codes: pd.Series) -> pd.Series:
    """Return the distinct codes of ``codes`` (no missing value), sorted, as strings."""
    return text_series(sorted_distinct(text_array(codes)))


def positions_in(book: pd.Series | pd.Index, codes: pd.Series) -> np.ndarray:
    """Return the position of each code in ``book`` (-1 where it is absent)."""
    return positions(text_array(codes), text_array(book))


def is_in(codes: pd.Series, pool: Sequence[str] | pd.Series | pd.Index) -> np.ndarray:
    """Tell which of ``codes`` are in ``pool`` (a hash lookup, never element-wise)."""
    values = (
        text_array(pool)
        if isinstance(pool, pd.Series | pd.Index)
        else text_array(pd.Series(list(pool), dtype="string"))
    )
    return in_set(text_array(codes), values)


def in_set(text: pa.Array, values: pa.Array) -> np.ndarray:
    """Tell which of ``text`` are among ``values`` (Arrow strings), as numpy."""
    found = pc.is_in(text, value_set=values.drop_null())
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False))


def _labels(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The distinct keys, ascending, and each row's rank among them. Booleans
    # are cast before their cumsum: numpy's cumsum of bools holds the GIL.
    span = int(keys.max()) + 1 if len(keys) else 0
    if span <= 4 * len(keys) + 1024:  # a dense table of the keys beats sorting
        present = np.zeros(span, dtype=bool)
        present[keys] = True
        rank = np.cumsum(present.astype(np.int64)) - 1
        return np.flatnonzero(present), rank[keys]
    order = np.argsort(keys, kind="stable")  # fast on rows nearly in order
    ordered = keys[order]
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    labels = np.empty(len(keys), dtype=np.int64)
    labels[order] = np.cumsum(starts.astype(np.int64)) - 1
    return ordered[starts], labels


def group_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``values`` by integer key (``>= 0``) as pandas' groupby sums them.

    Returns the distinct keys, ascending, and the sum of each: pandas'
    compensated sum of the key's values in row order (missing values skipped),
    so the figures are those of ``groupby(...).sum()`` on any columns that sort
    like the keys. A key on one row sums to ``0.0 + value`` without pandas.
    """
    keys = np.asarray(keys, dtype=np.int64)
    values = np.asarray(values, dtype="float64")
    distinct, labels = _labels(keys)
    sizes = np.bincount(labels, minlength=len(distinct))
    alone = sizes[labels] == 1
    sums = np.zeros(len(distinct))
    sums[labels[alone]] = 0.0 + np.where(np.isnan(values[alone]), 0.0, values[alone])
    if not alone.all():
        shared = ~alone
        part = pd.Series(values[shared]).groupby(labels[shared], sort=False).sum()
        sums[part.index.to_numpy()] = part.to_numpy()
    return distinct, sums


def _refuse_blank(o: np.ndarray, d: np.ndarray) -> None:
    # Rows without an origin or a destination (-1): grouping would drop them.
    blank = (o < 0) | (d < 0)
    if blank.any():
        msg = (
            f"flows: {int(blank.sum())} row(s) without an origin or destination "
            "code; every row needs both"
        )
        raise DataError(msg)


@dataclass(frozen=True, slots=True)
class CodedFlows:
    """Flows ``origin -> destination: workers`` with their ends as positions in ``codes``.

    ``codes`` is the sorted book of the codes (string dtype, distinct, no missing
    value); ``origin`` and ``destination`` are int64 positions in it, ``workers``
    float64, all three of one length (a row per flow, in the table's order).
    """

    codes: pd.Series
    origin: np.ndarray
    destination: np.ndarray
    workers: np.ndarray

    def __len__(self) -> int:
        return len(self.workers)

    @classmethod
    def from_frame(
        cls,
        flows: pd.DataFrame,
        origin: str = "origin_commune",
        destination: str = "destination_commune",
    ) -> CodedFlows:
        """Code the ``origin`` and ``destination`` columns of a flows table.

        Raises
        ------
        DataError
            When a row lacks an origin or a destination code: grouping would
            drop it and its workers with it.
        """
        ends = [
            pc.dictionary_encode(text_array(flows[c])) for c in (origin, destination)
        ]
        book = sorted_distinct(pa.concat_arrays([e.dictionary for e in ends]))
        o, d = (_rows_in(e, book) for e in ends)
        _refuse_blank(o, d)
        workers = flows["workers"].astype("float64").to_numpy()
        return cls(text_series(book), o, d, workers)

    @classmethod
    def from_codes(
        cls,
        book: pa.Array,
        origin: np.ndarray,
        destination: np.ndarray,
        workers: np.ndarray,
    ) -> CodedFlows:
        """Code flows whose ends are numbers in a book of codes, in any order.

        ``book`` holds strings (Arrow); ``origin`` and ``destination`` give each
        row's number in it (-1: no code), ``workers`` its workers. The result is
        :meth:`from_frame` of the table of those codes, to the last bit: the
        codes the rows use, sorted, and each row's position among them, worked
        out on the book and taken to the rows.

        Raises
        ------
        DataError
            As :meth:`from_frame`: a row without an origin or destination code.
        """
        used = np.zeros(len(book) + 1, dtype=bool)  # the last: rows numbered -1
        used[origin] = True
        used[destination] = True
        codes = sorted_distinct(book.filter(pa.array(used[:-1])))
        # Each number's position in the sorted book; -1 takes the last, -1 too.
        place = np.append(positions(book, codes), -1)
        o, d = place[origin], place[destination]
        if (place[used] < 0).any():  # checked on the book, counted on the rows
            _refuse_blank(o, d)
        # A copy, as from_frame's: the flows never share the caller's array.
        return cls(text_series(codes), o, d, np.array(workers, dtype="float64"))

    def recoded(self, new_codes: pd.Series) -> CodedFlows:
        """Give each code of the book a new one (``new_codes``, aligned on the book).

        Rows are kept as they are (not summed); the new book is sorted.
        """
        text = text_array(new_codes)
        book = sorted_distinct(text)
        position = positions(text, book)
        return CodedFlows(
            text_series(book),
            position[self.origin],
            position[self.destination],
            self.workers,
        )

    def summed(self) -> CodedFlows:
        """Sum the workers of each (origin, destination) pair; pairs sorted by codes."""
        size = max(len(self.codes), 1)
        keys, sums = group_sum(self.origin * size + self.destination, self.workers)
        return CodedFlows(self.codes, keys // size, keys % size, sums)

    def between(self, origins: pd.Series, destinations: pd.Series) -> np.ndarray:
        """Return the workers from each origin to the destination beside it (0 if none).

        The flows must be :meth:`summed` (one row per pair, sorted).
        """
        return self.workers_at(
            positions_in(self.codes, origins), positions_in(self.codes, destinations)
        )

    def workers_at(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """:meth:`between` codes given by their positions in the book (-1: absent)."""
        if len(self) == 0:
            return np.zeros(len(o))
        size = len(self.codes)
        keys = self.origin * size + self.destination
        wanted = o * size + d
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = (o >= 0) & (d >= 0) & (keys[at] == wanted)
        return np.where(found, self.workers[at], 0.0)

    def ends(self, rows: np.ndarray | None = None) -> tuple[pd.Series, pd.Series]:
        """Return the origin and destination codes of ``rows`` (a mask; every row when None)."""
        o = self.origin if rows is None else self.origin[rows]
        d = self.destination if rows is None else self.destination[rows]
        return (
            self.codes.take(o).reset_index(drop=True),
            self.codes.take(d).reset_index(drop=True),
        )

    def frame(
        self, origin: str = "origin_commune", destination: str = "destination_commune"
    ) -> pd.DataFrame:
        """Return the flows as a table of codes: ``origin``, ``destination``, ``workers``."""
        o, d = self.ends()
        return pd.DataFrame({origin: o, destination: d, "workers": self.workers})
