"""Read commune passage tables: INSEE's COG events or an etalab-style table."""

from __future__ import annotations

import gzip
import io
import logging
from datetime import date
from pathlib import Path

import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import (
    is_commune_code,
)
from observatory.readers.text import read_text

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


_MAX_LISTED = 5


_PASSAGE_COLUMNS = ["old_code", "new_code"]


# --------------------------------------------------------------------- helpers
def _listed(values: list[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _empty_passage() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="string") for c in _PASSAGE_COLUMNS},
    )


def _check_codes(codes: pd.Series, column: str, where: str) -> None:
    bad = ~is_commune_code(codes)
    if bad.any():
        msg = f"{where}: {column} must be a 5-character commune code; " + examples_at(
            codes[bad], codes[bad].index, "line"
        )
        raise DataError(msg)


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
        raise DataError(msg)
    return parsed


def _resolve_chains(pairs: pd.DataFrame) -> pd.DataFrame:
    # Replace every new code that is itself an old code by its own new codes,
    # until no new code is an old code. A code that comes back to itself is a
    # cycle: the passage cannot say which code is the current one.
    pairs = pairs[pairs["old_code"] != pairs["new_code"]].drop_duplicates()
    for _ in range(len(pairs) + 1):
        chained = pairs["new_code"].isin(pairs["old_code"])
        if not chained.any():
            return pairs.reset_index(drop=True)
        following = pairs[chained].merge(
            pairs, left_on="new_code", right_on="old_code", suffixes=("", "_next")
        )
        pairs = pd.concat(
            [
                pairs[~chained],
                following[["old_code", "new_code_next"]].rename(
                    columns={"new_code_next": "new_code"}
                ),
            ],
            ignore_index=True,
        ).drop_duplicates()
        loops = pairs["old_code"] == pairs["new_code"]
        if loops.any():
            codes = sorted(pairs.loc[loops, "old_code"].unique().tolist())
            msg = (
                f"commune passage: cycle through code(s) {_listed(codes)}: following "
                "old_code -> new_code leads back to the same code, so no current "
                "code can be chosen; fix or remove these rows"
            )
            raise DataError(msg)
    msg = "commune passage: chains do not end (cycle)"  # pragma: no cover
    raise DataError(msg)  # pragma: no cover


