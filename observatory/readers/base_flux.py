"""Read INSEE's base flux of home-to-work commuting (plain, zipped or gzipped).

One row per (residence, work place) commune pair with its number of workers,
checked line by line; the census vintage comes from the flow column's name.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from observatory.core.archives import open_member
from observatory.core.errors import DataError, examples_at
from observatory.geography import is_abroad_code, is_commune_code
from observatory.readers.text import check_exists, read_text, sniff_sep

logger = logging.getLogger(__name__)


_FLOW_COLUMN = re.compile(r"^NBFLUX_C(\d{2})_ACTOCC15P$")


@dataclass(frozen=True, slots=True)
class CommuneFlows:
    """Commune-to-commune flows as read from a base flux file."""

    table: pd.DataFrame  # origin_commune, destination_commune, workers
    vintage: int | None
    flow_column: str
    member: str | None  # the CSV read inside a zip archive


# --------------------------------------------------------------------- flows
def _flux_csv(names: list[str]) -> list[str]:
    """Pick the base flux CSV of a zip: the only CSV, or the only one named flux."""
    members = [m for m in names if m.lower().endswith(".csv")]
    if len(members) > 1:
        flux = [m for m in members if "flux" in Path(m).name.lower()]
        members = flux if len(flux) == 1 else members
    return members


def _read_columns(text: str, where: str, path: Path) -> tuple[pd.DataFrame, str, int]:
    """Parse the CSV text: ``CODGEO``, ``DCLT`` and the flow column, as strings.

    Also returns the flow column's name and the census year it says.
    """
    header = text.split("\n", 1)[0]
    sep = sniff_sep(header)
    columns = [c.strip().strip('"') for c in header.strip().split(sep)]
    flow_columns = [m for c in columns if (m := _FLOW_COLUMN.match(c))]
    missing = [c for c in ("CODGEO", "DCLT") if c not in columns]
    if missing or len(flow_columns) != 1:
        expected = "CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P"
        msg = f"{where}: line 1: expected columns {expected}, found {columns}"
        raise DataError(msg, path=path, line=1)
    flow_column, year = flow_columns[0].group(0), int(flow_columns[0].group(1))
    usecols = ["CODGEO", "DCLT", flow_column]
    try:
        # pyarrow's reader is twice as fast on a national file (multithreaded)...
        frame = pd.read_csv(
            io.BytesIO(text.encode()),
            engine="pyarrow",
            sep=sep,
            dtype=str,
            keep_default_na=False,
            usecols=usecols,
        )
    except (pd.errors.ParserError, ValueError):
        try:  # ...pandas' own names the faulty line
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                usecols=usecols,
            )
        except (pd.errors.ParserError, ValueError) as exc:
            msg = f"{where}: cannot parse as a base flux CSV: {exc}"
            raise DataError(msg, path=path) from exc
    return frame, flow_column, 2000 + year


def _refuse(
    bad: pd.Series, values: pd.Series, lines: pd.Index, what: str, path: Path
) -> None:
    """Raise a :class:`DataError` quoting the ``bad`` values with their lines."""
    if bad.any():
        at = lines[bad.to_numpy()]
        msg = what + examples_at(values[bad].tolist(), at, "line")
        raise DataError(msg, path=path, line=int(at[0]))


def _checked_flows(
    frame: pd.DataFrame, flow_column: str, where: str, path: Path
) -> pd.DataFrame:
    """Check codes and flows, line by line; return the table of flows."""
    lines = frame.index + 2
    origin = frame["CODGEO"].astype("string").str.strip()
    destination = frame["DCLT"].astype("string").str.strip()
    _refuse(
        ~is_commune_code(origin),
        origin,
        lines,
        f"{where}: CODGEO must be a 5-character commune code; ",
        path,
    )
    _refuse(
        ~(is_commune_code(destination) | is_abroad_code(destination)),
        destination,
        lines,
        f"{where}: DCLT must be a 5-character commune code or an abroad code (99xxx); ",
        path,
    )
    raw_flow = frame[flow_column].astype("string").str.strip()
    workers = pd.to_numeric(
        raw_flow.str.replace(",", ".", regex=False), errors="coerce"
    )
    not_number = workers.isna() | ~np.isfinite(
        workers.to_numpy(dtype=float, na_value=np.nan)
    )
    _refuse(
        not_number, raw_flow, lines, f"{where}: {flow_column} must be a number; ", path
    )
    _refuse(
        workers < 0, raw_flow, lines, f"{where}: {flow_column} must be >= 0; ", path
    )
    table = pd.DataFrame(
        {
            "origin_commune": origin.to_numpy(),
            "destination_commune": destination.to_numpy(),
            "workers": workers.to_numpy(dtype="float64"),
        }
    )
    table[["origin_commune", "destination_commune"]] = table[
        ["origin_commune", "destination_commune"]
    ].astype("string")
    return table


def read_base_flux(path: Path) -> CommuneFlows:
    """Read INSEE's base flux of home-to-work mobility (plain or zipped CSV).

    Parameters
    ----------
    path
        ``;``-separated file with columns ``CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P``,
        plain, zipped or gzipped.

    Returns
    -------
    CommuneFlows
        ``table`` has ``origin_commune``, ``destination_commune`` (codes as read,
        arrondissements not yet rolled up) and ``workers`` (float); ``vintage`` is
        the census year read from the flow column name.

    Raises
    ------
    SourceError
        The file does not exist.
    DataError
        A bad archive, header or value, naming the file and the line.
    """
    check_exists(path, "flows")
    with open_member(path, _flux_csv, what="CSV file") as opened:
        text = read_text(path, opened.stream.read())
        member, where = opened.name, opened.where
    frame, flow_column, vintage = _read_columns(text, where, path)
    table = _checked_flows(frame, flow_column, where, path)
    logger.info(
        "%s: %d commune pairs, %.1f workers (%s)",
        where,
        len(table),
        table["workers"].sum(),
        flow_column,
    )
    return CommuneFlows(
        table=table, vintage=vintage, flow_column=flow_column, member=member
    )
