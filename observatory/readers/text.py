"""Shared by the readers: decoding text files, finding headers and fields.

Small helpers every reader of a tabular file uses: the existence check, text
decoding (UTF-8, else Windows-1252), the separator of a CSV header, the header
row under INSEE's title rows, and the first of several candidate field names.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from observatory.core.errors import DataError, SourceError

logger = logging.getLogger(__name__)


def one_line(error: object, limit: int = 200) -> str:
    """Return a library's error message on one line, cut to ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "…"


def first_present(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """Return the column matching the first of ``candidates`` (any case), or None."""
    upper = {c.upper(): c for c in columns}
    for name in candidates:
        if name in upper:
            return upper[name]
    return None


def check_exists(path: Path, role: str) -> None:
    """Raise a :class:`SourceError` when the ``role`` input file is missing."""
    if not path.exists():
        msg = f"{path}: {role} file not found"
        raise SourceError(msg, path=path)


def sniff_sep(header: str) -> str:
    """Tell the separator of a CSV header: ``;`` unless commas are more."""
    return ";" if header.count(";") >= header.count(",") else ","


def workbook_else_csv(names: list[str]) -> list[str]:
    """Pick a table in a zip: its workbooks (.xlsx, .xlsm), else its CSV files.

    A notice in ``.txt`` beside them is never picked.
    """
    workbooks = [n for n in names if Path(n).suffix.lower() in (".xlsx", ".xlsm")]
    return workbooks or [n for n in names if Path(n).suffix.lower() == ".csv"]


def find_header(
    frame: pd.DataFrame,
    required: tuple[str, ...],
    path: Path,
    sheet: str,
    *,
    where: str | None = None,
) -> pd.DataFrame:
    """Return the rows under the first row holding every ``required`` column.

    INSEE puts a few title lines above the header (row 6 today). The rows keep
    their 1-based spreadsheet numbers as index. ``where`` names the workbook in
    the error message (``path [member]`` inside a zip); ``path`` by default.
    """
    for i in range(min(len(frame), 20)):
        row = [str(v).strip() for v in frame.iloc[i].tolist()]
        if all(col in row for col in required):
            body = frame.iloc[i + 1 :].copy()
            body.columns = row
            body = body.loc[:, [c for c in body.columns if c and c != "nan"]]
            body.index = body.index + 1  # 1-based spreadsheet row numbers
            return body.dropna(how="all")
    msg = f"{where or path}: sheet {sheet!r}: no header row with columns {list(required)} in the first 20 rows"
    raise DataError(msg, path=path)


def clean_str(series: pd.Series) -> pd.Series:
    """Return ``series`` as strings, stripped."""
    return series.astype("string").str.strip()
