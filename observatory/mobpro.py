"""INSEE's detailed commuting file FD_MOBPRO: flows by transport mode, distances.

FD_MOBPRO has one row per sampled employed person: residence ``COMMUNE`` (and
``ARM``, the arrondissement, in Paris, Lyon and Marseille; ``ZZZZZ`` elsewhere),
work place ``DCLT``, main transport mode ``TRANS`` and weight ``IPONDI``. Several
million rows: :func:`read_fd` reads it out of core with dask, mapping the one
pandas function :func:`aggregate_fd` over partitions, as tobler's dask wrapper
does, then summing the partial sums.

The result is a long table ``origin_commune, destination_commune, mode, workers``
(workers: sum of ``IPONDI``, all decimals kept). Arrondissements are **kept**
(``75104``, ``69381``...), as :func:`observatory.normalise.read_base_flux` keeps
them, so both sources compare pair by pair; :func:`observatory.flows.flows_epci`
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
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

try:
    from pyarrow import ArrowInvalid as _ArrowInvalid
except ImportError:  # pragma: no cover - pyarrow comes with dask[dataframe]

    class _ArrowInvalid(ValueError):  # type: ignore[no-redef]
        """Never raised: stands for pyarrow's parse error."""


from observatory.errors import ConfigError, DataError, SourceError
from observatory.normalise import (
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
_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
_MAX_LISTED = 5
#: Estimated bytes in memory per FD_MOBPRO row read (5 columns), for partitions.
_BYTES_PER_ROW = 100
_SPLIT_EVERY = 16


class _PartitionError(DataError):
    """A DataError raised in one partition; carries its number (picklable)."""

    def __init__(self, message: str, partition: int) -> None:
        super().__init__(message, partition)
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


def _all_valid(codes: pd.Series, *, abroad: bool) -> bool:
    # The code patterns run on distinct codes (a few thousand) only.
    if codes.isna().any():
        return False
    uniques = pd.Series(pd.unique(codes)).astype("string")
    ok = is_commune_code(uniques)
    if abroad:
        ok |= is_abroad_code(uniques)
    return bool(ok.fillna(False).all())


def _is_arrow_text(values: pd.Series) -> bool:
    return (
        isinstance(values.dtype, pd.StringDtype)
        and getattr(values.dtype, "storage", None) == "pyarrow"
    )


def _factorize(values: pd.Series) -> tuple[np.ndarray, Any]:
    """Integer codes (missing values are a code too) and the distinct values."""
    if _is_arrow_text(values):
        # Arrow's dictionary encoding: several times faster than pandas'
        # factorize of Arrow strings, and without the GIL.
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.array(values.array)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        encoded = pc.dictionary_encode(array, null_encoding="encode")
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = encoded.dictionary.to_pandas().astype(values.dtype).array
        return codes, uniques
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes.astype(np.int64), uniques


def _sum_by(keys: dict[str, pd.Series], workers: np.ndarray) -> pd.DataFrame:
    """Sum ``workers`` by ``keys`` (missing keys kept as groups), unsorted.

    A plain groupby: each key column is factorized once, the codes are combined
    into one integer per row, and the sums are a ``bincount``. Groups come in
    order of first appearance, as ``groupby(sort=False)``'s.
    """
    n = len(workers)
    combined = np.zeros(n, dtype=np.int64)
    radix = 1
    columns: list[tuple[str, np.ndarray, Any]] = []
    for name, values in keys.items():
        codes, uniques = _factorize(values)
        size = max(len(uniques), 1)
        if radix * size >= 2**62:  # re-number the combined codes first
            combined = pd.factorize(combined)[0].astype(np.int64)
            radix = int(combined.max()) + 1 if n else 1
        combined = combined * size + codes
        radix *= size
        columns.append((name, codes, uniques))
    groups, distinct = pd.factorize(combined)
    count = len(distinct)
    # Groups are numbered in order of first appearance: a group's first row is
    # where its number exceeds every number before.
    seen = np.maximum.accumulate(groups) if n else groups
    first = np.flatnonzero(groups > np.concatenate(([-1], seen[:-1])))
    out = pd.DataFrame(
        {name: uniques.take(codes[first]) for name, codes, uniques in columns}
    )
    out["workers"] = np.bincount(
        groups, weights=np.asarray(workers, dtype="float64"), minlength=count
    )
    return out


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


def _listed(values: pd.Series, numbers: np.ndarray, word: str) -> str:
    shown = [
        f"{word} {n}: {v!r}"
        for n, v in zip(
            numbers[:_MAX_LISTED], values.tolist()[:_MAX_LISTED], strict=False
        )
    ]
    more = len(numbers) - _MAX_LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


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
            + _listed(residence[bad], numbers[bad], word)
        )
    destination = frame["DCLT"].astype("string").str.strip()
    bad = (~(is_commune_code(destination) | is_abroad_code(destination))).to_numpy()
    if bad.any():
        problems.append(
            "DCLT must be a 5-character commune code or an abroad code (99xxx): "
            + _listed(destination[bad], numbers[bad], word)
        )
    coding = trans_coding(vintage)
    bad = _map_trans(frame["TRANS"], coding).isna().to_numpy()
    if bad.any():
        problems.append(
            f"TRANS must be one of {list(coding)} ({_coding_label(vintage)}): "
            + _listed(frame["TRANS"][bad], numbers[bad], word)
        )
    workers = _weights(frame["IPONDI"])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(workers) | (workers < 0)
    if bad.any():
        problems.append(
            "IPONDI must be a number >= 0: "
            + _listed(frame["IPONDI"][bad], numbers[bad], word)
        )
    return problems


