"""Sum one FD_MOBPRO frame in memory by (residence, work place, mode).

The one aggregation of the reader, on a whole frame (:func:`aggregate_fd`) or a
partition: codes checked and packed on their distinct values, summed as integer
keys, turned back into strings only in the final table (:func:`flow_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.core.errors import DataError
from observatory.readers.fd_mobpro.coding import (
    ARRONDISSEMENTS,
    CODED_MODES,
    FD_COLUMNS,
    plausible_weights,
    raise_problems,
    trans_coding,
    weights,
)
from observatory.readers.fd_mobpro.keys import (
    MODE_BITS,
    ORIGIN_SHIFT,
    code_table,
    mode_table,
    pack_codes,
    shares,
    split_keys,
    unpack_codes,
)


def _encode(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Integer codes (-1: missing) and the distinct values they point to."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        return codes.astype(np.intp), pd.Series(values.cat.categories)
    if isinstance(values.dtype, pd.ArrowDtype) or _is_arrow_text(values):
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.chunked_array(pa.array(values.array))
        if not pa.types.is_dictionary(array.type):
            # Arrow's dictionary encoding: several times faster than pandas'
            # factorize of Arrow strings, and without the GIL.
            array = pc.dictionary_encode(array)
        elif array.num_chunks > 1:  # blocks with dictionaries of their own
            array = pa.table({"codes": array}).unify_dictionaries().column(0)
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        indices = array.indices
        if indices.null_count:
            indices = indices.fill_null(-1)
        codes = indices.to_numpy(zero_copy_only=False)
        return codes.astype(np.intp), pd.Series(array.dictionary.to_pandas().array)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.intp), pd.Series(uniques)


def _is_arrow_text(values: pd.Series) -> bool:
    return (
        isinstance(values.dtype, pd.StringDtype)
        and getattr(values.dtype, "storage", None) == "pyarrow"
    )


def _flow_keys(frame: pd.DataFrame, vintage: int) -> tuple[np.ndarray, np.ndarray]:
    """One int64 (origin, destination, mode) key and one weight per row.

    Codes are checked, stripped, packed and mapped on their distinct values
    only (a few thousand), then gathered per row by integer codes. Any bad
    value sends back to the row by row description of the whole frame.
    """
    coding = trans_coding(vintage)
    workers = weights(frame["IPONDI"])
    if not plausible_weights(workers).all():
        raise_problems(frame, vintage)
    # Each table holds a code's share of the key (origin * span * 8, ...), or
    # INVALID for a bad value, whose sum with any others stays negative: the
    # key of a row is three lookups and two additions, checked in one pass.
    commune, communes = _encode(frame["COMMUNE"])
    origin = code_table(communes, abroad=False)
    keys = shares(origin, 1 << ORIGIN_SHIFT).take(commune)
    arm, arms = _encode(frame["ARM"])
    arm_text = arms.astype("string").str.strip()
    is_arrondissement = arm_text.isin(ARRONDISSEMENTS).fillna(False).to_numpy(bool)
    if is_arrondissement.any():  # Paris, Lyon, Marseille: the arrondissement
        packed = np.full(len(arms) + 1, -1, dtype=np.int64)
        packed[:-1][is_arrondissement] = pack_codes(arm_text[is_arrondissement])
        by_arm = shares(packed, 1 << ORIGIN_SHIFT).take(arm)
        keys = np.where(packed.take(arm) >= 0, by_arm, keys)
    destination, destinations = _encode(frame["DCLT"])
    table = code_table(destinations, abroad=True)
    keys += shares(table, 1 << MODE_BITS).take(destination)
    trans, transes = _encode(frame["TRANS"])
    keys += shares(mode_table(transes, coding), 1).take(trans)
    if len(keys) and keys.min() < 0:
        raise_problems(frame, vintage)
    return keys, workers


def _sum_keys(keys: np.ndarray, workers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``workers`` by ``keys``: the distinct keys, sorted, and their sums."""
    groups, distinct = pd.factorize(keys)
    sums = np.bincount(groups, weights=workers, minlength=len(distinct))
    order = np.argsort(distinct)
    return np.asarray(distinct, dtype=np.int64)[order], sums[order].astype(np.float64)


