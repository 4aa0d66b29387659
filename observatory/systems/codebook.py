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

from observatory.core.errors import DataError


def sorted_book(codes: pd.Series) -> pd.Series:
    """Return the distinct codes of ``codes`` (no missing value), sorted, as strings."""
    distinct = pd.Series(pd.unique(codes.astype("string").dropna()), dtype="string")
    return distinct.sort_values(ignore_index=True)


def positions_in(book: pd.Series, codes: pd.Series) -> np.ndarray:
    """Return the position of each code in ``book`` (-1 where it is absent)."""
    values = codes.astype("string")
    found, distinct = pd.factorize(values, use_na_sentinel=True)
    where = pd.Index(book).get_indexer(pd.Index(distinct, dtype="string"))
    out = np.where(found >= 0, where[found], -1)
    return out.astype(np.int64)


def is_in(codes: pd.Series, pool: Sequence[str] | pd.Series | pd.Index) -> np.ndarray:
    """Tell which of ``codes`` are in ``pool`` (a hash lookup, never element-wise)."""
    values = pool if isinstance(pool, pd.Series | pd.Index) else list(pool)
    index = pd.Index(pd.unique(pd.Series(values, dtype="string").dropna()))
    return np.asarray(index.get_indexer(pd.Index(codes.astype("string"))) >= 0)


def _labels(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The distinct keys, ascending, and each row's rank among them.
    span = int(keys.max()) + 1 if len(keys) else 0
    if span <= 4 * len(keys) + 1024:  # a dense table of the keys beats sorting
        present = np.zeros(span, dtype=bool)
        present[keys] = True
        return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]
    order = np.argsort(keys, kind="stable")  # fast on rows nearly in order
    ordered = keys[order]
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    labels = np.empty(len(keys), dtype=np.int64)
    labels[order] = np.cumsum(starts) - 1
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
        ends = [pd.factorize(flows[c].astype("string")) for c in (origin, destination)]
        book = sorted_book(pd.concat([pd.Series(u, dtype="string") for _, u in ends]))
        where = [
            pd.Index(book).get_indexer(pd.Index(u, dtype="string")) for _, u in ends
        ]
        o, d = (
            np.where(found >= 0, place[found], -1).astype(np.int64)
            for (found, _), place in zip(ends, where, strict=True)
        )
        blank = (o < 0) | (d < 0)
        if blank.any():
            msg = (
                f"flows: {int(blank.sum())} row(s) without an origin or destination "
                "code; every row needs both"
            )
            raise DataError(msg)
        workers = flows["workers"].astype("float64").to_numpy()
        return cls(book, o, d, workers)

    def recoded(self, new_codes: pd.Series) -> CodedFlows:
        """Give each code of the book a new one (``new_codes``, aligned on the book).

        Rows are kept as they are (not summed); the new book is sorted.
        """
        book = sorted_book(new_codes)
        position = positions_in(book, new_codes)
        return CodedFlows(
            book, position[self.origin], position[self.destination], self.workers
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
        if len(self) == 0:
            return np.zeros(len(origins))
        index = pd.Index(self.codes)
        o = index.get_indexer(pd.Index(origins.astype("string")))
        d = index.get_indexer(pd.Index(destinations.astype("string")))
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
