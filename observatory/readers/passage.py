"""Read commune passage tables: INSEE's COG events or an etalab-style table.

Either layout (told apart by its columns) becomes ``old_code -> new_code`` pairs:
INSEE's "mouvements des communes" are replayed in date order, the etalab table
of historical codes is taken as it is. Chains are followed by
:func:`observatory.geography.resolve_code_chains`.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import (
    PASSAGE_COLUMNS,
    is_commune_code,
    listed_codes,
    resolve_code_chains,
)
from observatory.readers.delimited import DelimitedFile, read_strings

logger = logging.getLogger(__name__)


#: Columns of INSEE's "mouvements des communes" file, in published order.
MOUVEMENTS_COLUMNS = (
    "MOD",
    "DATE_EFF",
    "TYPECOM_AV",
    "COM_AV",
    "TNCC_AV",
    "NCC_AV",
    "NCCENR_AV",
    "LIBELLE_AV",
    "TYPECOM_AP",
    "COM_AP",
    "TNCC_AP",
    "NCC_AP",
    "NCCENR_AP",
    "LIBELLE_AP",
)


#: The mouvements columns this module uses (the others may be absent).
MOUVEMENTS_REQUIRED = (
    "MOD",
    "DATE_EFF",
    "TYPECOM_AV",
    "COM_AV",
    "TYPECOM_AP",
    "COM_AP",
)


#: Columns of the etalab-derived table of historical codes.
ETALAB_COLUMNS = ("code_ancien", "code_actuel", "nom_actuel", "nom_ancien", "source")


ETALAB_REQUIRED = ("code_ancien", "code_actuel")


# MOD 20 (création) and 21 (rétablissement) list the commune that gives territory
# before the new or restored one: that commune keeps existing, so such a
# COM -> COM row is not a disappearance.
_KEEPS_EXISTING = frozenset({"20", "21"})


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")


_PASSAGE_COLUMNS = list(PASSAGE_COLUMNS)


# --------------------------------------------------------------------- helpers
def _empty_passage() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="string") for c in _PASSAGE_COLUMNS},
    )


def _check_codes(
    codes: pd.Series, column: str, where: str, path: Path | None = None
) -> None:
    bad = ~is_commune_code(codes)
    if bad.any():
        msg = f"{where}: {column} must be a 5-character commune code; " + examples_at(
            codes[bad], codes[bad].index, "line"
        )
        raise DataError(msg, path=path, line=int(codes[bad].index[0]))


def _parse_dates(values: pd.Series, where: str) -> pd.Series:
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in _DATE_FORMATS:
        todo = parsed.isna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(values[todo], format=fmt, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        msg = f"{where}: DATE_EFF must be a date like 2019-01-01; " + examples_at(
            values[bad], values[bad].index, "line"
        )
        raise DataError(msg, line=int(values[bad].index[0]))
    return parsed


# --------------------------------------------------------------------- mouvements
_MOUVEMENTS = "mouvements des communes"


def _events(events: pd.DataFrame, until: date | None) -> pd.DataFrame:
    """Keep the required columns, stripped, with their ``date``, up to ``until``."""
    missing = [c for c in MOUVEMENTS_REQUIRED if c not in events.columns]
    if missing:
        msg = f"{_MOUVEMENTS}: missing column(s) {missing}; expected {list(MOUVEMENTS_COLUMNS)}"
        raise DataError(msg)
    ev = pd.DataFrame(
        {c: events[c].astype("string").str.strip() for c in MOUVEMENTS_REQUIRED}
    )
    ev["date"] = _parse_dates(ev["DATE_EFF"], _MOUVEMENTS)
    if until is not None:
        later = ev["date"] > pd.Timestamp(until)
        if later.any():
            logger.debug(
                "%s: %d row(s) after %s ignored", _MOUVEMENTS, int(later.sum()), until
            )
        ev = ev[~later]
    _check_codes(ev.loc[ev["TYPECOM_AV"] == "COM", "COM_AV"], "COM_AV", _MOUVEMENTS)
    _check_codes(ev.loc[ev["TYPECOM_AP"] == "COM", "COM_AP"], "COM_AP", _MOUVEMENTS)
    return ev


def _warn_unmapped(ev: pd.DataFrame) -> None:
    """Warn of communes that became déléguée/associée without a successor named."""
    # A COM that only has COMD/COMA "after" rows in an event has no chef-lieu
    # we could map it to: tell rather than guess.
    before_com = ev["TYPECOM_AV"] == "COM"
    deleguee = ev[before_com & ev["TYPECOM_AP"].isin(["COMD", "COMA"])]
    has_com = pd.MultiIndex.from_frame(
        ev.loc[before_com & (ev["TYPECOM_AP"] == "COM"), ["date", "COM_AV"]]
    )
    orphan = ~pd.MultiIndex.from_frame(deleguee[["date", "COM_AV"]]).isin(has_com)
    if orphan.any():
        codes = sorted(str(code) for code in deleguee.loc[orphan, "COM_AV"].unique())
        logger.warning(
            "%s: %d commune(s) became déléguée/associée without a COM 'after' row "
            "naming the commune they joined; left unmapped: %s",
            _MOUVEMENTS,
            len(codes),
            listed_codes(codes),
        )


def _successors(ev: pd.DataFrame) -> dict[str, set[str]]:
    """Replay the events by date: each vanished commune and its successors."""
    before_com = ev["TYPECOM_AV"] == "COM"
    after_com = ev["TYPECOM_AP"] == "COM"
    gone = ev[
        before_com
        & after_com
        & (ev["COM_AV"] != ev["COM_AP"])
        & ~ev["MOD"].isin(_KEEPS_EXISTING)
    ]
    alive_by_date = ev.loc[after_com, ["date", "COM_AP"]].groupby("date")["COM_AP"]
    alive_at: dict[Any, set[str]] = {d: set(codes) for d, codes in alive_by_date}
    gone_at: dict[Any, dict[Any, set[str]]] = {
        d: frame.groupby("COM_AV")["COM_AP"].agg(set).to_dict()
        for d, frame in gone.groupby("date")
    }
    successors: dict[str, set[str]] = {}
    for day in sorted(alive_at.keys() | gone_at.keys()):
        alive = alive_at.get(day, set())
        for code in alive:
            successors.pop(code, None)
        for old, new in gone_at.get(day, {}).items():
            # Listed as an existing COM on the same date: it only gave territory.
            if old not in alive:
                successors[old] = new
    return successors


def passage_from_mouvements(
    events: pd.DataFrame, until: date | None = None
) -> pd.DataFrame:
    """Turn INSEE's "mouvements des communes" into old -> latest code pairs.

    Events are replayed in ``DATE_EFF`` order. A commune disappears when a
    ``COM`` row leads to another ``COM`` code (fusion, commune nouvelle, code
    change); its successor is the ``COM`` "after" row of the event, never the
    ``COMD``/``COMA`` row that keeps its name as a commune déléguée or associée.
    A code that is a ``COM`` "after" row of a later event (restored, created or
    absorbing) exists again and loses its earlier successor. Chains are then
    followed, so a code merged twice maps to its latest code.

    Parameters
    ----------
    events
        The file's rows as strings, at least ``MOD, DATE_EFF, TYPECOM_AV,
        COM_AV, TYPECOM_AP, COM_AP``; the index is used as line numbers in errors.
    until
        Ignore events that take effect after this date (e.g. 1 January of the
        target geography's year).

    Returns
    -------
    pandas.DataFrame
        ``old_code``, ``new_code``: one row per pair; an old code with several
        new codes (territory shared out) keeps them all.

    Raises
    ------
    DataError
        Missing columns, bad dates or codes (with their line), or a cycle.
    """
    ev = _events(events, until)
    _warn_unmapped(ev)
    pairs = pd.DataFrame(
        [(old, new) for old, news in _successors(ev).items() for new in sorted(news)],
        columns=_PASSAGE_COLUMNS,
        dtype="string",
    )
    if pairs.empty:
        return _empty_passage()
    return (
        resolve_code_chains(pairs)
        .sort_values(_PASSAGE_COLUMNS)
        .reset_index(drop=True)
        .astype("string")
    )


# --------------------------------------------------------------------- files
def _csv_members(names: list[str]) -> list[str]:
    """Pick the CSV files of a zip archive."""
    return [name for name in names if name.lower().endswith(".csv")]


#: Most bytes read, decompressed: INSEE's mouvements and the etalab table of
#: historical codes are 1 to 2 MB.
MAX_BYTES = 64 << 20


def _passage_sep(header: str) -> str:
    return max((",", ";", "\t"), key=header.count)


def _read_table(path: Path) -> pd.DataFrame:
    """Every column as text, indexed by file line (the header is line 1)."""
    file = DelimitedFile(
        path, _csv_members, "CSV file", "a commune passage CSV", MAX_BYTES, _passage_sep
    )
    frame, where = read_strings(file)
    if frame.empty:
        msg = f"{where}: no data lines under the header: expected one line per code change"
        raise DataError(msg, path=path, line=2)
    return frame


def _etalab_passage(
    frame: pd.DataFrame, path: Path, until: date | None
) -> pd.DataFrame:
    """Old -> current codes of the etalab table, identity rows left out."""
    lower = {c.lower(): c for c in frame.columns}
    if until is not None:
        # No dates: codes go to the table's own year. Right when that year is
        # the target geography; say so rather than refuse.
        logger.warning(
            "%s: the etalab table has no event dates; old codes map to the "
            "codes of its own year whatever the target (%s)",
            path,
            until,
        )
    old = frame[lower["code_ancien"]].astype("string").str.strip()
    new = frame[lower["code_actuel"]].astype("string").str.strip()
    _check_codes(old, "code_ancien", str(path), path)
    _check_codes(new, "code_actuel", str(path), path)
    return (
        pd.DataFrame({"old_code": old, "new_code": new})
        .loc[lambda f: f["old_code"] != f["new_code"]]
        .drop_duplicates()
        .sort_values(_PASSAGE_COLUMNS)
        .reset_index(drop=True)
        .astype("string")
    )


def _mouvements_passage(
    frame: pd.DataFrame, path: Path, until: date | None
) -> pd.DataFrame:
    """Old -> latest codes of INSEE's mouvements, errors naming the file."""
    upper = {c.upper(): c for c in frame.columns}
    events = frame.rename(columns={upper[c]: c for c in MOUVEMENTS_REQUIRED})
    try:
        return passage_from_mouvements(events, until=until)
    except DataError as exc:
        msg = f"{path}: {exc}"
        raise DataError(msg, path=path, line=exc.line) from exc


def read_commune_passage(path: Path, until: date | None = None) -> pd.DataFrame:
    """Read a commune passage file (INSEE mouvements or etalab historical codes).

    Parameters
    ----------
    path
        INSEE's ``v_mvt_commune_YYYY.csv`` / ``mvtcommune_YYYY.csv`` or the
        etalab-derived ``code_ancien, code_actuel`` table; plain, gzipped or
        zipped CSV.
    until
        Mouvements only: ignore events that take effect after this date.

    Returns
    -------
    pandas.DataFrame
        ``old_code``, ``new_code`` (strings), one row per pair, identity rows
        left out. Mouvements are replayed so that each old code maps to its latest
        code (see :func:`passage_from_mouvements`); chains in other layouts are
        resolved by :func:`observatory.systems.harmonise.passage_map`.

    Raises
    ------
    DataError
        No such file, neither layout, missing columns, or bad values (with
        their line).
    """
    if not path.exists():
        msg = f"{path}: commune passage file not found"
        raise DataError(msg, path=path)
    frame = _read_table(path)
    upper = {c.upper() for c in frame.columns}
    lower = {c.lower() for c in frame.columns}
    expected = (
        f"expected INSEE mouvements des communes columns {list(MOUVEMENTS_COLUMNS)} "
        f"or etalab columns {list(ETALAB_COLUMNS)}; found {list(frame.columns)}"
    )
    required: tuple[str, ...]
    if any(c in lower for c in ETALAB_REQUIRED):
        layout, present, required = "etalab historical codes", lower, ETALAB_REQUIRED
    elif any(c in upper for c in MOUVEMENTS_REQUIRED):
        layout, present = "INSEE mouvements des communes", upper
        required = MOUVEMENTS_REQUIRED
    else:
        msg = f"{path}: not a commune passage file; {expected}"
        raise DataError(msg, path=path, line=1)
    missing = [c for c in required if c not in present]
    if missing:
        msg = f"{path}: missing column(s) {missing}; {expected}"
        raise DataError(msg, path=path, line=1)
    if layout == "etalab historical codes":
        passage = _etalab_passage(frame, path, until)
    else:
        passage = _mouvements_passage(frame, path, until)
    logger.info(
        "%s: %d obsolete commune code(s) -> %d code(s) (%s%s)",
        path,
        passage["old_code"].nunique(),
        passage["new_code"].nunique(),
        layout,
        f", events until {until}" if until is not None else "",
    )
    return passage
