"""Read INSEE's attraction areas of cities (AAV 2020) by commune, zipped or not.

INSEE publishes ``AAV2020_au_01-01-YYYY.zip`` holding one workbook
(``AAV2020_au_01-01-YYYY.xlsx``) whose sheet ``Composition_communale`` lists each
commune of the geography of 1 January YYYY (``CODGEO, LIBGEO, AAV2020,
LIBAAV2020, CATEAAV2020, DEP, REG``, under a few title rows) and whose sheet
``AAV2020`` lists the areas (``AAV2020, LIBAAV2020, TAAV2017, TDAAV2017,
NB_COM``). CSV exports with the same columns are read too, and so is the
commune table of public tools that rename them (``geo_code, name, aav,
cate_aav``), with its list of areas (``aav, aav_name, aav_type``) beside it.

Checks, each naming the file and the line (or row): 5-character commune codes,
each once; 3-character area codes (``000`` outside any area; ``BAL``, ``GEN``...
for the French part of cross-border areas); categories 11, 12, 13 (poles), 20
(crown) or 30 (outside), and 30 exactly for the communes of area ``000``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from observatory.core.archives import compression_of, open_member
from observatory.core.errors import DataError, examples_at
from observatory.geography import is_commune_code
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

#: INSEE's CATEAAV2020 codes: 11 commune-centre, 12 other commune of the main
#: pole, 13 commune of a secondary pole, 20 crown, 30 outside any area.
AAV_CATEGORIES = ("11", "12", "13", "20", "30")

#: The area code of communes outside any attraction area.
OUTSIDE_AAV = "000"

_AAV_CODE = re.compile(r"^[0-9A-Z]{3}$")

#: Column names of each known layout, as canonical name -> candidates.
_COMMUNE_COLUMNS: dict[str, tuple[str, ...]] = {
    "commune_code": ("CODGEO", "geo_code"),
    "commune_name": ("LIBGEO", "name"),
    "aav_code": ("AAV2020", "aav"),
    "aav_name": ("LIBAAV2020", "aav_name"),
    "aav_category": ("CATEAAV2020", "cate_aav"),
}
_AREA_COLUMNS: dict[str, tuple[str, ...]] = {
    "aav_code": ("AAV2020", "aav"),
    "aav_name": ("LIBAAV2020", "aav_name"),
    "aav_size_class": ("TAAV2017", "aav_type"),
}
_REQUIRED = ("commune_code", "aav_code", "aav_category")


@dataclass(frozen=True, slots=True)
class AttractionAreas:
    """INSEE's AAV 2020: the area and category of each commune, and the areas."""

    communes: pd.DataFrame  # commune_code, commune_name, aav_code, aav_category
    areas: pd.DataFrame  # aav_code, aav_name, aav_size_class


