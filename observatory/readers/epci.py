"""Read INSEE's EPCI composition (xlsx with title rows, or a CSV export)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from observatory.core.errors import DataError, examples_at
from observatory.geography import KNOWN_NATURES, NO_EPCI, SIREN, is_commune_code
from observatory.readers.text import (
    _MAX_LISTED,
    _check_exists,
    _clean_str,
    _find_header,
    _read_csv_text,
    read_text,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EpciComposition:
    """INSEE's EPCI list and commune composition."""

    epci: pd.DataFrame  # epci_code, epci_name, epci_nature
    composition: pd.DataFrame  # commune_code, commune_name, epci_code


def read_epci_composition(path: Path, epci_list: Path | None = None) -> EpciComposition:
    """Read INSEE's EPCI composition (xlsx or CSV).

    Parameters
    ----------
    path
        The official ``EPCI_au_01-01-YYYY.xlsx`` (sheets ``EPCI`` and
        ``Composition_communale``) or a CSV export of the composition sheet with
        columns ``CODGEO``, ``EPCI`` (and ``LIBGEO``, ``LIBEPCI``, ``NATURE_EPCI``).
    epci_list
        For a CSV without ``NATURE_EPCI``: a CSV export of the ``EPCI`` sheet.

    Returns
    -------
    EpciComposition
        ``epci`` (epci_code, epci_name, epci_nature) and ``composition``
        (commune_code, commune_name, epci_code). Communes outside any EPCI
        (``ZZZZZZZZZ``) are left out.
    """
    _check_exists(path, "EPCI composition")
    suffix = path.suffix.lower()
    line_word = "line"
    if suffix in (".xlsx", ".xlsm"):
        try:
            sheets = pd.read_excel(
                path, sheet_name=None, header=None, dtype=str, engine="calamine"
            )
        except Exception as exc:  # calamine raises its own error types on bad files
            msg = f"{path}: cannot read as an xlsx workbook: {exc}"
            raise DataError(msg) from exc
        missing = [s for s in ("EPCI", "Composition_communale") if s not in sheets]
        if missing:
            msg = f"{path}: missing sheet(s) {missing}; found {list(sheets)} (INSEE's file has 'EPCI' and 'Composition_communale')"
            raise DataError(msg)
        comp = _find_header(
            sheets["Composition_communale"],
            ("CODGEO", "EPCI"),
            path,
            "Composition_communale",
        )
        epci_sheet = _find_header(sheets["EPCI"], ("EPCI", "NATURE_EPCI"), path, "EPCI")
        where = f"{path}: sheet 'Composition_communale'"
        line_word = "row"
    elif suffix in (".csv", ".txt"):
        comp = _read_csv_text(path, read_text(path), "EPCI composition")
        comp.index = comp.index + 2  # header is line 1
        where = str(path)
        epci_sheet = None
        if epci_list is not None:
            _check_exists(epci_list, "EPCI list")
            epci_sheet = _read_csv_text(epci_list, read_text(epci_list), "EPCI list")
            epci_sheet.index = epci_sheet.index + 2
    else:
        msg = f"{path}: unsupported EPCI composition format {suffix!r}; expected .xlsx or .csv"
        raise DataError(msg)

    missing_cols = [c for c in ("CODGEO", "EPCI") if c not in comp.columns]
    if missing_cols:
        msg = f"{where}: missing column(s) {missing_cols}; expected CODGEO, LIBGEO, EPCI, LIBEPCI, ...; found {list(comp.columns)}"
        raise DataError(msg)
    comp = comp.assign(CODGEO=_clean_str(comp["CODGEO"]), EPCI=_clean_str(comp["EPCI"]))
    comp = comp[comp["CODGEO"].notna() & (comp["CODGEO"] != "")]
    bad = ~is_commune_code(comp["CODGEO"])
    if bad.any():
        msg = f"{where}: CODGEO must be a 5-character commune code; " + examples_at(
            comp.loc[bad, "CODGEO"].tolist(), comp.index[bad.to_numpy()], line_word
        )
        raise DataError(msg)
    bad = ~(
        comp["EPCI"].str.fullmatch(SIREN.pattern).fillna(False)
        | (comp["EPCI"] == NO_EPCI)
    )
    if bad.any():
        msg = f"{where}: EPCI must be a 9-digit SIREN (or {NO_EPCI}); " + examples_at(
            comp.loc[bad, "EPCI"].tolist(), comp.index[bad.to_numpy()], line_word
        )
        raise DataError(msg)
    dup = comp["CODGEO"].duplicated(keep=False)
    if dup.any():
        msg = f"{where}: each commune must appear once; " + examples_at(
            comp.loc[dup, "CODGEO"].tolist(), comp.index[dup.to_numpy()], line_word
        )
        raise DataError(msg)
    comp = comp[comp["EPCI"] != NO_EPCI]

    composition = pd.DataFrame(
        {
            "commune_code": comp["CODGEO"].to_numpy(),
            "commune_name": _clean_str(comp["LIBGEO"]).to_numpy()
            if "LIBGEO" in comp
            else pd.NA,
            "epci_code": comp["EPCI"].to_numpy(),
        }
    ).astype("string")

    if epci_sheet is not None:
        need = [c for c in ("EPCI", "NATURE_EPCI") if c not in epci_sheet.columns]
        if need:
            msg = f"{epci_list or path}: EPCI list lacks column(s) {need}; found {list(epci_sheet.columns)}"
            raise DataError(msg)
        table = epci_sheet
    elif "NATURE_EPCI" in comp.columns:
        table = comp
    else:
        msg = (
            f"{path}: no NATURE_EPCI column to tell métropoles apart; add it, use INSEE's xlsx, "
            "or point [inputs] epci_list to a CSV export of the 'EPCI' sheet"
        )
        raise DataError(msg)
    epci = pd.DataFrame(
        {
            "epci_code": _clean_str(table["EPCI"]).to_numpy(),
            "epci_name": _clean_str(table["LIBEPCI"]).to_numpy()
            if "LIBEPCI" in table
            else pd.NA,
            "epci_nature": _clean_str(table["NATURE_EPCI"]).to_numpy(),
        }
    ).astype("string")
    epci = epci[epci["epci_code"].str.fullmatch(SIREN.pattern).fillna(False)]
    epci = epci.drop_duplicates("epci_code").reset_index(drop=True)
    unknown = sorted(set(epci["epci_nature"].dropna()) - set(KNOWN_NATURES))
    if unknown:
        logger.warning("%s: unexpected NATURE_EPCI value(s) %s", path, unknown)
    orphans = sorted(set(composition["epci_code"]) - set(epci["epci_code"]))
    if orphans:
        msg = f"{path}: EPCI {orphans[:_MAX_LISTED]} appear in the composition but not in the EPCI list"
        raise DataError(msg)
    return EpciComposition(epci=epci, composition=composition.reset_index(drop=True))