def sum_frame(frame: pd.DataFrame, vintage: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum an FD_MOBPRO frame by (origin, destination, mode) integer keys.

    The one aggregation of :func:`aggregate_fd` (whole frame) and of
    :func:`~observatory.readers.fd_mobpro.read.read_fd` (each partition).

    Returns
    -------
    tuple
        The distinct keys (sorted int64, see
        :mod:`~observatory.readers.fd_mobpro.keys`) and their sums (float64).

    Raises
    ------
    DataError
        Missing columns, or bad values, all listed with their row.
    """
    missing = [c for c in FD_COLUMNS if c not in frame.columns]
    if missing:
        msg = (
            f"FD_MOBPRO frame: missing column(s) {missing}; expected {list(FD_COLUMNS)}, "
            f"found {list(frame.columns)}"
        )
        raise DataError(msg)
    return _sum_keys(*_flow_keys(frame, vintage))


def _code_column(packed: np.ndarray, *, ordered: bool = False) -> pd.Series:
    """Codes as strings from packed integers, each distinct one unpacked once.

    ``ordered``: ``packed`` is sorted (the origins of sorted keys), its distinct
    values are where it changes: no hashing.
    """
    if ordered:
        change = np.ones(len(packed), dtype=bool)
        change[1:] = packed[1:] != packed[:-1]
        codes = np.cumsum(change) - 1
        distinct = packed[change]
    else:
        codes, distinct = pd.factorize(packed)
    return _text_column(unpack_codes(np.asarray(distinct)), codes)


def _text_column(values: np.ndarray, codes: np.ndarray) -> pd.Series:
    """``values[codes]`` as a string Series, gathered by Arrow."""
    import pyarrow as pa

    text = pa.array(values, type=pa.string()).take(pa.array(codes))
    return pd.Series(pd.arrays.ArrowStringArray(text)).astype("string")


def flow_table(keys: np.ndarray, sums: np.ndarray) -> pd.DataFrame:
    """Build the long table of :func:`aggregate_fd` from sorted keys and their sums."""
    origin, destination, mode = split_keys(keys)
    return pd.DataFrame(
        {
            "origin_commune": _code_column(origin, ordered=True),
            "destination_commune": _code_column(destination),
            "mode": _text_column(np.array(CODED_MODES), mode),
            "workers": np.asarray(sums, dtype=np.float64),
        }
    )


def aggregate_fd(frame: pd.DataFrame, vintage: int) -> pd.DataFrame:
    """Sum FD_MOBPRO weights by residence commune, work commune and mode.

    The same aggregation runs on a whole frame in memory and on each dask
    partition in :func:`~observatory.readers.fd_mobpro.read.read_fd`: summing
    its partial sums again gives the total.

    Parameters
    ----------
    frame
        Columns ``COMMUNE``, ``ARM``, ``DCLT``, ``TRANS``, ``IPONDI`` as in the file
        (codes as strings or categoricals of strings; ``TRANS`` may be numeric;
        others are ignored).
    vintage
        Census year, which sets the ``TRANS`` coding (see
        :func:`~observatory.readers.fd_mobpro.coding.trans_to_mode`).

    Returns
    -------
    pandas.DataFrame
        ``origin_commune`` (``ARM`` when it is an arrondissement of Paris, Lyon or
        Marseille, ``COMMUNE`` otherwise: arrondissements are kept),
        ``destination_commune`` (``DCLT`` as given, abroad codes included),
        ``mode`` (:data:`observatory.systems.modes.MODES`) and ``workers`` (sum
        of ``IPONDI``, float64), sorted by the three keys (code point order);
        codes stripped, as strings.

    Raises
    ------
    DataError
        Missing columns, or bad values, all listed with their row (1 = first
        row of ``frame``).
    """
    return flow_table(*sum_frame(frame, vintage))