def _raise_problems(frame: pd.DataFrame, vintage: int) -> None:
    problems = _row_problems(frame, vintage)
    msg = f"FD_MOBPRO RP{vintage}: " + "; ".join(problems or ["invalid values"])
    raise DataError(msg)


def _finish(table: pd.DataFrame, *, sort: bool = True) -> pd.DataFrame:
    out = table.loc[:, [*FLOW_KEYS, "workers"]].astype(
        dict.fromkeys(FLOW_KEYS, "string") | {"workers": "float64"}
    )
    if not sort:
        return out.reset_index(drop=True)
    order = _sort_order([out[key] for key in FLOW_KEYS])
    if order is None:
        return out.sort_values(list(FLOW_KEYS), ignore_index=True)
    return out.take(order).reset_index(drop=True)


def _sort_order(keys: list[pd.Series]) -> np.ndarray | None:
    """Row order sorting by ``keys`` (as ``sort_values``), or None to let pandas.

    Each key is factorized and its few distinct values sorted (code point order,
    as pandas' for strings); the ranks make one integer key per row: much faster
    than a lexsort of millions of strings. None when a key is missing somewhere
    or the ranks would not fit in 62 bits.
    """
    combined: np.ndarray | None = None
    radix = 1
    for values in keys:
        codes, uniques = _factorize(values)
        distinct = np.asarray(uniques, dtype=object)
        if pd.isna(distinct).any():
            return None
        radix *= max(len(distinct), 1)
        if radix >= 2**62:
            return None
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
        ranks = rank[codes]
        combined = ranks if combined is None else combined * len(distinct) + ranks
    if combined is None:
        return None
    return np.argsort(combined, kind="stable")