def _columns(frame: pd.DataFrame, wanted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Map each canonical name to the frame's column, for the names found."""
    found = {str(c).strip(): str(c) for c in frame.columns}
    return {
        name: found[candidate]
        for name, candidates in wanted.items()
        for candidate in candidates
        if candidate in found
    }


def _as_code(values: pd.Series, width: int, numbers: bool) -> pd.Series:
    """Strip codes; with ``numbers`` (a workbook), pad a code stored as a number.

    A spreadsheet cell typed as a number loses the code's leading zeros
    (``29`` or ``29.0`` for ``029``); a CSV's text keeps them, so there a short
    code is an error.
    """
    text = clean_str(values)
    if not numbers:
        return text
    text = text.str.replace(r"\.0$", "", regex=True)
    digits = text.str.fullmatch(r"[0-9]+").fillna(False)
    return text.mask(digits, text.str.zfill(width))


def _refuse(
    bad: pd.Series, values: pd.Series, what: str, where: str, word: str, path: Path
) -> None:
    if bad.any():
        at = values.index[bad.to_numpy()]
        msg = f"{where}: {what}; " + examples_at(values[bad].tolist(), at, word)
        raise DataError(msg, path=path, line=int(at[0]))


def _communes(
    frame: pd.DataFrame, where: str, word: str, path: Path, numbers: bool
) -> pd.DataFrame:
    """Check the commune rows and return the canonical table."""
    names = _columns(frame, _COMMUNE_COLUMNS)
    missing = [_COMMUNE_COLUMNS[n][0] for n in _REQUIRED if n not in names]
    if missing:
        msg = (
            f"{where}: missing column(s) {missing}; expected INSEE's CODGEO, "
            f"AAV2020, CATEAAV2020 (or geo_code, aav, cate_aav); found {list(frame.columns)}"
        )
        raise DataError(msg, path=path, line=1)
    codes = clean_str(frame[names["commune_code"]])
    keep = codes.notna() & (codes != "")
    frame, codes = frame[keep], codes[keep]
    aav = _as_code(frame[names["aav_code"]], 3, numbers)
    category = _as_code(frame[names["aav_category"]], 2, numbers)
    _refuse(
        ~is_commune_code(codes),
        codes,
        "commune codes have 5 characters",
        where,
        word,
        path,
    )
    _refuse(
        codes.duplicated(keep=False),
        codes,
        "each commune appears once",
        where,
        word,
        path,
    )
    _refuse(
        ~aav.str.fullmatch(_AAV_CODE.pattern).fillna(False),
        aav,
        "area codes have 3 characters (000 outside any area)",
        where,
        word,
        path,
    )
    _refuse(
        ~category.isin(AAV_CATEGORIES),
        category,
        f"categories are one of {list(AAV_CATEGORIES)}",
        where,
        word,
        path,
    )
    outside = (aav == OUTSIDE_AAV) != (category == "30")
    _refuse(
        outside,
        aav + "/" + category,
        "area 000 goes with category 30 and only with it",
        where,
        word,
        path,
    )
    table = pd.DataFrame(
        {
            "commune_code": codes.to_numpy(),
            "commune_name": clean_str(frame[names["commune_name"]]).to_numpy()
            if "commune_name" in names
            else pd.NA,
            "aav_code": aav.to_numpy(),
            "aav_category": category.to_numpy(),
        }
    ).astype("string")
    if "aav_name" in names:
        table["aav_name"] = clean_str(frame[names["aav_name"]]).to_numpy()
    return table


def _areas(frame: pd.DataFrame | None, communes: pd.DataFrame) -> pd.DataFrame:
    """List the areas: from their own table when given, else from the communes'."""
    columns = ["aav_code", "aav_name", "aav_size_class"]
    if frame is not None:
        names = _columns(frame, _AREA_COLUMNS)
        if "aav_code" in names:
            areas = pd.DataFrame(
                {
                    c: _as_code(frame[names[c]], 3, numbers=True)
                    if c == "aav_code"
                    else clean_str(frame[names[c]])
                    for c in columns
                    if c in names
                }
            )
            areas = areas[
                areas["aav_code"].str.fullmatch(_AAV_CODE.pattern).fillna(False)
            ]
            return (
                areas.reindex(columns=columns)
                .drop_duplicates("aav_code")
                .astype("string")
                .reset_index(drop=True)
            )
    if "aav_name" in communes:
        named = communes[["aav_code", "aav_name"]].drop_duplicates("aav_code")
    else:
        named = pd.DataFrame({"aav_code": communes["aav_code"].drop_duplicates()})
    return (
        named.reindex(columns=columns)
        .sort_values("aav_code")
        .astype("string")
        .reset_index(drop=True)
    )


def _read_workbook(
    path: Path, data: bytes | None, where: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read the composition sheet (and the areas sheet) under their title rows."""
    sheets, names = read_sheets(path, data, ("Composition_communale", "AAV2020"), where)
    if "Composition_communale" not in sheets:
        msg = f"{where}: no sheet 'Composition_communale' (INSEE's AAV file has it); found {names}"
        raise DataError(msg, path=path)
    communes = find_header(
        sheets["Composition_communale"],
        ("CODGEO", "AAV2020"),
        path,
        "Composition_communale",
        where=where,
    )
    areas = None
    if "AAV2020" in sheets:
        areas = find_header(
            sheets["AAV2020"], ("AAV2020",), path, "AAV2020", where=where
        )
    return communes, areas


#: Most bytes read from an AAV table (a CSV, or a workbook in a zip), decompressed:
#: INSEE's are a few MB.
MAX_BYTES = 64 << 20


def _csv(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV (plain, gzipped or the one CSV of a zip) within bounds, by file line."""
    file = DelimitedFile(
        path, workbook_else_csv, "AAV table (.csv)", what, MAX_BYTES, sniff_sep
    )
    frame, _ = read_strings(file)
    return frame


_WORKBOOK = (".xlsx", ".xlsm")


def read_aav(path: Path, areas: Path | None = None) -> AttractionAreas:
    """Read INSEE's AAV 2020 commune table (xlsx or CSV, zipped or not).

    Parameters
    ----------
    path
        INSEE's ``AAV2020_au_01-01-YYYY.zip`` (or the workbook inside), a CSV
        export of its ``Composition_communale`` sheet, or a commune table with
        the columns ``geo_code, aav, cate_aav``. Its communes are those of the
        geography of 1 January YYYY (state it with ``{ path, geography }`` or in
        the catalogue).
    areas
        For a CSV: the list of areas (``AAV2020, LIBAAV2020, TAAV2017`` or
        ``aav, aav_name, aav_type``), to name them.

    Returns
    -------
    AttractionAreas
        ``communes``: ``commune_code``, ``commune_name``, ``aav_code``,
        ``aav_category`` (strings; ``aav_name`` too when the table has it);
        ``areas``: ``aav_code``, ``aav_name``, ``aav_size_class`` (INSEE's
        TAAV2017: 0 outside, 1 under 50,000 inhabitants ... 5 Paris).

    Raises
    ------
    SourceError
        A file does not exist.
    DataError
        Unreadable file, missing sheet or columns, or a bad value (naming its
        line or row).
    """
    check_exists(path, "attraction areas (AAV)")
    if path.suffix.lower() not in _WORKBOOK and compression_of(path) == "zip":
        with open_member(
            path,
            workbook_else_csv,
            what="AAV table (.xlsx workbook or .csv)",
            limit=MAX_BYTES,
        ) as member:
            name, where = Path(member.name or ""), member.where
            data = member.stream.read() if name.suffix.lower() in _WORKBOOK else None
    else:
        data, name, where = None, path, str(path)
    area_frame: pd.DataFrame | None = None
    if name.suffix.lower() in _WORKBOOK:
        frame, area_frame = _read_workbook(path, data, where)
        word, where = "row", f"{where}: sheet 'Composition_communale'"
    else:
        frame, word = _csv(path, "an AAV CSV"), "line"
    if areas is not None:
        check_exists(areas, "list of attraction areas")
        area_frame = _csv(areas, "a list of AAV CSV")
    communes = _communes(frame, where, word, path, numbers=word == "row")
    table = AttractionAreas(
        communes=communes.reset_index(drop=True), areas=_areas(area_frame, communes)
    )
    logger.info(
        "%s: %d communes in %d attraction areas (%d outside any)",
        where,
        len(table.communes),
        table.communes.loc[
            table.communes["aav_code"] != OUTSIDE_AAV, "aav_code"
        ].nunique(),
        int((table.communes["aav_code"] == OUTSIDE_AAV).sum()),
    )
    return table
