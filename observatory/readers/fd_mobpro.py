"""INSEE's detailed commuting file FD_MOBPRO: flows by transport mode, distances.

FD_MOBPRO has one row per sampled employed person: residence ``COMMUNE`` (and
``ARM``, the arrondissement, in Paris, Lyon and Marseille; ``ZZZZZ`` elsewhere),
work place ``DCLT``, main transport mode ``TRANS`` and weight ``IPONDI``. Several
million rows: :func:`read_fd` reads it out of core with dask, mapping the one
pandas aggregation of :func:`aggregate_fd` over partitions, as tobler's dask
wrapper does, then summing the partial sums.

Inside, a triple (residence, work place, mode) is one integer: commune codes
(at most 5 characters of ``0-9A-Z``) are packed in an order-preserving base 37,
so partitions sum and merge integers, and codes are turned back into strings,
leading zeros and ``2A``/``2B`` as they were, only in the final table. Codes are
read dictionary-encoded (Arrow), checked and mapped on their distinct values.

The result is a long table ``origin_commune, destination_commune, mode, workers``
(workers: sum of ``IPONDI``, all decimals kept). Arrondissements are **kept**
(``75104``, ``69381``...), as :func:`observatory.readers.base_flux.read_base_flux` keeps
them, so both sources compare pair by pair; :func:`observatory.systems.flows.flows_epci`
rolls them up later. Modes are harmonised across census vintages (:data:`MODES`).

Distances (:func:`distance_km`, :func:`person_km`) are **straight lines** between
representative points of communes in Lambert-93 (EPSG:2154), not road distances.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from observatory.core.compute import computer, scheduler_kind
from observatory.core.errors import DataError, SourceError, examples_at
from observatory.core.files import CHUNK
from observatory.geography import (
    ARRONDISSEMENT_RANGES,
    TARGET_CRS,
    is_abroad_code,
    is_commune_code,
    rollup_arrondissements,
)

logger = logging.getLogger(__name__)


#: Harmonised transport modes, in display order:
#:
#: - ``none``: no transport (mostly people working at home);
#: - ``walk``: on foot (or rollers, scooter);
#: - ``bicycle``: bicycle, electric or not (RP 2017 and later);
#: - ``two_wheel_motorised``: moped, motorcycle (RP 2017 and later);
#: - ``two_wheel``: the single two-wheeler class of RP 2016 and earlier, bicycles
#:   and motorised together. It is never split: it is 0 from RP 2017 on, and
#:   ``bicycle`` and ``two_wheel_motorised`` are 0 before. Compare vintages with
#:   ``bicycle + two_wheel_motorised`` against ``two_wheel``;
#: - ``car``: car, van, truck;
#: - ``public_transport``: public transport.
MODES: tuple[str, ...] = (
    "none",
    "walk",
    "bicycle",
    "two_wheel_motorised",
    "two_wheel",
    "car",
    "public_transport",
)


#: Last census vintage whose ``TRANS`` has 5 modes. From RP 2017 on, bicycles
#: and motorised two-wheelers are apart: the questionnaire split them in the 2015
#: annual survey, and RP 2017 (surveys 2015-2019) is the first vintage made only
#: of answers to the new question. Public code reading FD_MOBPRO_2017 and
#: FD_MOBPRO_2018 decodes 3 = bicycle, 4 = motorised two-wheeler, 6 = public
#: transport. [verify against INSEE's Varmod_MOBPRO_2017/2018 before relying on
#: RP 2017-2018 two-wheeler shares.]
LAST_FIVE_MODE_VINTAGE = 2016


#: ``TRANS`` codes of RP 2016 and earlier.
TRANS_FIVE_MODES: dict[str, str] = {
    "1": "none",
    "2": "walk",
    "3": "two_wheel",
    "4": "car",
    "5": "public_transport",
}


#: ``TRANS`` codes of RP 2017 and later.
TRANS_SIX_MODES: dict[str, str] = {
    "1": "none",
    "2": "walk",
    "3": "bicycle",
    "4": "two_wheel_motorised",
    "5": "car",
    "6": "public_transport",
}


#: Columns read from the file.
FD_COLUMNS: tuple[str, ...] = ("COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI")


#: Keys of the long table returned by :func:`aggregate_fd` and :func:`read_fd`.
FLOW_KEYS: tuple[str, ...] = ("origin_commune", "destination_commune", "mode")


PAIR_KEYS: tuple[str, ...] = ("origin_commune", "destination_commune")


#: Mean distance between two points drawn uniformly in a disc of radius 1.
INTRA_COMMUNE_FACTOR = 128 / (45 * math.pi)


_ARRONDISSEMENTS = frozenset(
    str(code)
    for first, last, _ in ARRONDISSEMENT_RANGES
    for code in range(first, last + 1)
)


_VINTAGE_IN_NAME = re.compile(r"(?:RP|MOBPRO_)((?:19|20)\d{2})(?!\d)", re.IGNORECASE)


_INTEGRAL = re.compile(r"^([0-9]+)\.0*$")


_MAX_LISTED = 5


#: Estimated bytes in memory per FD_MOBPRO row read (5 columns), for partitions.
_BYTES_PER_ROW = 100


_SPLIT_EVERY = 16


#: Key ranges of the last merge of partial sums, merged in parallel.
_FINAL_RANGES = 4


class _PartitionError(DataError):
    """A DataError raised in one partition; carries its number (picklable)."""

    def __init__(self, message: str, partition: int) -> None:
        super().__init__(message)
        self.message = message
        self.partition = partition

    def __str__(self) -> str:
        return f"partition {self.partition}: {self.message}"


# --------------------------------------------------------------------- modes
def trans_coding(vintage: int) -> dict[str, str]:
    """Return the ``TRANS`` code -> mode mapping of a census vintage."""
    if isinstance(vintage, bool) or not isinstance(vintage, int | np.integer):
        msg = f"vintage must be a census year such as 2021, got {vintage!r}"
        raise DataError(msg)
    if not 2006 <= vintage <= 2100:
        msg = (
            f"vintage must be a census year from 2006 (first FD_MOBPRO), got {vintage}"
        )
        raise DataError(msg)
    return dict(
        TRANS_FIVE_MODES if vintage <= LAST_FIVE_MODE_VINTAGE else TRANS_SIX_MODES
    )


def _coding_label(vintage: int) -> str:
    if vintage <= LAST_FIVE_MODE_VINTAGE:
        return f"RP{vintage} has 5 modes (RP <= {LAST_FIVE_MODE_VINTAGE})"
    return f"RP{vintage} has 6 modes (RP >= {LAST_FIVE_MODE_VINTAGE + 1})"


def _map_trans(trans: pd.Series, coding: dict[str, str]) -> pd.Series:
    # "5", 5, 5.0 and "5.0" are the same code; anything else maps to <NA>. Work
    # on the few distinct values, not on every row.
    codes, uniques = pd.factorize(trans, use_na_sentinel=True)
    text = pd.Series(uniques).astype("string").str.strip()
    text = text.str.replace(_INTEGRAL, r"\1", regex=True)
    modes = text.map(coding).to_numpy(dtype=object, na_value=None)
    modes = np.append(modes, None)  # code -1 (missing value) picks the last: None
    return pd.Series(modes[codes], index=trans.index, dtype="string")


# --------------------------------------------------------------------- codes as integers
# A commune code, or an abroad code of DCLT, is at most 5 characters among 0-9
# and A-Z (the patterns of observatory.normalise allow no other). Packed in base
# 37, right-padded with 0 (below every character), it becomes an integer below
# 37**5 < 2**27 that sorts as the code does (code point order). Bits 30-56 of a
# key hold the origin, bits 3-29 the destination, bits 0-2 the rank of the mode
# among sorted MODES: an (origin, destination, mode) triple is one int64, and
# keys sort as the triples do. Partitions and their partial sums are summed and
# merged as integers; codes become strings again only in the final table (a
# fifth of the rows of a national file). Leading zeros and Corsica's 2A/2B are
# characters like the others.
_CODE_SYMBOLS = b"\x000123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


_CODE_BASE = len(_CODE_SYMBOLS)


_CODE_WIDTH = 5


_CODE_BITS = 27  # 37**5 < 2**27


_MODE_ORDER: tuple[str, ...] = tuple(sorted(MODES))


_MODE_RANK = {mode: rank for rank, mode in enumerate(_MODE_ORDER)}


_MODE_BITS = 3  # 7 modes


_SYMBOL_VALUE = np.full(128, -1, dtype=np.int64)


_SYMBOL_VALUE[np.frombuffer(_CODE_SYMBOLS, dtype=np.uint8)] = np.arange(_CODE_BASE)


_DIGIT_VALUES = (_SYMBOL_VALUE[ord("0")], _SYMBOL_VALUE[ord("9")])


def _symbols(text: pd.Series) -> np.ndarray:
    """Symbol values of each code, one row of 6 (-1: not a symbol, 0: padding)."""
    wide = text.to_numpy(dtype=object, na_value="").astype(f"U{_CODE_WIDTH + 1}")
    points = wide.view(np.uint32).reshape(len(wide), _CODE_WIDTH + 1)
    return _SYMBOL_VALUE[np.minimum(points, len(_SYMBOL_VALUE) - 1)]


def _pack(symbols: np.ndarray) -> np.ndarray:
    """Integers of :func:`_symbols`' codes; -1 for codes that cannot be packed."""
    head = symbols[:, :_CODE_WIDTH]
    padding = head == 0
    packable = (
        (head >= 0).all(axis=1)
        & (symbols[:, _CODE_WIDTH] == 0)  # at most 5 characters
        & ~padding[:, 0]  # at least 1
        & ~(padding[:, :-1] & ~padding[:, 1:]).any(axis=1)  # no NUL inside
    )
    packed = np.zeros(len(symbols), dtype=np.int64)
    for j in range(_CODE_WIDTH):
        packed = packed * _CODE_BASE + np.maximum(head[:, j], 0)
    return np.where(packable, packed, -1)