def aggregate_fd(
    frame: pd.DataFrame, vintage: int, *, sort: bool = True
) -> pd.DataFrame:
    """Sum FD_MOBPRO weights by residence commune, work commune and mode.

    The same function runs on a whole frame in memory and on each dask partition
    in :func:`read_fd`: summing its results again gives the total.

    Parameters
    ----------
    frame
        Columns ``COMMUNE``, ``ARM``, ``DCLT``, ``TRANS``, ``IPONDI`` as in the file
        (codes as strings; ``TRANS`` may be numeric; others are ignored).
    vintage
        Census year, which sets the ``TRANS`` coding (see :func:`trans_to_mode`).
    sort
        Sort by the three keys (default); :func:`read_fd`'s partitions skip it,
        their sums are summed again.

    Returns
    -------
    pandas.DataFrame
        ``origin_commune`` (``ARM`` when it is an arrondissement of Paris, Lyon or
        Marseille, ``COMMUNE`` otherwise: arrondissements are kept),
        ``destination_commune`` (``DCLT`` as given, abroad codes included),
        ``mode`` (:data:`MODES`) and ``workers`` (sum of ``IPONDI``, float64),
        sorted by the three keys.

    Raises
    ------
    DataError
        Missing columns, or bad values, all listed with their row (1 = first
        row of ``frame``).
    """
    missing = [c for c in FD_COLUMNS if c not in frame.columns]
    if missing:
        msg = (
            f"FD_MOBPRO frame: missing column(s) {missing}; expected {list(FD_COLUMNS)}, "
            f"found {list(frame.columns)}"
        )
        raise DataError(msg)
    coding = trans_coding(vintage)
    workers = _weights(frame["IPONDI"])
    with np.errstate(invalid="ignore"):
        if not np.isfinite(workers).all() or (workers < 0).any():
            _raise_problems(frame, vintage)
    # One plain groupby on the raw codes, as read: the stripping, the
    # arrondissement rule, the checks and the mode mapping then run on distinct
    # (COMMUNE, ARM, DCLT, TRANS) groups, not on every person. A bad group sends
    # back to the row by row description of the whole frame.
    raw = ["COMMUNE", "ARM", "DCLT", "TRANS"]
    partial = _sum_by({column: frame[column] for column in raw}, workers)
    origin = _residence(partial)
    destination = partial["DCLT"].astype("string").str.strip()
    modes = _map_trans(_plain(partial["TRANS"]), coding)
    if not (
        modes.notna().all()
        and _all_valid(origin, abroad=False)
        and _all_valid(destination, abroad=True)
    ):
        _raise_problems(frame, vintage)
    table = _sum_by(
        {
            "origin_commune": origin,
            "destination_commune": destination,
            "mode": modes,
        },
        partial["workers"].to_numpy(),
    )
    return _finish(table, sort=sort)


def _aggregate_partition(
    frame: pd.DataFrame, vintage: int, number: int
) -> tuple[pd.DataFrame, int]:
    try:
        return aggregate_fd(frame, vintage, sort=False), len(frame)
    except DataError as exc:
        raise _PartitionError(str(exc), number) from exc


def _combine_partials(*parts: tuple[pd.DataFrame, int]) -> tuple[pd.DataFrame, int]:
    """Sum partial sums of :func:`aggregate_fd` (and their row counts)."""
    tables = [table for table, _ in parts]
    rows = sum(n for _, n in parts)
    if len(tables) == 1:  # already one row per group
        return tables[0], rows
    both = pd.concat(tables, ignore_index=True)
    # Each table has one row per group: only groups of an origin found in
    # several tables (the file is ordered by residence: few) need summing.
    codes, uniques = _factorize(both["origin_commune"])
    part = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    seen = np.bincount(
        codes * len(tables) + part, minlength=len(uniques) * len(tables)
    ).reshape(len(uniques), len(tables))
    shared = ((seen > 0).sum(axis=1) > 1)[codes]
    if not shared.any():
        return both, rows
    again = both[shared]
    summed = _sum_by(
        {key: again[key] for key in FLOW_KEYS}, again["workers"].to_numpy("float64")
    )
    out = pd.concat([both[~shared], _finish(summed, sort=False)], ignore_index=True)
    return out, rows


