"""Shared by the readers: decoding text files, finding headers and fields.

Small helpers every reader of a tabular file uses: the existence check, text
decoding (UTF-8, else Windows-1252), the separator of a CSV header, the header
row under INSEE's title rows, and the first of several candidate field names.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd

from observatory.core.errors import DataError, SourceError

logger = logging.getLogger(__name__)


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


def read_text(path: Path, data: bytes | None = None) -> str:
    """Decode a text file (or ``data`` read from it): UTF-8, else Windows-1252."""
    raw = path.read_bytes() if data is None else data
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    msg = f"{path}: not a text file in UTF-8 or Windows-1252"  # pragma: no cover
    raise DataError(msg, path=path)  # pragma: no cover


def read_csv_text(path: Path, text: str, what: str) -> pd.DataFrame:
    """Parse the text of a CSV file, every field as a string (nothing missing)."""
    first = text.split("\n", 1)[0]
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sniff_sep(first), dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, ValueError) as exc:
        msg = f"{path}: cannot parse as {what} CSV: {exc}"
        raise DataError(msg, path=path) from exc


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