def _unpack(packed: np.ndarray) -> np.ndarray:
    """Codes (numpy str) of packed integers."""
    table = np.frombuffer(_CODE_SYMBOLS, dtype=np.uint8)
    chars = np.empty((len(packed), _CODE_WIDTH), dtype=np.uint8)
    rest = np.asarray(packed, dtype=np.int64)
    for j in range(_CODE_WIDTH - 1, -1, -1):
        rest, symbol = np.divmod(rest, _CODE_BASE)
        chars[:, j] = table[symbol]
    return chars.view(f"S{_CODE_WIDTH}").ravel().astype(f"U{_CODE_WIDTH}")


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


def _dictionaries_as_arrow(arrow_type: Any) -> pd.ArrowDtype | None:
    """``types_mapper`` of ``to_pandas``: dictionaries stay Arrow (no categorical).

    A pandas categorical validates its categories: ~20 ms for a million rows'
    codes; wrapping the Arrow dictionary array costs nothing, and
    :func:`_encode` takes its integer codes as they are.
    """
    import pyarrow as pa

    return pd.ArrowDtype(arrow_type) if pa.types.is_dictionary(arrow_type) else None


def _code_table(uniques: pd.Series, *, abroad: bool) -> np.ndarray:
    """Packed code of each distinct value, -1 if invalid; one more -1 for missing.

    The patterns of :func:`observatory.geography.is_commune_code` (and
    :func:`~observatory.geography.is_abroad_code`) decide, except for plain
    5-digit codes outside 99xxx, which are commune codes by those patterns and
    are most values: they skip the regular expressions.
    """
    text = uniques.astype("string").str.strip()
    symbols = _symbols(text)
    packed = _pack(symbols)
    low, high = _DIGIT_VALUES
    head = symbols[:, :_CODE_WIDTH]
    plain = (
        (packed >= 0)
        & ((head >= low) & (head <= high)).all(axis=1)
        & ~((head[:, 0] == high) & (head[:, 1] == high))
    )
    valid = plain.copy()
    other = ~plain
    if other.any():
        rest = text[other]
        ok = is_commune_code(rest)
        if abroad:
            ok |= is_abroad_code(rest)
        valid[other] = ok.to_numpy(dtype=bool)
    return np.append(np.where(valid & (packed >= 0), packed, -1), -1)


def _mode_table(uniques: pd.Series, coding: dict[str, str]) -> np.ndarray:
    """Rank in sorted :data:`MODES` of each distinct TRANS, -1 if unknown or missing."""
    modes = _map_trans(_plain(uniques), coding)
    ranks = [
        _MODE_RANK.get(mode, -1) if isinstance(mode, str) else -1 for mode in modes
    ]
    return np.array([*ranks, -1], dtype=np.int64)


#: Share of an invalid code in a key: negative whatever the other two shares.
_INVALID = -(2**60)


def _shares(table: np.ndarray, factor: int) -> np.ndarray:
    """Multiply a code table by ``factor``, its -1 (invalid) entries made _INVALID."""
    return np.where(table >= 0, table * factor, _INVALID)