def commune_pairs(flows_by_mode: pd.DataFrame) -> pd.DataFrame:
    """Sum flows over modes: ``origin_commune, destination_commune, workers``.

    The result has the shape of :attr:`observatory.normalise.CommuneFlows.table`,
    for :func:`observatory.flows.flows_epci` and :func:`compare_with_base_flux`.
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
                # Streamed in 1 MiB chunks: memory stays bounded whatever the size.
                with archive.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, EOFError) as exc:
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
    with source.open("rb") as handle:
        first = handle.readline(1 << 16)
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
    return dd.read_csv(
        str(source),
        sep=";",
        usecols=list(FD_COLUMNS),
        dtype=dict.fromkeys(FD_COLUMNS, str),
        # Arrow's parser: about 3 times faster per block, and outside the GIL,
        # so the threads scheduler parses blocks in parallel. Strings stay Arrow
        # strings; :func:`_weights` parses IPONDI with Arrow too.
        engine="pyarrow",
        keep_default_na=False,
        blocksize=blocksize,
        # Codes are ASCII. Arrow checks UTF-8 only in the columns read, and
        # decodes it natively (latin-1 goes through Python's codec, with the
        # GIL): UTF-8 unless the header is not.
        encoding="utf-8-sig" if bom else ("utf-8" if utf8 else "latin-1"),
    )


def _read_row_groups(groups: tuple[int, ...], source: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    # Codes as Arrow strings (read_dictionary= measured slower: the
    # categoricals' conversions cost more than the strings they save).
    table = pq.ParquetFile(source).read_row_groups(
        list(groups), columns=list(FD_COLUMNS)
    )
    return table.to_pandas()


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
    meta = parquet.schema_arrow.empty_table().select(list(FD_COLUMNS)).to_pandas()
    return dd.from_map(
        _read_row_groups,
        chunks,
        args=[str(source)],
        meta=meta,
        label="read-fd-parquet",
        enforce_metadata=False,
    )


def _scheduler_kind(scheduler: str | None) -> str:
    if scheduler is None:
        return "threads"
    if scheduler in _LOCAL_SCHEDULERS:
        return scheduler
    if re.fullmatch(r"(?:tcp|tls|inproc|ucx|ws|wss)://\S+", scheduler):
        return "distributed"
    msg = (
        f"scheduler must be one of {list(_LOCAL_SCHEDULERS)} or a dask.distributed "
        f"scheduler address such as 'tcp://127.0.0.1:8786', got {scheduler!r}"
    )
    raise ConfigError(msg)


def _computer(
    kind: str, scheduler: str | None, progress: bool, stack: contextlib.ExitStack
) -> Callable[..., tuple]:
    import dask

    if kind != "distributed":
        show = progress and sys.stderr.isatty()

        def compute_local(*collections: Any) -> tuple:
            if show:
                from dask.diagnostics import ProgressBar

                with ProgressBar(out=sys.stderr):
                    return dask.compute(*collections, scheduler=kind)
            return dask.compute(*collections, scheduler=kind)

        return compute_local

    try:
        from distributed import Client
        from distributed import progress as progress_bar
    except ImportError as exc:
        msg = f"scheduler={scheduler!r} needs dask.distributed: pip install distributed"
        raise ConfigError(msg) from exc
    try:
        client = stack.enter_context(
            Client(scheduler, timeout="30s", set_as_default=False)
        )
    except OSError as exc:  # TimeoutError and connection errors
        msg = f"cannot reach the dask scheduler at {scheduler}: {exc}"
        raise SourceError(msg) from exc
    show = progress and sys.stdout.isatty()  # distributed draws on stdout

    def compute_distributed(*collections: Any) -> tuple:
        futures = client.compute(list(collections))
        if show:
            progress_bar(futures)
        return tuple(client.gather(futures))

    return compute_distributed


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


def _count_pairs(table: pd.DataFrame) -> int:
    # The table is sorted by pair then mode: a pair starts where either code
    # differs from the row before.
    if len(table) == 0:
        return 0
    same = np.ones(len(table), dtype=bool)
    for key in PAIR_KEYS:
        codes = pd.factorize(table[key])[0]
        same[1:] &= codes[1:] == codes[:-1]
    return int(len(table) - same[1:].sum())


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
        Bytes per partition (``"64MiB"``): CSV text, or the estimated size in
        memory of the Parquet columns read (whole row groups; ~100 bytes a row,
        so a national file's row groups of 1 million rows are one partition each).
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
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - depends on the install
        msg = "read_fd needs dask: pip install 'dask[dataframe]'"
        raise ImportError(msg) from exc

    path = Path(path)
    if not path.is_file():
        msg = f"{path}: FD_MOBPRO file not found"
        raise SourceError(msg)
    kind = _scheduler_kind(scheduler)
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
        # aggregate_fd on each partition, then the sum of the partial sums as a
        # tree of partial sums, 16 at a time (bounded memory); rows counted on
        # the way.
        from dask import delayed

        level = [
            delayed(_aggregate_partition, pure=True)(part, vintage, number)
            for number, part in enumerate(ddf.to_delayed())
        ]
        while True:
            level = [
                delayed(_combine_partials, pure=True)(*level[i : i + _SPLIT_EVERY])
                for i in range(0, len(level), _SPLIT_EVERY)
            ]
            if len(level) == 1:
                break
        compute = _computer(kind, scheduler, progress, stack)
        logger.info(
            "%s: RP%d, %s, %d partition(s), scheduler %s",
            where,
            vintage,
            fmt,
            ddf.npartitions,
            scheduler or kind,
        )
        try:
            ((totals, n_rows),) = compute(level[0])
        except _PartitionError as exc:
            detail = _locate(
                ddf, exc.partition, vintage, compute, first=first, word=word
            )
            msg = f"{where}: {detail or exc}"
            raise DataError(msg) from exc
        except (pd.errors.ParserError, UnicodeDecodeError, _ArrowInvalid) as exc:
            msg = f"{where}: cannot parse as a ';'-separated FD_MOBPRO {fmt}: {exc}"
            raise DataError(msg) from exc
        partitions = int(ddf.npartitions)

    table = _finish(totals)
    by_mode = table.groupby("mode", observed=True)["workers"].sum()
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {
        "path": str(path),
        "member": member,
        "format": fmt,
        "vintage": vintage,
        "trans_coding": _coding_label(vintage),
        "rows_read": int(n_rows),
        "workers_total": round(float(table["workers"].sum()), 3),
        "workers_by_mode": {
            mode: round(float(by_mode[mode]), 3) for mode in MODES if mode in by_mode
        },
        "triples": len(table),
        "pairs": _count_pairs(table),
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
    communes: gpd.GeoDataFrame, code_column: str = "commune_code"
) -> pd.DataFrame:
    """Return the representative point and area of each commune, in EPSG:2154.

    Representative points lie inside the polygon (a centroid may not). The frame
    returned is what :func:`distance_km` and :func:`person_km` take as ``points``.

    Parameters
    ----------
    communes
        Polygons with their code, e.g. from
        :func:`observatory.normalise.read_communes`.
    code_column
        Column holding the commune code.

    Returns
    -------
    pandas.DataFrame
        Index: commune code; columns ``x``, ``y`` (metres) and ``area_km2``.
    """
    return _as_points(communes, code_column)


def _as_points(
    points: gpd.GeoSeries | gpd.GeoDataFrame | pd.DataFrame,
    code_column: str = "commune_code",
) -> pd.DataFrame:
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        if points.crs is None:
            msg = f"points: no CRS; expected {TARGET_CRS} (Lambert-93) or any CRS to reproject from"
            raise DataError(msg)
        geo = points.to_crs(TARGET_CRS)
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
        :func:`observatory.normalise.read_base_flux`).
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
