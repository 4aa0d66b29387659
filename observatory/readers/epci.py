"""Read INSEE's EPCI composition (xlsx with title rows, or a CSV export), zipped or not.

The EPCI list (code, name, nature) and the commune -> EPCI composition, checked
row by row; communes outside any EPCI are left out. INSEE publishes the
workbook inside a zip (``epci_au_01-01-2026.zip`` holding
``EPCI_au_01-01-2026.xlsx``): it is read from the archive directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from observatory.core.archives import compression_of, open_member
from observatory.core.errors import MAX_LISTED, DataError, examples_at
from observatory.geography import KNOWN_NATURES, NO_EPCI, SIREN, is_commune_code
from observatory.readers.delimited import DelimitedFile, read_strings
from observatory.readers.text import (
    check_exists,
    clean_str,
    find_header,
    sniff_sep,
    workbook_else_csv,
)
from observatory.readers.workbook import read_sheets

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EpciComposition:
    """INSEE's EPCI list and commune composition."""

    epci: pd.DataFrame  # epci_code, epci_name, epci_nature
    composition: pd.DataFrame  # commune_code, commune_name, epci_code


_SHEETS = ("EPCI", "Composition_communale")


def _read_workbook(
    path: Path, data: bytes | None = None, where: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the composition and EPCI sheets of INSEE's workbook, under their headers.

    ``data`` holds the workbook's bytes when it was read from a zip archive,
    ``where`` then names it (``path [member]``).
    """
    where = where or str(path)
    sheets, names = read_sheets(path, data, _SHEETS, where)
    missing = [s for s in _SHEETS if s not in sheets]
    if missing:
        msg = f"{where}: missing sheet(s) {missing}; found {names} (INSEE's file has 'EPCI' and 'Composition_communale')"
        raise DataError(msg, path=path)
    comp = find_header(
        sheets["Composition_communale"],
        ("CODGEO", "EPCI"),
        path,
        "Composition_communale",
        where=where,
    )
    epci = find_header(
        sheets["EPCI"], ("EPCI", "NATURE_EPCI"), path, "EPCI", where=where
    )
    return comp, epci


def _read_csv_export(
    path: Path, epci_list: Path | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """Read the composition CSV (and the EPCI list CSV), indexed by file line.

    Also returns the composition's name for messages (``path [member]`` in a zip).
    """
    file = DelimitedFile(
        path,
        workbook_else_csv,
        _MEMBER,
        "an EPCI composition CSV",
        MAX_BYTES,
        sniff_sep,
    )
    comp, where = read_strings(file)
    if epci_list is None:
        return comp, None, where
    check_exists(epci_list, "EPCI list")
    listing = DelimitedFile(
        epci_list,
        workbook_else_csv,
        "CSV file",
        "an EPCI list CSV",
        MAX_BYTES,
        sniff_sep,
    )
    epci_sheet, _ = read_strings(listing)
    return comp, epci_sheet, where


def _refuse(
    bad: pd.Series, values: pd.Series, what: str, word: str, path: Path
) -> None:
    """Raise a :class:`DataError` quoting the ``bad`` values with their rows."""
    if bad.any():
        at = values.index[bad.to_numpy()]
        msg = what + examples_at(values[bad].tolist(), at, word)
        raise DataError(msg, path=path, line=int(at[0]))


def _checked_composition(
    comp: pd.DataFrame, where: str, word: str, path: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check codes row by row; return the rows kept and the composition table."""
    missing_cols = [c for c in ("CODGEO", "EPCI") if c not in comp.columns]
    if missing_cols:
        msg = f"{where}: missing column(s) {missing_cols}; expected CODGEO, LIBGEO, EPCI, LIBEPCI, ...; found {list(comp.columns)}"
        raise DataError(msg, path=path)
    comp = comp.assign(CODGEO=clean_str(comp["CODGEO"]), EPCI=clean_str(comp["EPCI"]))
    comp = comp[comp["CODGEO"].notna() & (comp["CODGEO"] != "")]
    codes, epci = comp["CODGEO"], comp["EPCI"]
    _refuse(
        ~is_commune_code(codes),
        codes,
        f"{where}: CODGEO must be a 5-character commune code; ",
        word,
        path,
    )
    siren = epci.str.fullmatch(SIREN.pattern).fillna(False) | (epci == NO_EPCI)
    _refuse(
        ~siren,
        epci,
        f"{where}: EPCI must be a 9-digit SIREN (or {NO_EPCI}); ",
        word,
        path,
    )
    _refuse(
        codes.duplicated(keep=False),
        codes,
        f"{where}: each commune must appear once; ",
        word,
        path,
    )
    comp = comp[comp["EPCI"] != NO_EPCI]
    composition = pd.DataFrame(
        {
            "commune_code": comp["CODGEO"].to_numpy(),
            "commune_name": clean_str(comp["LIBGEO"]).to_numpy()
            if "LIBGEO" in comp
            else pd.NA,
            "epci_code": comp["EPCI"].to_numpy(),
        }
    ).astype("string")
    return comp, composition


def _epci_table(
    table: pd.DataFrame, path: Path, epci_list: Path | None
) -> pd.DataFrame:
    """Build the EPCI list: ``epci_code``, ``epci_name``, ``epci_nature``, one row each."""
    need = [c for c in ("EPCI", "NATURE_EPCI") if c not in table.columns]
    if need:
        msg = f"{epci_list or path}: EPCI list lacks column(s) {need}; found {list(table.columns)}"
        raise DataError(msg, path=epci_list or path)
    epci = pd.DataFrame(
        {
            "epci_code": clean_str(table["EPCI"]).to_numpy(),
            "epci_name": clean_str(table["LIBEPCI"]).to_numpy()
            if "LIBEPCI" in table
            else pd.NA,
            "epci_nature": clean_str(table["NATURE_EPCI"]).to_numpy(),
        }
    ).astype("string")
    epci = epci[epci["epci_code"].str.fullmatch(SIREN.pattern).fillna(False)]
    epci = epci.drop_duplicates("epci_code").reset_index(drop=True)
    unknown = sorted(set(epci["epci_nature"].dropna()) - set(KNOWN_NATURES))
    if unknown:
        logger.warning("%s: unexpected NATURE_EPCI value(s) %s", path, unknown)
    return epci


_WORKBOOK, _CSV = (".xlsx", ".xlsm"), (".csv", ".txt")

_MEMBER = "EPCI composition (.xlsx workbook or .csv)"

#: Most bytes read from a composition CSV or a workbook in a zip, decompressed:
#: INSEE's are a few MB.
MAX_BYTES = 64 << 20


def read_epci_composition(path: Path, epci_list: Path | None = None) -> EpciComposition:
    """Read INSEE's EPCI composition (xlsx or CSV).

    Parameters
    ----------
    path
        The official ``EPCI_au_01-01-YYYY.xlsx`` (sheets ``EPCI`` and
        ``Composition_communale``) or a CSV export of the composition sheet with
        columns ``CODGEO``, ``EPCI`` (and ``LIBGEO``, ``LIBEPCI``, ``NATURE_EPCI``);
        either may be the one workbook (or CSV) of a zip archive, as INSEE
        publishes it (``epci_au_01-01-YYYY.zip``).
    epci_list
        For a CSV without ``NATURE_EPCI``: a CSV export of the ``EPCI`` sheet.

    Returns
    -------
    EpciComposition
        ``epci`` (epci_code, epci_name, epci_nature) and ``composition``
        (commune_code, commune_name, epci_code). Communes outside any EPCI
        (``ZZZZZZZZZ``) are left out.

    Raises
    ------
    SourceError
        A file does not exist.
    DataError
        Unreadable file (or larger than the bounds), a zip without exactly one
        workbook (or CSV), missing sheets or columns, no commune, bad or
        repeated codes (naming the row or line), or EPCI of the composition not
        in the list.
    """
    check_exists(path, "EPCI composition")
    # An xlsx workbook is a zip archive itself: only another file is opened as one.
    if path.suffix.lower() not in _WORKBOOK and compression_of(path) == "zip":
        with open_member(
            path, workbook_else_csv, what=_MEMBER, limit=MAX_BYTES
        ) as member:
            name, label = Path(member.name or ""), member.where
            data = member.stream.read() if name.suffix.lower() in _WORKBOOK else None
    else:
        data, name, label = None, path, str(path)
    suffix = name.suffix.lower()
    epci_sheet: pd.DataFrame | None
    if suffix in _WORKBOOK:
        comp, epci_sheet = _read_workbook(path, data, label)
        where, word = f"{label}: sheet 'Composition_communale'", "row"
    elif suffix in _CSV:
        comp, epci_sheet, where = _read_csv_export(path, epci_list)
        word = "line"
    else:
        msg = f"{path}: unsupported EPCI composition format {suffix!r}; expected .xlsx or .csv (or a zip holding one)"
        raise DataError(msg, path=path)
    comp, composition = _checked_composition(comp, where, word, path)
    if composition.empty:
        msg = f"{where}: no commune in an EPCI under the header: expected one {word} per commune (CODGEO, EPCI)"
        raise DataError(msg, path=path)
    if epci_sheet is None and "NATURE_EPCI" not in comp.columns:
        msg = (
            f"{path}: no NATURE_EPCI column to tell métropoles apart; add it, use INSEE's xlsx, "
            "or point [inputs] epci_list to a CSV export of the 'EPCI' sheet"
        )
        raise DataError(msg, path=path)
    epci = _epci_table(comp if epci_sheet is None else epci_sheet, path, epci_list)
    orphans = sorted(set(composition["epci_code"]) - set(epci["epci_code"]))
    if orphans:
        msg = f"{path}: EPCI {orphans[:MAX_LISTED]} appear in the composition but not in the EPCI list"
        raise DataError(msg, path=path)
    return EpciComposition(epci=epci, composition=composition.reset_index(drop=True))