def _sum_keys(keys: np.ndarray, workers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``workers`` by ``keys``: the distinct keys, sorted, and their sums."""
    groups, distinct = pd.factorize(keys)
    sums = np.bincount(groups, weights=workers, minlength=len(distinct))
    order = np.argsort(distinct)
    return np.asarray(distinct, dtype=np.int64)[order], sums[order].astype(np.float64)


def trans_to_mode(trans: pd.Series, vintage: int) -> pd.Series:
    """Translate ``TRANS`` codes into harmonised modes (:data:`MODES`).

    Parameters
    ----------
    trans
        Codes as strings, integers or floats (``5.0`` in the RP 2022 Parquet file).
    vintage
        Census year: RP 2016 and earlier have 5 modes, RP 2017 and later 6.

    Returns
    -------
    pandas.Series
        Mode names (string dtype), same index.

    Raises
    ------
    DataError
        For codes outside the vintage's coding (missing values included).
    """
    coding = trans_coding(vintage)
    modes = _map_trans(trans, coding)
    unknown = modes.isna()
    if unknown.any():
        found = sorted(
            {"<missing>" if pd.isna(v) else repr(v) for v in trans[unknown.to_numpy()]}
        )
        msg = (
            f"RP{vintage}: unknown TRANS code(s) {', '.join(found[:10])}; "
            f"expected {list(coding)}: {_coding_label(vintage)}"
        )
        raise DataError(msg)
    return modes


# --------------------------------------------------------------------- aggregation
def _residence(frame: pd.DataFrame) -> pd.Series:
    commune = frame["COMMUNE"].astype("string").str.strip()
    arm = frame["ARM"].astype("string").str.strip()
    return commune.mask(arm.isin(_ARRONDISSEMENTS).fillna(False), arm)


def _plain(values: pd.Series) -> pd.Series:
    # Dictionary-encoded Parquet columns arrive as categoricals.
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(values.cat.categories.dtype)
    return values


def _weights(ipondi: pd.Series) -> np.ndarray:
    ipondi = _plain(ipondi)
    if pd.api.types.is_numeric_dtype(ipondi) and not pd.api.types.is_bool_dtype(ipondi):
        return ipondi.to_numpy(dtype="float64", na_value=np.nan)
    if getattr(ipondi.dtype, "storage", None) == "pyarrow":
        # Fast path (the CSV reader's Arrow strings): Arrow's parser, without
        # the GIL. Anything it refuses (blanks, decimal commas, text) goes on to
        # pandas below, which also names nothing: the checks do.
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            values = pc.cast(pa.array(ipondi.array), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
        else:
            return values.to_numpy(zero_copy_only=False)
    text = ipondi.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    if values.isna().any():  # a decimal comma, rarely
        values = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _row_problems(
    frame: pd.DataFrame, vintage: int, *, first: int = 1, word: str = "row"
) -> list[str]:
    """Describe every bad value of an FD_MOBPRO frame, rows numbered from ``first``."""
    numbers = np.arange(len(frame)) + first
    problems = []
    residence = _residence(frame)
    bad = (~is_commune_code(residence)).to_numpy()
    if bad.any():
        problems.append(
            "COMMUNE (or ARM) must be a 5-character commune code: "
            + examples_at(residence[bad], numbers[bad], word)
        )
    destination = frame["DCLT"].astype("string").str.strip()
    bad = (~(is_commune_code(destination) | is_abroad_code(destination))).to_numpy()
    if bad.any():
        problems.append(
            "DCLT must be a 5-character commune code or an abroad code (99xxx): "
            + examples_at(destination[bad], numbers[bad], word)
        )
    coding = trans_coding(vintage)
    bad = _map_trans(frame["TRANS"], coding).isna().to_numpy()
    if bad.any():
        problems.append(
            f"TRANS must be one of {list(coding)} ({_coding_label(vintage)}): "
            + examples_at(frame["TRANS"][bad], numbers[bad], word)
        )
    workers = _weights(frame["IPONDI"])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(workers) | (workers < 0)
    if bad.any():
        problems.append(
            "IPONDI must be a number >= 0: "
            + examples_at(frame["IPONDI"][bad], numbers[bad], word)
        )
    return problems


def _raise_problems(frame: pd.DataFrame, vintage: int) -> None:
    problems = _row_problems(frame, vintage)
    problems = problems or [
        "invalid codes: COMMUNE, ARM and DCLT must be written with ASCII digits "
        "and capital letters"
    ]
    msg = f"FD_MOBPRO RP{vintage}: " + "; ".join(problems)
    raise DataError(msg)


def _flow_keys(frame: pd.DataFrame, vintage: int) -> tuple[np.ndarray, np.ndarray]:
    """One int64 (origin, destination, mode) key and one weight per row.

    Codes are checked, stripped, packed and mapped on their distinct values
    only (a few thousand), then gathered per row by integer codes. Any bad
    value sends back to the row by row description of the whole frame.
    """
    coding = trans_coding(vintage)
    workers = _weights(frame["IPONDI"])
    with np.errstate(invalid="ignore"):
        if not np.isfinite(workers).all() or (workers < 0).any():
            _raise_problems(frame, vintage)
    # Each table holds a code's share of the key (origin * span * 8, ...), or
    # _INVALID for a bad value, whose sum with any others stays negative: the
    # key of a row is three lookups and two additions, checked in one pass.
    commune, communes = _encode(frame["COMMUNE"])
    origin = _code_table(communes, abroad=False)
    keys = _shares(origin, 1 << (_CODE_BITS + _MODE_BITS)).take(commune)
    arm, arms = _encode(frame["ARM"])
    arm_text = arms.astype("string").str.strip()
    is_arrondissement = arm_text.isin(_ARRONDISSEMENTS).fillna(False).to_numpy(bool)
    if is_arrondissement.any():  # Paris, Lyon, Marseille: the arrondissement
        packed = np.full(len(arms) + 1, -1, dtype=np.int64)
        packed[:-1][is_arrondissement] = _pack(_symbols(arm_text[is_arrondissement]))
        by_arm = _shares(packed, 1 << (_CODE_BITS + _MODE_BITS)).take(arm)
        keys = np.where(packed.take(arm) >= 0, by_arm, keys)
    destination, destinations = _encode(frame["DCLT"])
    table = _code_table(destinations, abroad=True)
    keys += _shares(table, 1 << _MODE_BITS).take(destination)
    trans, transes = _encode(frame["TRANS"])
    keys += _shares(_mode_table(transes, coding), 1).take(trans)
    if len(keys) and keys.min() < 0:
        _raise_problems(frame, vintage)
    return keys, workers


def _sum_fd(frame: pd.DataFrame, vintage: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum an FD_MOBPRO frame by (origin, destination, mode) integer keys.

    The one aggregation of :func:`aggregate_fd` (whole frame) and of
    :func:`read_fd` (each partition): distinct keys, sorted, and their sums.
    """
    missing = [c for c in FD_COLUMNS if c not in frame.columns]
    if missing:
        msg = (
            f"FD_MOBPRO frame: missing column(s) {missing}; expected {list(FD_COLUMNS)}, "
            f"found {list(frame.columns)}"
        )
        raise DataError(msg)
    return _sum_keys(*_flow_keys(frame, vintage))


def _merge_sums(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum partial sums of :func:`_sum_fd`: sorted distinct keys, their sums.

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
    return _text_column(_unpack(np.asarray(distinct)), codes)


def _text_column(values: np.ndarray, codes: np.ndarray) -> pd.Series:
    """``values[codes]`` as a string Series, gathered by Arrow."""
    import pyarrow as pa

    text = pa.array(values, type=pa.string()).take(pa.array(codes))
    return pd.Series(pd.arrays.ArrowStringArray(text)).astype("string")


def _flow_table(keys: np.ndarray, sums: np.ndarray) -> pd.DataFrame:
    """Build the long table of :func:`aggregate_fd` from sorted keys and sums."""
    mode = keys & ((1 << _MODE_BITS) - 1)
    destination = (keys >> _MODE_BITS) & ((1 << _CODE_BITS) - 1)
    origin = keys >> (_CODE_BITS + _MODE_BITS)
    return pd.DataFrame(
        {
            "origin_commune": _code_column(origin, ordered=True),
            "destination_commune": _code_column(destination),
            "mode": _text_column(np.array(_MODE_ORDER), mode),
            "workers": np.asarray(sums, dtype=np.float64),
        }
    )


def aggregate_fd(frame: pd.DataFrame, vintage: int) -> pd.DataFrame:
    """Sum FD_MOBPRO weights by residence commune, work commune and mode.

    The same aggregation runs on a whole frame in memory and on each dask
    partition in :func:`read_fd`: summing its partial sums again gives the
    total.

    Parameters
    ----------
    frame
        Columns ``COMMUNE``, ``ARM``, ``DCLT``, ``TRANS``, ``IPONDI`` as in the file
        (codes as strings or categoricals of strings; ``TRANS`` may be numeric;
        others are ignored).
    vintage
        Census year, which sets the ``TRANS`` coding (see :func:`trans_to_mode`).

    Returns
    -------
    pandas.DataFrame
        ``origin_commune`` (``ARM`` when it is an arrondissement of Paris, Lyon or
        Marseille, ``COMMUNE`` otherwise: arrondissements are kept),
        ``destination_commune`` (``DCLT`` as given, abroad codes included),
        ``mode`` (:data:`MODES`) and ``workers`` (sum of ``IPONDI``, float64),
        sorted by the three keys (code point order); codes stripped, as strings.

    Raises
    ------
    DataError
        Missing columns, or bad values, all listed with their row (1 = first
        row of ``frame``).
    """
    return _flow_table(*_sum_fd(frame, vintage))


def _aggregate_partition(
    frame: pd.DataFrame, vintage: int, number: int
) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        keys, sums = _sum_fd(frame, vintage)
    except DataError as exc:
        raise _PartitionError(str(exc), number) from exc
    return keys, sums, len(frame)


def _combine_partials(
    *parts: tuple[np.ndarray, np.ndarray, int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sum partial sums of partitions (and their row counts)."""
    keys, sums = _merge_sums([(k, s) for k, s, _ in parts])
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
    return np.unique(cuts >> _MODE_BITS << _MODE_BITS)


def _final_range(
    number: int, ranges: int, *parts: tuple[np.ndarray, np.ndarray, int]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Merge one key range of the last partial sums; make its table and counts.

    The ranges split the last merge and the making of strings between
    workers; laid end to end, their tables are the sorted whole. Counts:
    ``rows`` (of all the parts), and for the range ``pairs``, ``workers`` and
    ``found`` by mode rank (see :func:`_sum_counts`).
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
        keys, sums = _merge_sums(pieces)
    counts = _sum_counts(keys, sums) | {"rows": sum(n for _, _, n in parts)}
    return _flow_table(keys, sums), counts


def _sum_counts(keys: np.ndarray, sums: np.ndarray) -> dict[str, Any]:
    """Distinct pairs, workers and presence by mode rank, of sorted keys."""
    pairs = keys >> _MODE_BITS
    modes = keys & ((1 << _MODE_BITS) - 1)
    return {
        "pairs": int(len(pairs) and 1 + np.count_nonzero(pairs[1:] != pairs[:-1])),
        "workers": np.bincount(modes, weights=sums, minlength=len(_MODE_ORDER)),
        "found": np.bincount(modes, minlength=len(_MODE_ORDER)) > 0,
    }


def commune_pairs(flows_by_mode: pd.DataFrame) -> pd.DataFrame:
    """Sum flows over modes: ``origin_commune, destination_commune, workers``.

    The result has the shape of :attr:`observatory.readers.base_flux.CommuneFlows.table`,
    for :func:`observatory.systems.flows.flows_epci` and :func:`compare_with_base_flux`.
    """
    _require(flows_by_mode, (*PAIR_KEYS, "workers"), "flows")
    table = flows_by_mode.groupby(list(PAIR_KEYS), sort=True, observed=True)[
        "workers"
    ].sum()
    out = table.reset_index()
    out[list(PAIR_KEYS)] = out[list(PAIR_KEYS)].astype("string")
    out["workers"] = out["workers"].astype("float64")
    return out


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"{what}: missing column(s) {missing}; expected {list(columns)}, found {list(frame.columns)}"
        raise DataError(msg)


# --------------------------------------------------------------------- reading
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
            raise DataError(msg)
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


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    names = [
        m
        for m in archive.namelist()
        if not m.endswith("/") and not m.startswith("__MACOSX")
    ]
    data = [m for m in names if Path(m).suffix.lower() in (".csv", ".txt", ".parquet")]
    chosen = [m for m in data if Path(m).name.upper().startswith("FD_")]
    if not chosen:
        chosen = [m for m in data if "varmod" not in Path(m).name.lower()]
    if len(chosen) != 1:
        msg = f"{path}: expected one FD_MOBPRO_*.csv file in the archive, found {names}"
        raise DataError(msg)
    return chosen[0]


def _prepare_source(
    path: Path, stack: contextlib.ExitStack, temp_dir: Path | None
) -> tuple[Path, str | None]:
    """Return a plain file dask can split, extracting a zip or gzip member."""
    if zipfile.is_zipfile(path):
        folder = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="observatory-mobpro-", dir=temp_dir)
            )
        )
        try:
            with zipfile.ZipFile(path) as archive:
                member = _zip_member(path, archive)
                target = folder / Path(member).name
                # Streamed in chunks: memory stays bounded whatever the size.
                with archive.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        # As fetch's extraction: a truncated stream or an unsupported method
        # (Deflate64) is a bad archive too.
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            msg = f"{path}: corrupt zip archive: {exc}"
            raise DataError(msg) from exc
        logger.debug("%s: extracted %s to %s", path, member, target)
        return target, member
    if path.suffix.lower() == ".zip":
        msg = f"{path}: not a valid zip archive"
        raise DataError(msg)
    if path.suffix.lower() == ".gz":
        folder = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="observatory-mobpro-", dir=temp_dir)
            )
        )
        target = folder / path.with_suffix("").name
        try:
            with gzip.open(path, "rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as exc:
            msg = f"{path}: not a valid gzip file ({exc})"
            raise DataError(msg) from exc
        return target, None
    return path, None


def _is_parquet(source: Path) -> bool:
    with source.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_csv(dd: Any, source: Path, where: str, blocksize: str | int) -> Any:
    from dask.utils import parse_bytes

    with source.open("rb") as handle:
        first = handle.readline(1 << 16)
        body = handle.tell()
    if not first.endswith(b"\n") and body < source.stat().st_size:
        msg = (
            f"{where}: line 1 (the header) is longer than 64 KiB: not an FD_MOBPRO file"
        )
        raise DataError(msg)
    bom = first.startswith(b"\xef\xbb\xbf")
    try:
        first.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    else:
        utf8 = True
    header = first.decode("utf-8-sig" if bom else "latin-1").strip()
    columns = [c.strip().strip('"') for c in header.split(";")]
    missing = [c for c in FD_COLUMNS if c not in columns]
    if missing:
        shown = columns[:15] + (["..."] if len(columns) > 15 else [])
        msg = (
            f"{where}: line 1: missing column(s) {missing}; expected a ';'-separated "
            f"FD_MOBPRO file with columns {', '.join(FD_COLUMNS)}; found {shown}"
        )
        raise DataError(msg)
    # Blocks of `blocksize` bytes after the header; a line belongs to the block
    # it starts in (dask's read_bytes rule), found by the reader itself.
    size = source.stat().st_size
    step = max(1, parse_bytes(blocksize))
    spans = [(s, min(s + step, size)) for s in range(body, size, step)] or [
        (body, body)
    ]
    # Codes are ASCII. Arrow checks UTF-8 and decodes it natively (latin-1 goes
    # through Python's codec, with the GIL): UTF-8 unless the header is not.
    options = {"columns": columns, "encoding": "utf8" if utf8 else "latin1"}
    return dd.from_map(
        _read_csv_block,
        spans,
        args=[str(source), options],
        meta=_csv_meta(),
        label="read-fd-csv",
        enforce_metadata=False,
    )


def _csv_meta() -> pd.DataFrame:
    import pyarrow as pa

    codes = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema(
        [(c, codes) for c in FD_COLUMNS if c != "IPONDI"] + [("IPONDI", pa.float64())]
    )
    return schema.empty_table().to_pandas(types_mapper=_dictionaries_as_arrow)


def _block_lines(source: str, span: tuple[int, int]) -> tuple[int, int]:
    """Byte range of the lines that start within ``span``."""
    start, end = span
    with Path(source).open("rb") as handle:
        if start > 0:  # skip the end of a line begun in the block before
            handle.seek(start - 1)
            handle.readline()
            start = handle.tell()
        if start >= end:
            return start, start
        handle.seek(end - 1)
        handle.readline()  # finish the line holding the block's last byte
        return start, handle.tell()


def _read_csv_block(
    span: tuple[int, int], source: str, options: dict[str, Any]
) -> pd.DataFrame:
    """Read one block of lines: codes dictionary-encoded, weights as floats.

    Arrow's CSV parser, called directly (no pandas conversion): codes come as
    categoricals of strings, ``IPONDI`` as float64. Where a weight does not
    parse or is not a number >= 0, the block is read again with ``IPONDI`` as
    text, for :func:`aggregate_fd` to check and quote. Nothing is a missing
    value: an empty field is an empty string, as in the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    start, stop = _block_lines(source, span)
    codes = pa.dictionary(pa.int32(), pa.string())

    def read(weights: pa.DataType) -> pa.Table:
        types = {c: codes for c in FD_COLUMNS if c != "IPONDI"} | {"IPONDI": weights}
        if start == stop:
            return pa.schema([(c, types[c]) for c in FD_COLUMNS]).empty_table()
        # Parsed in place from the page cache: a memory map, not a copy.
        with pa.memory_map(source) as mapped:
            mapped.seek(start)
            data = mapped.read_buffer(stop - start)
            return pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(
                    column_names=options["columns"],
                    encoding=options["encoding"],
                    use_threads=False,  # dask's threads read the blocks in parallel
                    block_size=16 << 20,
                ),
                parse_options=pacsv.ParseOptions(delimiter=";"),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(FD_COLUMNS),
                    column_types=types,
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )

    try:
        table = read(pa.float64())
        weights = table.column("IPONDI").to_numpy()
        with np.errstate(invalid="ignore"):
            checked = bool(np.isfinite(weights).all() and (weights >= 0).all())
    except pa.ArrowInvalid:
        checked = False
    if not checked:
        table = read(pa.string())
    return table.to_pandas(types_mapper=_dictionaries_as_arrow)


def _read_row_groups(
    groups: tuple[int, ...], source: str, dictionary: list[str]
) -> pd.DataFrame:
    import pyarrow.parquet as pq

    # Text codes read dictionary-encoded, as the file stores them: categoricals
    # whose integer codes aggregate_fd uses directly, no strings per row.
    parquet = pq.ParquetFile(source, read_dictionary=dictionary)
    table = parquet.read_row_groups(list(groups), columns=list(FD_COLUMNS))
    return table.to_pandas(types_mapper=_dictionaries_as_arrow)


def _read_parquet(dd: Any, source: Path, where: str, blocksize: str | int) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.utils import parse_bytes

    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        msg = f"{where}: cannot read as Parquet: {exc}"
        raise DataError(msg) from exc
    metadata = parquet.metadata
    names = parquet.schema_arrow.names
    missing = [c for c in FD_COLUMNS if c not in names]
    if missing:
        msg = (
            f"{where}: missing column(s) {missing}; expected FD_MOBPRO columns "
            f"{', '.join(FD_COLUMNS)}; found {names[:15]}"
        )
        raise DataError(msg)
    # Consecutive row groups holding about `blocksize` bytes of the columns read.
    # dd.read_parquet would fuse partitions by the share of columns read (5 of
    # ~30): partitions several times larger than asked, numbered otherwise.
    # Sizes are estimated in memory, not on disk: dictionary-encoded codes are
    # a few bytes a row in the file, ~100 in pandas (the five columns and the
    # groupby's keys). On disk sizes merged a national file's 8 row groups of 1
    # million rows into one partition: no parallelism.
    limit = parse_bytes(blocksize)
    chunks: list[tuple[int, ...]] = []
    chunk: list[int] = []
    size = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        group_size = max(
            _BYTES_PER_ROW * group.num_rows,
            sum(
                group.column(j).total_uncompressed_size
                for j in range(group.num_columns)
                if group.column(j).path_in_schema in FD_COLUMNS
            ),
        )
        if chunk and size + group_size > limit:
            chunks.append(tuple(chunk))
            chunk, size = [], 0
        chunk.append(i)
        size += group_size
    if chunk or not chunks:
        chunks.append(tuple(chunk))
    dictionary = [
        c
        for c in FD_COLUMNS
        if c != "IPONDI"
        and (
            pa.types.is_string(parquet.schema_arrow.field(c).type)
            or pa.types.is_large_string(parquet.schema_arrow.field(c).type)
        )
    ]
    meta = parquet.schema_arrow.empty_table().select(list(FD_COLUMNS)).to_pandas()
    return dd.from_map(
        _read_row_groups,
        chunks,
        args=[str(source), dictionary],
        meta=meta,
        label="read-fd-parquet",
        enforce_metadata=False,
    )


def _row_count(frame: pd.DataFrame) -> pd.Series:
    return pd.Series([len(frame)], name="rows", dtype="int64")


def _locate(
    ddf: Any,
    number: int,
    vintage: int,
    compute: Callable[..., tuple],
    *,
    first: int,
    word: str,
) -> str | None:
    # Error path only: read again the partitions before the bad one (their
    # lengths give the offset) and the bad one, to name file lines.
    if not 0 <= number < ddf.npartitions:
        return None
    before = 0
    if number > 0:
        (lengths,) = compute(
            ddf.partitions[:number].map_partitions(_row_count, meta=("rows", "int64"))
        )
        before = int(np.sum(lengths))
    (part,) = compute(ddf.partitions[number])
    problems = _row_problems(part, vintage, first=first + before, word=word)
    return "; ".join(problems) if problems else None


def read_fd(
    path: Path,
    vintage: int | None = None,
    *,
    blocksize: str | int = "64MiB",
    scheduler: str | None = None,
    progress: bool = True,
    temp_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read an FD_MOBPRO file out of core into flows by mode.

    Parameters
    ----------
    path
        INSEE's file: ``;``-separated CSV, plain, zipped (RP 2020 and earlier:
        ``RP2019_mobpro_csv.zip``) or gzipped, or Parquet (RP 2021 and later).
        Only ``COMMUNE``, ``ARM``, ``DCLT``, ``TRANS`` and ``IPONDI`` are read.
    vintage
        Census year; read from the file name (``RP2019...``, ``FD_MOBPRO_2016...``)
        when not given.
    blocksize
        Bytes per partition (``"64MiB"``): CSV text (blocks of whole lines,
        parsed by Arrow), or the estimated size in memory of the Parquet
        columns read (whole row groups; ~100 bytes a row, so a national file's
        row groups of 1 million rows are one partition each). Memory grows
        with ``blocksize`` times the number of threads and with the number of
        distinct triples (1.7 million for France), not with the file's size.
    scheduler
        ``None`` or ``"threads"`` (default), ``"processes"``, ``"synchronous"``;
        or a dask.distributed scheduler address (``"tcp://host:8786"``), whose
        workers must be able to import ``observatory`` and read ``path`` (and
        ``temp_dir`` for a zip) at the same location.
    progress
        Show a progress bar: dask's on stderr for a local scheduler, distributed's
        on stdout; only when that stream is a terminal.
    temp_dir
        Where a zipped or gzipped CSV is extracted (the system's temporary folder
        by default); removed afterwards.

    Returns
    -------
    tuple
        The long table of :func:`aggregate_fd` for the whole file (arrondissements
        kept), and a report: path, member, format, vintage, TRANS coding, rows
        read, workers total and by mode, triples, pairs, partitions, scheduler,
        seconds.

    Raises
    ------
    SourceError
        The file does not exist, or the scheduler cannot be reached.
    DataError
        Unknown vintage, missing columns (naming the file and the expected
        columns), unparsable file, or bad values: listed with their file line
        (CSV, header = line 1) or row (Parquet, from 1).
    """
    import dask.dataframe as dd  # dependencies, imported when needed only
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: FD_MOBPRO file not found"
        raise SourceError(msg)
    kind = scheduler_kind(scheduler)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        source, member = _prepare_source(path, stack, temp_dir)
        vintage = _resolve_vintage(path, member, vintage)
        where = f"{path}" + (f" [{member}]" if member else "")
        if _is_parquet(source):
            fmt, first, word = "parquet", 1, "row"
            ddf = _read_parquet(dd, source, where, blocksize)
        else:
            fmt, first, word = "csv", 2, "line"
            ddf = _read_csv(dd, source, where, blocksize)
        # aggregate_fd's sums (integer keys) on each partition, then the sum of
        # the partial sums as a tree, 16 at a time (bounded memory); rows
        # counted on the way. Codes become strings once, in the final table.
        from dask import delayed

        level = [
            delayed(_aggregate_partition, pure=True)(part, vintage, number)
            for number, part in enumerate(ddf.to_delayed())
        ]
        while len(level) > _SPLIT_EVERY:
            level = [
                delayed(_combine_partials, pure=True)(*level[i : i + _SPLIT_EVERY])
                for i in range(0, len(level), _SPLIT_EVERY)
            ]
        last = [
            delayed(_final_range, pure=True)(number, _FINAL_RANGES, *level)
            for number in range(_FINAL_RANGES)
        ]
        compute = computer(scheduler, progress, stack)
        logger.info(
            "%s: RP%d, %s, %d partition(s), scheduler %s",
            where,
            vintage,
            fmt,
            ddf.npartitions,
            scheduler or kind,
        )
        try:
            (ranges,) = compute(last)
        except _PartitionError as exc:
            detail = _locate(
                ddf, exc.partition, vintage, compute, first=first, word=word
            )
            msg = f"{where}: {detail or exc}"
            raise DataError(msg) from exc
        except (pd.errors.ParserError, UnicodeDecodeError, pa.ArrowInvalid) as exc:
            msg = f"{where}: cannot parse as a ';'-separated FD_MOBPRO {fmt}: {exc}"
            raise DataError(msg) from exc
        partitions = int(ddf.npartitions)

    table = pd.concat([piece for piece, _ in ranges], ignore_index=True)
    counts = [count for _, count in ranges]
    by_mode = np.sum([count["workers"] for count in counts], axis=0)
    found = np.any([count["found"] for count in counts], axis=0)
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "path": str(path),
        "member": member,
        "format": fmt,
        "vintage": vintage,
        "trans_coding": _coding_label(vintage),
        "rows_read": int(counts[0]["rows"]),
        "workers_total": round(float(table["workers"].sum()), 3),
        "workers_by_mode": {
            mode: round(float(by_mode[_MODE_RANK[mode]]), 3)
            for mode in MODES
            if found[_MODE_RANK[mode]]
        },
        "triples": len(table),
        "pairs": sum(count["pairs"] for count in counts),
        "partitions": partitions,
        "scheduler": scheduler or kind,
        "seconds": round(seconds, 3),
    }
    logger.info(
        "%s: %d rows -> %d (origin, destination, mode) triples, %.1f workers in %.1f s",
        where,
        report["rows_read"],
        report["triples"],
        report["workers_total"],
        seconds,
    )
    return table, report


# --------------------------------------------------------------------- modal split
def modal_split(flows_by_mode: pd.DataFrame) -> pd.DataFrame:
    """Pivot flows by mode into one row per pair with the share of each mode.

    Parameters
    ----------
    flows_by_mode
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers``.

    Returns
    -------
    pandas.DataFrame
        ``origin_commune``, ``destination_commune``, ``workers`` (all modes) and
        ``<mode>_share`` for every mode of :data:`MODES`, in that order. Shares
        sum to 1; a mode absent from a pair (or from the vintage's coding, such
        as ``bicycle`` before RP 2017) has share 0; a pair of 0 workers has all
        shares 0.
    """
    _require(flows_by_mode, (*FLOW_KEYS, "workers"), "flows_by_mode")
    modes = flows_by_mode["mode"].astype("string")
    unknown = sorted({str(m) for m in modes[~modes.isin(MODES).fillna(False)]})
    if unknown:
        msg = (
            f"flows_by_mode: unknown mode(s) {unknown}; expected some of {list(MODES)}"
        )
        raise DataError(msg)
    share_columns = [f"{mode}_share" for mode in MODES]
    if flows_by_mode.empty:
        return pd.DataFrame(
            {key: pd.Series(dtype="string") for key in PAIR_KEYS}
            | {c: pd.Series(dtype="float64") for c in ["workers", *share_columns]}
        )
    wide = (
        flows_by_mode.assign(mode=modes)
        .groupby([*PAIR_KEYS, "mode"], sort=True, observed=True)["workers"]
        .sum()
        .unstack("mode", fill_value=0.0)
        .reindex(columns=list(MODES), fill_value=0.0)
        .astype("float64")
    )
    total = wide.sum(axis=1).to_numpy()
    values = wide.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(total[:, None] > 0, values / total[:, None], 0.0)
    out = wide.index.to_frame(index=False).astype("string")
    out["workers"] = total
    for j, column in enumerate(share_columns):
        out[column] = shares[:, j]
    return out


# --------------------------------------------------------------------- distances
def commune_points(
    communes: gpd.GeoDataFrame,
    code_column: str = "commune_code",
    crs: str | None = TARGET_CRS,
) -> pd.DataFrame:
    """Return the representative point and area of each commune, in EPSG:2154.

    Representative points lie inside the polygon (a centroid may not). The frame
    returned is what :func:`distance_km` and :func:`person_km` take as ``points``.

    Parameters
    ----------
    communes
        Polygons with their code, e.g. from
        :func:`observatory.readers.communes.read_communes`.
    code_column
        Column holding the commune code.
    crs
        Projected CRS of the points: Lambert-93 by default, the official CRS of
        an overseas department for its communes; None keeps the frame's.

    Returns
    -------
    pandas.DataFrame
        Index: commune code; columns ``x``, ``y`` (metres) and ``area_km2``.
    """
    return _as_points(communes, code_column, crs or communes.crs)


def _as_points(
    points: gpd.GeoSeries | gpd.GeoDataFrame | pd.DataFrame,
    code_column: str = "commune_code",
    crs: Any = TARGET_CRS,
) -> pd.DataFrame:
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        if points.crs is None:
            msg = f"points: no CRS; expected {TARGET_CRS} (Lambert-93) or any CRS to reproject from"
            raise DataError(msg)
        geo = points.to_crs(crs)
        index = (
            geo[code_column]
            if isinstance(geo, gpd.GeoDataFrame) and code_column in geo.columns
            else geo.index.to_series()
        )
        geometry = geo.geometry
        frame = pd.DataFrame(index=pd.Index(index.astype("string").to_numpy()))
        if not (geometry.geom_type == "Point").all():
            frame["area_km2"] = geometry.area.to_numpy() / 1e6
            geometry = geometry.representative_point()
        frame.insert(0, "x", geometry.x.to_numpy())
        frame.insert(1, "y", geometry.y.to_numpy())
    else:
        _require(points, ("x", "y"), "points")
        columns = ["x", "y"] + (["area_km2"] if "area_km2" in points.columns else [])
        frame = points.loc[:, columns].astype("float64")
        frame.index = pd.Index(points.index.astype("string"))
    if frame.index.duplicated().any():
        dup = sorted(set(frame.index[frame.index.duplicated()]))
        msg = f"points: commune codes must be unique; duplicated {dup[:_MAX_LISTED]}"
        raise DataError(msg)
    return frame


def _point_keys(codes: pd.Series, known: pd.Index) -> pd.Series:
    # A code with no point of its own (an arrondissement when only communes are
    # given) uses its commune's point.
    codes = codes.astype("string")
    rolled = rollup_arrondissements(codes)
    keys = codes.where(codes.isin(known).fillna(False))
    return keys.fillna(rolled.where(rolled.isin(known).fillna(False)))


def distance_km(
    origin: pd.Series,
    destination: pd.Series,
    points: gpd.GeoSeries | gpd.GeoDataFrame | pd.DataFrame,
) -> pd.Series:
    """Straight-line distance between residence and work communes, in km.

    Parameters
    ----------
    origin, destination
        Commune codes, aligned.
    points
        Representative points by commune code: a frame from
        :func:`commune_points` (``x``, ``y`` in EPSG:2154 metres, optional
        ``area_km2``), any frame with ``x``, ``y`` columns in EPSG:2154 indexed by
        code, or a GeoSeries/GeoDataFrame (reprojected to EPSG:2154; polygons
        give their representative point and area).

    Returns
    -------
    pandas.Series
        ``distance_km``, same index as ``origin``: the straight line between the
        two points (not a road distance). For a pair within one commune, the
        mean straight-line distance between two random points of a disc of the
        commune's area, ``128 / (45 π) · sqrt(area / π)`` (≈ 0.51 km for
        1 km²), when ``points`` has ``area_km2``; 0 otherwise. An arrondissement
        without a point of its own uses its commune's; codes without a point
        (abroad, unknown) give NaN.
    """
    pts = _as_points(points)
    keys_o = _point_keys(origin, pts.index)
    keys_d = _point_keys(destination, pts.index)
    xo = keys_o.map(pts["x"]).to_numpy(dtype="float64", na_value=np.nan)
    yo = keys_o.map(pts["y"]).to_numpy(dtype="float64", na_value=np.nan)
    xd = keys_d.map(pts["x"]).to_numpy(dtype="float64", na_value=np.nan)
    yd = keys_d.map(pts["y"]).to_numpy(dtype="float64", na_value=np.nan)
    km = np.hypot(xd - xo, yd - yo) / 1000.0
    same = (keys_o == keys_d).fillna(False).to_numpy(dtype=bool)
    if "area_km2" in pts.columns:
        area = keys_o.map(pts["area_km2"]).to_numpy(dtype="float64", na_value=np.nan)
        intra = INTRA_COMMUNE_FACTOR * np.sqrt(area / math.pi)
    else:
        intra = np.zeros(len(km))
    km = np.where(same, intra, km)
    return pd.Series(km, index=origin.index, name="distance_km", dtype="float64")


def person_km(
    flows_by_mode: pd.DataFrame,
    points: gpd.GeoSeries | gpd.GeoDataFrame | pd.DataFrame,
) -> pd.DataFrame:
    """Add straight-line ``distance_km`` and ``person_km`` to flows by mode.

    Parameters
    ----------
    flows_by_mode
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers``.
    points
        As for :func:`distance_km`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``distance_km`` (straight line, see :func:`distance_km`; 0
        for mode ``none``: no journey) and ``person_km = workers * distance_km``,
        one way, per commuting day. NaN where a commune has no point (abroad).
    """
    _require(flows_by_mode, (*FLOW_KEYS, "workers"), "flows_by_mode")
    out = flows_by_mode.copy()
    km = distance_km(out["origin_commune"], out["destination_commune"], points)
    no_journey = (out["mode"].astype("string") == "none").fillna(False).to_numpy()
    out["distance_km"] = np.where(no_journey, 0.0, km.to_numpy())
    out["person_km"] = out["workers"].to_numpy(dtype="float64") * out["distance_km"]
    return out


# --------------------------------------------------------------------- consistency
def _pair_totals(frame: pd.DataFrame, what: str, roll_up: bool) -> pd.Series:
    _require(frame, (*PAIR_KEYS, "workers"), what)
    origin = frame["origin_commune"].astype("string")
    destination = frame["destination_commune"].astype("string")
    if roll_up:
        origin = rollup_arrondissements(origin)
        destination = rollup_arrondissements(destination)
    workers = pd.to_numeric(frame["workers"], errors="coerce").astype("float64")
    if workers.isna().any():
        msg = f"{what}: workers must be numbers; {int(workers.isna().sum())} missing or not numeric"
        raise DataError(msg)
    return workers.groupby([origin, destination], sort=True).sum()


def compare_with_base_flux(
    fd_pairs: pd.DataFrame,
    base: pd.DataFrame,
    *,
    tolerance: float = 0.5,
    relative_tolerance: float = 1e-6,
    worst: int = 10,
    roll_up: bool = False,
) -> dict[str, Any]:
    """Compare flows summed from FD_MOBPRO with INSEE's base flux, pair by pair.

    Both come from the same census, so each pair should agree up to INSEE's
    rounding of the base flux.

    Parameters
    ----------
    fd_pairs
        ``origin_commune``, ``destination_commune``, ``workers`` (from
        :func:`commune_pairs`; a table by mode is summed over modes too).
    base
        Same columns (``CommuneFlows.table`` of
        :func:`observatory.readers.base_flux.read_base_flux`).
    tolerance, relative_tolerance
        A pair is a gap when ``|fd - base| > tolerance + relative_tolerance *
        max(|fd|, |base|)``; a pair missing on one side counts as 0 there.
    worst
        How many of the largest gaps to list.
    roll_up
        Roll arrondissements up to their commune on both sides first.

    Returns
    -------
    dict
        ``pairs_fd``, ``pairs_base``, ``pairs_only_in_fd``, ``pairs_only_in_base``,
        ``workers_fd``, ``workers_base``, ``workers_gap`` (fd - base),
        ``max_abs_gap``, ``pairs_above_tolerance``, ``tolerance``,
        ``consistent`` (no pair above tolerance) and ``worst_pairs``: up to
        ``worst`` pairs above tolerance, largest gap first, each with
        ``origin_commune``, ``destination_commune``, ``workers_fd``,
        ``workers_base``, ``gap``.
    """
    fd = _pair_totals(fd_pairs, "fd_pairs", roll_up).rename("workers_fd")
    ref = _pair_totals(base, "base", roll_up).rename("workers_base")
    merged = pd.concat([fd, ref], axis=1, join="outer").sort_index()
    only_fd = int((merged["workers_base"].isna() & merged["workers_fd"].notna()).sum())
    only_base = int(
        (merged["workers_fd"].isna() & merged["workers_base"].notna()).sum()
    )
    merged = merged.fillna(0.0)
    gap = merged["workers_fd"] - merged["workers_base"]
    limit = tolerance + relative_tolerance * np.maximum(
        merged["workers_fd"].abs(), merged["workers_base"].abs()
    )
    above = gap.abs() > limit
    ranked = (
        merged.assign(gap=gap, abs_gap=gap.abs())[above]
        .reset_index(names=list(PAIR_KEYS))
        .sort_values(["abs_gap", *PAIR_KEYS], ascending=[False, True, True])
        .head(max(0, worst))
    )
    report: dict[str, Any] = {
        "pairs_fd": len(fd),
        "pairs_base": len(ref),
        "pairs_only_in_fd": only_fd,
        "pairs_only_in_base": only_base,
        "workers_fd": round(float(fd.sum()), 3),
        "workers_base": round(float(ref.sum()), 3),
        "workers_gap": round(float(fd.sum() - ref.sum()), 6),
        "max_abs_gap": round(float(gap.abs().max()), 6) if len(gap) else 0.0,
        "pairs_above_tolerance": int(above.sum()),
        "tolerance": {"absolute": tolerance, "relative": relative_tolerance},
        "consistent": not bool(above.any()),
        "worst_pairs": [
            {
                "origin_commune": str(row.origin_commune),
                "destination_commune": str(row.destination_commune),
                "workers_fd": round(float(row.workers_fd), 6),
                "workers_base": round(float(row.workers_base), 6),
                "gap": round(float(row.gap), 6),
            }
            for row in ranked.itertuples(index=False)
        ],
    }
    if above.any():
        logger.warning(
            "FD_MOBPRO vs base flux: %d pair(s) differ by more than %.3g workers "
            "(largest gap %.3f)",
            report["pairs_above_tolerance"],
            tolerance,
            report["max_abs_gap"],
        )
    return report
