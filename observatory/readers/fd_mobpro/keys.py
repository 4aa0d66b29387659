"""One int64 per (residence, work place, mode) triple: the base-37 key scheme.

Commune and abroad codes are packed into order-preserving integers
(:func:`pack_codes`, :func:`unpack_codes`), and a triple into one key, so that
partitions sum and merge integers and keys sort as the triples do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.geography import is_abroad_code, is_commune_code
from observatory.readers.fd_mobpro.coding import CODED_MODES, map_trans, plain

# A commune code, or an abroad code of DCLT, is at most 5 characters among 0-9
# and A-Z (the patterns of observatory.geography allow no other). Packed in base
# 37, right-padded with 0 (below every character), it becomes an integer below
# 37**5 < 2**27 that sorts as the code does (code point order). Bits 30-56 of a
# key hold the origin, bits 3-29 the destination, bits 0-2 the rank of the mode
# in CODED_MODES: keys sort as the triples do. Leading zeros and Corsica's 2A/2B
# are characters like the others.
_CODE_SYMBOLS = b"\x000123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


_CODE_BASE = len(_CODE_SYMBOLS)


_CODE_WIDTH = 5


CODE_BITS = 27  # 37**5 < 2**27


MODE_BITS = 3  # 7 modes


#: Where the origin starts in a key: above the destination and the mode.
ORIGIN_SHIFT = CODE_BITS + MODE_BITS


#: Rank of each mode in a key (its place in code point order).
MODE_RANK = {mode: rank for rank, mode in enumerate(CODED_MODES)}


#: Share of an invalid code in a key: negative whatever the other two shares.
INVALID = -(2**60)


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


def pack_codes(codes: pd.Series) -> np.ndarray:
    """Pack codes into order-preserving integers.

    Parameters
    ----------
    codes
        Strings of 1 to 5 characters among ``0-9A-Z`` (missing values allowed).

    Returns
    -------
    numpy.ndarray
        int64 below ``2**27``, in the order of the codes (code point order);
        -1 for anything else (empty, longer, lower case, other scripts, missing).
    """
    return _pack(_symbols(codes))


def unpack_codes(packed: np.ndarray) -> np.ndarray:
    """Turn integers of :func:`pack_codes` back into codes (numpy strings)."""
    table = np.frombuffer(_CODE_SYMBOLS, dtype=np.uint8)
    chars = np.empty((len(packed), _CODE_WIDTH), dtype=np.uint8)
    rest = np.asarray(packed, dtype=np.int64)
    for j in range(_CODE_WIDTH - 1, -1, -1):
        rest, symbol = np.divmod(rest, _CODE_BASE)
        chars[:, j] = table[symbol]
    return chars.view(f"S{_CODE_WIDTH}").ravel().astype(f"U{_CODE_WIDTH}")


def code_table(uniques: pd.Series, *, abroad: bool) -> np.ndarray:
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
    digits_only = (
        (packed >= 0)
        & ((head >= low) & (head <= high)).all(axis=1)
        & ~((head[:, 0] == high) & (head[:, 1] == high))
    )
    valid = digits_only.copy()
    other = ~digits_only
    if other.any():
        rest = text[other]
        ok = is_commune_code(rest)
        if abroad:
            ok |= is_abroad_code(rest)
        valid[other] = ok.to_numpy(dtype=bool)
    return np.append(np.where(valid & (packed >= 0), packed, -1), -1)


def mode_table(uniques: pd.Series, coding: dict[str, str]) -> np.ndarray:
    """Rank of the mode of each distinct TRANS, -1 if unknown or missing; one more -1."""
    modes = map_trans(plain(uniques), coding)
    ranks = [MODE_RANK.get(mode, -1) if isinstance(mode, str) else -1 for mode in modes]
    return np.array([*ranks, -1], dtype=np.int64)


def shares(table: np.ndarray, factor: int) -> np.ndarray:
    """Multiply a code table by ``factor``, its -1 (invalid) entries made INVALID."""
    return np.where(table >= 0, table * factor, INVALID)


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the packed origins, packed destinations and mode ranks of keys."""
    mode = keys & ((1 << MODE_BITS) - 1)
    destination = (keys >> MODE_BITS) & ((1 << CODE_BITS) - 1)
    origin = keys >> ORIGIN_SHIFT
    return origin, destination, mode


def pair_of(keys: np.ndarray) -> np.ndarray:
    """Return the (origin, destination) part of keys: the key of mode rank 0."""
    return keys >> MODE_BITS
