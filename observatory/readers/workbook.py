"""Read sheets of an xlsx workbook with calamine, every cell as text, within bounds.

Cells come as ``pandas.read_excel(header=None, dtype=str, engine="calamine")``
gives them (whole numbers without ``.0``, empty cells and pandas' missing-value
words as NaN, rows numbered from 0), at a third of its cost: calamine's rows
are turned into columns directly. A workbook is a zip archive: its parts'
declared sizes are checked against :data:`MAX_UNPACKED` before calamine
inflates them, so a workbook bomb is refused before it fills memory.
"""

from __future__ import annotations

import io
import math
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from observatory.core.archives import mebibytes
from observatory.core.errors import DataError
from observatory.readers.text import one_line

#: Most bytes a workbook's parts may inflate to (INSEE's EPCI workbook: ~20 MB).
MAX_UNPACKED = 256 << 20

#: What pandas reads as a missing value in a text cell (its default ``na_values``).
_MISSING_WORDS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def _cell(value: Any) -> Any:
    """One cell as pandas' ``dtype=str`` gives it: text, or NaN when missing."""
    if isinstance(value, str):
        return np.nan if value in _MISSING_WORDS else value
    if isinstance(value, float):
        if math.isnan(value):
            return np.nan
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return str(datetime(value.year, value.month, value.day))
    return str(value)


def _column(cells: tuple[Any, ...]) -> np.ndarray:
    # Nearly every cell is text: only the others go through _cell.
    return np.array(
        [
            c if c.__class__ is str and c not in _MISSING_WORDS else _cell(c)
            for c in cells
        ],
        dtype=object,
    )


def _frame(rows: list[list[Any]]) -> pd.DataFrame:
    """Return the rows of a sheet as a frame of text cells, columns and rows from 0."""
    width = max((len(row) for row in rows), default=0)
    padded = [
        row + [""] * (width - len(row)) if len(row) < width else row for row in rows
    ]
    columns = list(zip(*padded, strict=True)) if padded else []
    return pd.DataFrame(
        {i: _column(cells) for i, cells in enumerate(columns)},
        index=pd.RangeIndex(len(rows)),
        columns=pd.RangeIndex(width),
        dtype=object,
    )


def _check_parts(source: Path | io.BytesIO, where: str, path: Path) -> None:
    """Refuse a file that is not a zip, or whose parts inflate beyond the bound."""
    try:
        with zipfile.ZipFile(source) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        msg = f"{where}: cannot read as an xlsx workbook: not a zip archive ({one_line(exc)})"
        raise DataError(msg, path=path) from exc
    if unpacked > MAX_UNPACKED:
        msg = (
            f"{where}: the workbook's parts inflate to {mebibytes(unpacked)}, more "
            f"than the {mebibytes(MAX_UNPACKED)} an xlsx read here may hold: refused"
        )
        raise DataError(msg, path=path)


def read_sheets(
    path: Path, data: bytes | None, sheets: tuple[str, ...], where: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read the ``sheets`` a workbook has among those named, cells as text.

    Parameters
    ----------
    path
        The workbook, or the archive it was read from.
    data
        The workbook's bytes when read from an archive; None to read ``path``.
    sheets
        The sheets wanted: those the workbook lacks are left out.
    where
        The workbook in messages (``path [member]`` in an archive).

    Returns
    -------
    tuple
        The sheets found, by name, and the names of every sheet of the workbook.

    Raises
    ------
    DataError
        Not a workbook, too large once inflated, or unreadable by calamine.
    """
    from python_calamine import CalamineWorkbook

    source = path if data is None else io.BytesIO(data)
    _check_parts(source, where, path)
    try:
        if data is None:
            book = CalamineWorkbook.from_path(str(path))
        else:
            book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(book.sheet_names)
        found = {
            name: _frame(book.get_sheet_by_name(name).to_python(skip_empty_area=False))
            for name in sheets
            if name in names
        }
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # calamine's errors, and its Rust panics
        msg = f"{where}: cannot read as an xlsx workbook: {one_line(exc)}"
        raise DataError(msg, path=path) from exc
    return found, names