# --------------------------------------------------------------------- passage
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
    """
    where = "mouvements des communes"
    missing = [c for c in MOUVEMENTS_REQUIRED if c not in events.columns]
    if missing:
        msg = (
            f"{where}: missing column(s) {missing}; expected {list(MOUVEMENTS_COLUMNS)}"
        )
        raise DataError(msg)
    ev = pd.DataFrame(
        {c: events[c].astype("string").str.strip() for c in MOUVEMENTS_REQUIRED}
    )
    ev["date"] = _parse_dates(ev["DATE_EFF"], where)
    if until is not None:
        later = ev["date"] > pd.Timestamp(until)
        if later.any():
            logger.debug(
                "%s: %d row(s) after %s ignored", where, int(later.sum()), until
            )
        ev = ev[~later]
    before_com = ev["TYPECOM_AV"] == "COM"
    after_com = ev["TYPECOM_AP"] == "COM"
    _check_codes(ev.loc[before_com, "COM_AV"], "COM_AV", where)
    _check_codes(ev.loc[after_com, "COM_AP"], "COM_AP", where)

    gone = ev[
        before_com
        & after_com
        & (ev["COM_AV"] != ev["COM_AP"])
        & ~ev["MOD"].isin(_KEEPS_EXISTING)
    ]
    # A COM that only has COMD/COMA "after" rows in an event has no chef-lieu
    # we could map it to: tell rather than guess.
    deleguee = ev[before_com & ev["TYPECOM_AP"].isin(["COMD", "COMA"])]
    has_com = pd.MultiIndex.from_frame(
        ev.loc[before_com & after_com, ["date", "COM_AV"]]
    )
    orphan = ~pd.MultiIndex.from_frame(deleguee[["date", "COM_AV"]]).isin(has_com)
    if orphan.any():
        codes = sorted(deleguee.loc[orphan, "COM_AV"].unique().tolist())
        logger.warning(
            "%s: %d commune(s) became déléguée/associée without a COM 'after' row "
            "naming the commune they joined; left unmapped: %s",
            where,
            len(codes),
            _listed(codes),
        )

    alive_by_date = ev.loc[after_com, ["date", "COM_AP"]].groupby("date")["COM_AP"]
    alive_at = {d: set(codes) for d, codes in alive_by_date}
    gone_at = {
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
    pairs = pd.DataFrame(
        [(old, new) for old, news in successors.items() for new in sorted(news)],
        columns=_PASSAGE_COLUMNS,
        dtype="string",
    )
    if pairs.empty:
        return _empty_passage()
    return (
        _resolve_chains(pairs)
        .sort_values(_PASSAGE_COLUMNS)
        .reset_index(drop=True)
        .astype("string")
    )


def _read_table(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            msg = f"{path}: not a valid gzip file: {exc}"
            raise DataError(msg) from exc
    text = read_text(path, raw)
    header = text.split("\n", 1)[0]
    sep = max((",", ";", "\t"), key=header.count)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, ValueError) as exc:
        msg = f"{path}: cannot parse as a CSV file: {exc}"
        raise DataError(msg) from exc
    frame.columns = [str(c).strip().strip('"') for c in frame.columns]
    frame.index = frame.index + 2  # line numbers: the header is line 1
    return frame


def read_commune_passage(path: Path, until: date | None = None) -> pd.DataFrame:
    """Read a commune passage file (INSEE mouvements or etalab historical codes).

    Parameters
    ----------
    path
        INSEE's ``v_mvt_commune_YYYY.csv`` / ``mvtcommune_YYYY.csv`` or the
        etalab-derived ``code_ancien, code_actuel`` table; plain or gzipped CSV.
    until
        Mouvements only: ignore events that take effect after this date.

    Returns
    -------
    pandas.DataFrame
        ``old_code``, ``new_code`` (strings), one row per pair, identity rows
        left out. Mouvements are replayed so that each old code maps to its latest
        code (see :func:`passage_from_mouvements`); chains in other layouts are
        resolved by :func:`passage_map`.
    """
    if not path.exists():
        msg = f"{path}: commune passage file not found"
        raise DataError(msg)
    frame = _read_table(path)
    upper = {c.upper(): c for c in frame.columns}
    lower = {c.lower(): c for c in frame.columns}
    expected = (
        f"expected INSEE mouvements des communes columns {list(MOUVEMENTS_COLUMNS)} "
        f"or etalab columns {list(ETALAB_COLUMNS)}; found {list(frame.columns)}"
    )
    if any(c in lower for c in ETALAB_REQUIRED):
        missing = [c for c in ETALAB_REQUIRED if c not in lower]
        if missing:
            msg = f"{path}: missing column(s) {missing}; {expected}"
            raise DataError(msg)
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
        _check_codes(old, "code_ancien", str(path))
        _check_codes(new, "code_actuel", str(path))
        passage = (
            pd.DataFrame({"old_code": old, "new_code": new})
            .loc[lambda f: f["old_code"] != f["new_code"]]
            .drop_duplicates()
            .sort_values(_PASSAGE_COLUMNS)
            .reset_index(drop=True)
            .astype("string")
        )
        layout = "etalab historical codes"
    elif any(c in upper for c in MOUVEMENTS_REQUIRED):
        missing = [c for c in MOUVEMENTS_REQUIRED if c not in upper]
        if missing:
            msg = f"{path}: missing column(s) {missing}; {expected}"
            raise DataError(msg)
        events = frame.rename(columns={upper[c]: c for c in MOUVEMENTS_REQUIRED})
        try:
            passage = passage_from_mouvements(events, until=until)
        except DataError as exc:
            msg = f"{path}: {exc}"
            raise DataError(msg) from exc
        layout = "INSEE mouvements des communes"
    else:
        msg = f"{path}: not a commune passage file; {expected}"
        raise DataError(msg)
    logger.info(
        "%s: %d obsolete commune code(s) -> %d code(s) (%s%s)",
        path,
        passage["old_code"].nunique(),
        passage["new_code"].nunique(),
        layout,
        f", events until {until}" if until is not None else "",
    )
    return passage
