"""How FD_MOBPRO is coded: its columns, the ``TRANS`` coding of each vintage, its values.

The columns read, the ``TRANS`` code -> harmonised mode mapping of each census
vintage (5 modes up to RP 2016, 6 from RP 2017), the residence rule (``ARM`` in
Paris, Lyon and Marseille), the decoding of weights, and the description of
every bad value with its row or line.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import (
    ARRONDISSEMENT_RANGES,
    MAX_WORKERS,
    is_abroad_code,
    is_commune_code,
)

#: Columns read from the file.
FD_COLUMNS: tuple[str, ...] = ("COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI")


#: Last census vintage whose ``TRANS`` has 5 modes. From RP 2017 on, bicycles
#: and motorised two-wheelers are apart: the questionnaire split them in the 2015
#: annual survey, and RP 2017 (surveys 2015-2019) is the first vintage made only
#: of answers to the new question. Public code reading FD_MOBPRO_2017 and
#: FD_MOBPRO_2018 decodes 3 = bicycle, 4 = motorised two-wheeler, 6 = public
#: transport. [verify against INSEE's Varmod_MOBPRO_2017/2018 before relying on
#: RP 2017-2018 two-wheeler shares.]
LAST_FIVE_MODE_VINTAGE = 2016


#: ``TRANS`` codes of RP 2016 and earlier. ``two_wheel`` is the single
#: two-wheeler class, bicycles and motorised together: it is never split.
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


#: Every mode a ``TRANS`` code decodes to, in code point order: the modes of
#: :data:`observatory.systems.modes.MODES`, each coding listing its own in
#: that display order.
CODED_MODES: tuple[str, ...] = tuple(
    sorted({*TRANS_FIVE_MODES.values(), *TRANS_SIX_MODES.values()})
)


ARRONDISSEMENTS = frozenset(
    str(code)
    for first, last, _ in ARRONDISSEMENT_RANGES
    for code in range(first, last + 1)
)


_INTEGRAL = re.compile(r"^([0-9]+)\.0*$")


# --------------------------------------------------------------------- TRANS
def trans_coding(vintage: int) -> dict[str, str]:
    """Return the ``TRANS`` code -> mode mapping of a census vintage.

    Raises
    ------
    DataError
        ``vintage`` is not a census year from 2006 (the first FD_MOBPRO).
    """
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


def coding_label(vintage: int) -> str:
    """Say which coding a vintage has: ``RP2021 has 6 modes (RP >= 2017)``."""
    if vintage <= LAST_FIVE_MODE_VINTAGE:
        return f"RP{vintage} has 5 modes (RP <= {LAST_FIVE_MODE_VINTAGE})"
    return f"RP{vintage} has 6 modes (RP >= {LAST_FIVE_MODE_VINTAGE + 1})"


def map_trans(trans: pd.Series, coding: dict[str, str]) -> pd.Series:
    """Map ``TRANS`` codes to modes by ``coding``; anything else gives ``<NA>``."""
    # "5", 5, 5.0 and "5.0" are the same code. Work on the few distinct values,
    # not on every row.
    codes, uniques = pd.factorize(trans, use_na_sentinel=True)
    text = pd.Series(uniques).astype("string").str.strip()
    text = text.str.replace(_INTEGRAL, r"\1", regex=True)
    # Code -1 (missing value) picks the last: None.
    modes = np.append(text.map(coding).to_numpy(dtype=object), [None])
    return pd.Series(modes[codes], index=trans.index, dtype="string")


def trans_to_mode(trans: pd.Series, vintage: int) -> pd.Series:
    """Translate ``TRANS`` codes into harmonised modes.

    Parameters
    ----------
    trans
        Codes as strings, integers or floats (``5.0`` in the RP 2022 Parquet file).
    vintage
        Census year: RP 2016 and earlier have 5 modes, RP 2017 and later 6.

    Returns
    -------
    pandas.Series
        Mode names (string dtype, among
        :data:`observatory.systems.modes.MODES`), same index.

    Raises
    ------
    DataError
        For codes outside the vintage's coding (missing values included).
    """
    coding = trans_coding(vintage)
    modes = map_trans(trans, coding)
    unknown = modes.isna()
    if unknown.any():
        found = sorted(
            {"<missing>" if pd.isna(v) else repr(v) for v in trans[unknown.to_numpy()]}
        )
        msg = (
            f"RP{vintage}: unknown TRANS code(s) {', '.join(found[:10])}; "
            f"expected {list(coding)}: {coding_label(vintage)}"
        )
        raise DataError(msg)
    return modes


# --------------------------------------------------------------------- values
def plain(values: pd.Series) -> pd.Series:
    """Return a categorical column as its categories' dtype, others as they are."""
    # Dictionary-encoded Parquet columns arrive as categoricals.
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(values.cat.categories.dtype)
    return values


