"""Read INSEE's base flux of home-to-work commuting (plain, zipped or gzipped)."""

from __future__ import annotations

import gzip
import io
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import is_abroad_code, is_commune_code
from observatory.readers.text import _check_exists, _sniff_sep, read_text

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
def _open_flows_text(path: Path) -> tuple[str, str | None]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.namelist()
                if m.lower().endswith(".csv") and not m.startswith("__MACOSX")
            ]
            if len(members) > 1:
                flux = [m for m in members if "flux" in Path(m).name.lower()]
                members = flux if len(flux) == 1 else members
            if len(members) != 1:
                msg = f"{path}: expected one CSV file in the archive, found {members or archive.namelist()}"
                raise DataError(msg)
            return read_text(path, archive.read(members[0])), members[0]
    if path.suffix.lower() == ".zip":
        msg = f"{path}: not a valid zip archive"
        raise DataError(msg)
    if path.suffix.lower() == ".gz":
        try:
            return read_text(path, gzip.decompress(path.read_bytes())), None
        except (OSError, EOFError) as exc:
            msg = f"{path}: not a valid gzip file ({exc})"
            raise DataError(msg) from exc
    return read_text(path), None


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
    """
    _check_exists(path, "flows")
    text, member = _open_flows_text(path)
    where = f"{path}" + (f" [{member}]" if member else "")
    header = text.split("\n", 1)[0]
    sep = _sniff_sep(header)
    columns = [c.strip().strip('"') for c in header.strip().split(sep)]
    flow_columns = [c for c in columns if _FLOW_COLUMN.match(c)]
    missing = [c for c in ("CODGEO", "DCLT") if c not in columns]
    if missing or len(flow_columns) != 1:
        expected = "CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P"
        msg = f"{where}: line 1: expected columns {expected}, found {columns}"
        raise DataError(msg)
    flow_column = flow_columns[0]
    options = {
        "sep": sep,
        "dtype": str,
        "keep_default_na": False,
        "usecols": ["CODGEO", "DCLT", flow_column],
    }
    try:
        # pyarrow's reader is twice as fast on a national file (multithreaded)...
        frame = pd.read_csv(io.BytesIO(text.encode()), engine="pyarrow", **options)
    except (pd.errors.ParserError, ValueError):
        try:  # ...pandas' own names the faulty line
            frame = pd.read_csv(io.StringIO(text), **options)
        except (pd.errors.ParserError, ValueError) as exc:
            msg = f"{where}: cannot parse as a base flux CSV: {exc}"
            raise DataError(msg) from exc
    lines = frame.index + 2

    origin = frame["CODGEO"].astype("string").str.strip()
    destination = frame["DCLT"].astype("string").str.strip()
    bad = ~is_commune_code(origin)
    if bad.any():
        msg = f"{where}: CODGEO must be a 5-character commune code; " + examples_at(
            origin[bad].tolist(), lines[bad.to_numpy()], "line"
        )
        raise DataError(msg)
    bad = ~(is_commune_code(destination) | is_abroad_code(destination))
    if bad.any():
        msg = (
            f"{where}: DCLT must be a 5-character commune code or an abroad code (99xxx); "
            + examples_at(destination[bad].tolist(), lines[bad.to_numpy()], "line")
        )
        raise DataError(msg)
    raw_flow = frame[flow_column].astype("string").str.strip()
    workers = pd.to_numeric(
        raw_flow.str.replace(",", ".", regex=False), errors="coerce"
    )
    bad = workers.isna() | ~np.isfinite(workers.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        msg = f"{where}: {flow_column} must be a number; " + examples_at(
            raw_flow[bad].tolist(), lines[bad.to_numpy()], "line"
        )
        raise DataError(msg)
    bad = workers < 0
    if bad.any():
        msg = f"{where}: {flow_column} must be >= 0; " + examples_at(
            raw_flow[bad].tolist(), lines[bad.to_numpy()], "line"
        )
        raise DataError(msg)
    year = int(_FLOW_COLUMN.match(flow_column).group(1))  # type: ignore[union-attr]
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
    logger.info(
        "%s: %d commune pairs, %.1f workers (%s)",
        where,
        len(table),
        table["workers"].sum(),
        flow_column,
    )
    return CommuneFlows(
        table=table, vintage=2000 + year, flow_column=flow_column, member=member
    )
