"""Out of core: partial sums of partitions, merged as a tree, then in key ranges.

Partitions' sums (sorted integer keys) are merged 16 at a time, bounded in
memory; the last merge is cut in key ranges merged in parallel, each making its
part of the final table: laid end to end, they are the sorted whole.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import pandas as pd

from observatory.core.errors import DataError
from observatory.readers.fd_mobpro.coding import CODED_MODES
from observatory.readers.fd_mobpro.frame import flow_table, sum_frame
from observatory.readers.fd_mobpro.keys import MODE_BITS, pair_of

#: Partial sums merged at a time.
SPLIT_EVERY = 16


#: Key ranges of the last merge of partial sums, merged in parallel.
FINAL_RANGES = 4


#: Sorted distinct keys and their sums.
Sums = tuple[np.ndarray, np.ndarray]


#: Sorted distinct keys, their sums, and the rows read to make them.
Partial = tuple[np.ndarray, np.ndarray, int]


class RangeCounts(TypedDict):
    """Counts of one key range of the last merge (see :func:`final_range`)."""

    rows: int  # of all the partitions, the same in every range
    pairs: int  # distinct (origin, destination) pairs in the range
    workers: np.ndarray  # sum of weights by mode rank
    found: np.ndarray  # whether each mode rank occurs


class PartitionError(DataError):
    """A DataError raised in one partition; carries its number across workers.

    Pickled by :meth:`observatory.core.errors.ObservatoryError.__reduce__`,
    fields included.
    """

    def __init__(self, message: str, *, partition: int) -> None:
        super().__init__(message)
        self.partition = partition

    def __str__(self) -> str:
        return f"partition {self.partition}: {self.args[0]}"


def merge_sums(parts: list[Sums]) -> Sums:
    """Sum partial sums: sorted distinct keys and their sums.

    Each part is sorted: a stable sort of their concatenation merges sorted
    runs, and equal keys add up in the order of the parts.
    """
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([k for k, _ in parts])
    sums = np.concatenate([s for _, s in parts])
    if not len(keys):
        return keys, sums
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(sums[order], starts)


def sum_partition(frame: pd.DataFrame, vintage: int, number: int) -> Partial:
    """Sum partition ``number``; its bad values raise :class:`PartitionError`."""
    try:
        keys, sums = sum_frame(frame, vintage)
    except DataError as exc:
        raise PartitionError(str(exc), partition=number) from exc
    return keys, sums, len(frame)


def combine_partials(*parts: Partial) -> Partial:
    """Sum partial sums of partitions (and their row counts)."""
    keys, sums = merge_sums([(k, s) for k, s, _ in parts])
    return keys, sums, sum(n for _, _, n in parts)


def _range_bounds(keys: list[np.ndarray], ranges: int) -> np.ndarray:
    """Keys cutting the union of sorted ``keys`` into ``ranges`` of about equal size.

    Quantiles of a regular sample (the same whoever computes them), moved down
    to the first key of their (origin, destination) pair: no pair is cut.
    """
    total = sum(len(k) for k in keys)
    step = max(1, total // (1024 * ranges))
    sample = np.sort(np.concatenate([k[::step] for k in keys]))
    if not len(sample):
        return np.zeros(0, dtype=np.int64)
    cuts = sample[np.arange(1, ranges) * len(sample) // ranges]
    return np.unique(pair_of(cuts) << MODE_BITS)


def final_range(
    number: int, ranges: int, *parts: Partial
) -> tuple[pd.DataFrame, RangeCounts]:
    """Merge one key range of the last partial sums; make its table and counts.

    The ranges split the last merge and the making of strings between
    workers; laid end to end, their tables are the sorted whole.

    Parameters
    ----------
    number
        The range, from 0.
    ranges
        How many ranges the keys are cut into.
    *parts
        The last partial sums.

    Returns
    -------
    tuple
        The range's part of the long table
        (:func:`~observatory.readers.fd_mobpro.frame.flow_table`) and its counts.
    """
    keys = np.zeros(0, dtype=np.int64)
    sums = np.zeros(0, dtype=np.float64)
    cuts = [None, *_range_bounds([k for k, _, _ in parts], ranges).tolist(), None]
    if number + 1 < len(cuts):  # else fewer distinct cuts than ranges: empty
        low, high = cuts[number], cuts[number + 1]
        pieces = []
        for part_keys, part_sums, _ in parts:
            start = 0 if low is None else int(np.searchsorted(part_keys, low))
            stop = (
                len(part_keys)
                if high is None
                else int(np.searchsorted(part_keys, high))
            )
            pieces.append((part_keys[start:stop], part_sums[start:stop]))
        keys, sums = merge_sums(pieces)
    counts = _sum_counts(keys, sums, sum(n for _, _, n in parts))
    return flow_table(keys, sums), counts


def _sum_counts(keys: np.ndarray, sums: np.ndarray, rows: int) -> RangeCounts:
    """Distinct pairs, workers and presence by mode rank, of sorted keys."""
    pairs = pair_of(keys)
    modes = keys & ((1 << MODE_BITS) - 1)
    return {
        "pairs": int(len(pairs) and 1 + np.count_nonzero(pairs[1:] != pairs[:-1])),
        "workers": np.bincount(modes, weights=sums, minlength=len(CODED_MODES)),
        "found": np.bincount(modes, minlength=len(CODED_MODES)) > 0,
        "rows": rows,
    }


def sum_tree(partitions: list[Any], vintage: int) -> list[Any]:
    """Build the delayed tasks summing partitions into :data:`FINAL_RANGES` tables.

    Parameters
    ----------
    partitions
        The partitions as dask delayed objects (``to_delayed()``).
    vintage
        Census year, which sets the ``TRANS`` coding.

    Returns
    -------
    list
        One delayed :func:`final_range` per range, to compute together.
    """
    from dask import delayed

    level = [
        delayed(sum_partition, pure=True)(part, vintage, number)
        for number, part in enumerate(partitions)
    ]
    while len(level) > SPLIT_EVERY:
        level = [
            delayed(combine_partials, pure=True)(*level[i : i + SPLIT_EVERY])
            for i in range(0, len(level), SPLIT_EVERY)
        ]
    return [
        delayed(final_range, pure=True)(number, FINAL_RANGES, *level)
        for number in range(FINAL_RANGES)
    ]