def residence(frame: pd.DataFrame) -> pd.Series:
    """Return the residence of each row: ``ARM`` if an arrondissement, else ``COMMUNE``."""
    commune = frame["COMMUNE"].astype("string").str.strip()
    arm = frame["ARM"].astype("string").str.strip()
    return commune.mask(arm.isin(ARRONDISSEMENTS).fillna(False), arm)


def weights(ipondi: pd.Series) -> np.ndarray:
    """Decode ``IPONDI`` as float64: NaN where it is not a number."""
    ipondi = plain(ipondi)
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
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.isna().any():  # a decimal comma, rarely
        numbers = pd.to_numeric(
            text.str.replace(",", ".", regex=False), errors="coerce"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


#: What an ``IPONDI`` weight must be, for messages.
WEIGHT_RULE = f"IPONDI must be a number >= 0 and <= {MAX_WORKERS:,} (the employed people of France)"


def plausible_weights(workers: np.ndarray) -> np.ndarray:
    """Tell which weights are numbers from 0 to :data:`~observatory.geography.MAX_WORKERS`."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(workers) & (workers >= 0) & (workers <= MAX_WORKERS)


def row_problems(
    frame: pd.DataFrame, vintage: int, *, first: int = 1, word: str = "row"
) -> tuple[list[str], int | None]:
    """Describe every bad value of an FD_MOBPRO frame, rows numbered from ``first``.

    Returns
    -------
    tuple
        One sentence per column with bad values (up to five examples each), and
        the number of the first bad row (None when every value is good).
    """
    numbers = np.arange(len(frame)) + first
    problems = []
    bad_rows = np.zeros(len(frame), dtype=bool)

    def add(bad: np.ndarray, values: pd.Series, what: str) -> None:
        nonlocal bad_rows
        if bad.any():
            problems.append(what + examples_at(values[bad], numbers[bad], word))
            bad_rows |= bad

    where = residence(frame)
    add(
        (~is_commune_code(where)).to_numpy(),
        where,
        "COMMUNE (or ARM) must be a 5-character commune code: ",
    )
    destination = frame["DCLT"].astype("string").str.strip()
    add(
        (~(is_commune_code(destination) | is_abroad_code(destination))).to_numpy(),
        destination,
        "DCLT must be a 5-character commune code or an abroad code (99xxx): ",
    )
    coding = trans_coding(vintage)
    add(
        map_trans(frame["TRANS"], coding).isna().to_numpy(),
        frame["TRANS"],
        f"TRANS must be one of {list(coding)} ({coding_label(vintage)}): ",
    )
    workers = weights(frame["IPONDI"])
    add(~plausible_weights(workers), frame["IPONDI"], WEIGHT_RULE + ": ")
    first_bad = int(numbers[bad_rows][0]) if bad_rows.any() else None
    return problems, first_bad


def raise_problems(frame: pd.DataFrame, vintage: int) -> None:
    """Raise the :class:`DataError` listing every bad value of ``frame``."""
    problems, _ = row_problems(frame, vintage)
    problems = problems or [
        "invalid codes: COMMUNE, ARM and DCLT must be written with ASCII digits "
        "and capital letters"
    ]
    msg = f"FD_MOBPRO RP{vintage}: " + "; ".join(problems)
    raise DataError(msg)
