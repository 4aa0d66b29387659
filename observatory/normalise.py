"""Read the official input files and normalise them to the project's tables.

``read_*`` functions are the only ones here that touch disk: each returns a plain
(Geo)DataFrame with string ``*_code`` columns and raises :class:`DataError` naming
the file, the line or feature, what was expected and what was found. The pure
helpers (``rollup_arrondissements``, ``is_commune_code``...) work on Series.

Recognised layouts (field names as published):

- communes: any file pyogrio reads (ADMIN EXPRESS ``COMMUNE`` shapefile,
  GeoPackage, GeoParquet...), fields ``INSEE_COM`` and ``SIREN_EPCI``;
- EPCI composition: INSEE's xlsx (sheets ``EPCI`` and ``Composition_communale``,
  header on row 6) or a CSV export of the composition sheet;
- flows: INSEE's base flux CSV ``CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_Cyy_ACTOCC15P``,
  plain or zipped.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatory.errors import DataError, SourceError

logger = logging.getLogger(__name__)

TARGET_CRS = "EPSG:2154"

#: ADMIN EXPRESS territories and their official projected CRS (IGN's per-territory
#: editions: ``LAMB93_FXX``, ``RGAF09UTM20_GLP``/``_MTQ``, ``UTM22RGFG95_GUF``,
#: ``RGR92UTM40S_REU``, ``RGM04UTM38S_MYT``). Mainland France includes Corsica.
TERRITORY_EPSG = {
    "FXX": 2154,
    "GLP": 5490,
    "MTQ": 5490,
    "GUF": 2972,
    "REU": 2975,
    "MYT": 4471,
}
TERRITORY_CRS = {code: f"EPSG:{epsg}" for code, epsg in TERRITORY_EPSG.items()}
TERRITORY_NAMES = {
    "FXX": "France métropolitaine",
    "GLP": "Guadeloupe",
    "MTQ": "Martinique",
    "GUF": "Guyane",
    "REU": "La Réunion",
    "MYT": "Mayotte",
}
MAINLAND = "FXX"
#: Département prefix of the overseas departments' commune codes.
_OVERSEAS_PREFIX = {
    "971": "GLP",
    "972": "MTQ",
    "973": "GUF",
    "974": "REU",
    "976": "MYT",
}

# [0-9], not \d: Python's \d also matches Arabic-Indic and other digits.
COMMUNE_CODE = re.compile(r"^(?:(?!99)[0-9]{5}|2[AB][0-9]{3})$")  # 99xxx: countries
SIREN = re.compile(r"^[0-9]{9}$")
# INSEE codes countries as 99xxx; the detailed file also uses border-commune codes.
ABROAD_CODE = re.compile(
    r"^(?:99[0-9]{3}|(?:AL|BE|LU|SU|MO|IT|ES|AN)[0-9A-Z]{1,3}|ZZZZZ)$"
)
#: INSEE's code for "no EPCI" in the composition file.
NO_EPCI = "ZZZZZZZZZ"

#: Paris, Lyon and Marseille arrondissements -> their commune.
ARRONDISSEMENT_RANGES = (
    (75101, 75120, "75056"),
    (69381, 69389, "69123"),
    (13201, 13216, "13055"),
)

METROPOLE_NATURES = ("ME", "METLYON")
KNOWN_NATURES = ("ME", "METLYON", "CU", "CA", "CC")

_FLOW_COLUMN = re.compile(r"^NBFLUX_C(\d{2})_ACTOCC15P$")
_COMMUNE_CODE_FIELDS = (
    "INSEE_COM",
    "CODE_INSEE",
    "INSEE",
    "CODGEO",
    "CODE",
    "CODE_COM",
)
_COMMUNE_EPCI_FIELDS = ("SIREN_EPCI", "CODE_EPCI", "EPCI_SIREN", "EPCI", "SIREN_EPCI_")
_COMMUNE_NAME_FIELDS = ("NOM", "NOM_COM", "LIBGEO", "NOM_M")
_MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class CommuneFlows:
    """Commune-to-commune flows as read from a base flux file."""

    table: pd.DataFrame  # origin_commune, destination_commune, workers
    vintage: int | None
    flow_column: str
    member: str | None  # the CSV read inside a zip archive


@dataclass(frozen=True, slots=True)
class EpciComposition:
    """INSEE's EPCI list and commune composition."""

    epci: pd.DataFrame  # epci_code, epci_name, epci_nature
    composition: pd.DataFrame  # commune_code, commune_name, epci_code


# --------------------------------------------------------------------- pure helpers
def on_distinct(values: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Return ``func(values)``, computed once per distinct value.

    A national flow file repeats about 35,000 commune codes over a million rows:
    string work on the distinct codes, then a take back to the rows, is an order
    of magnitude faster than element-wise work on every row. ``func`` must map
    each value independently (a Series to a Series of the same length).
    """
    positions, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype=values.dtype)
    if (positions < 0).any():  # missing values get func(<NA>) too
        distinct = pd.concat(
            [distinct, pd.Series([pd.NA], dtype=values.dtype)], ignore_index=True
        )
        positions = np.where(positions < 0, len(distinct) - 1, positions)
    result = func(distinct)
    return result.iloc[positions].set_axis(values.index).rename(values.name)


def _full_match(codes: pd.Series, pattern: str) -> pd.Series:
    return on_distinct(
        codes.astype("string"),
        lambda u: u.str.fullmatch(pattern).fillna(False).astype(bool),
    )


def is_commune_code(codes: pd.Series) -> pd.Series:
    """Tell which values are INSEE commune codes (5 characters, 2A/2B for Corsica)."""
    return _full_match(codes, COMMUNE_CODE.pattern)


def is_abroad_code(codes: pd.Series) -> pd.Series:
    """Tell which values designate a work place abroad (INSEE country codes 99xxx...)."""
    return _full_match(codes, ABROAD_CODE.pattern)


def territory_of(codes: pd.Series) -> pd.Series:
    """Return the ADMIN EXPRESS territory of commune codes (``FXX``, ``REU``...).

    Codes of the overseas collectivities (``975``, ``977``, ``978``, ``98x``:
    outside ADMIN EXPRESS and the EPCI) and anything that is not a commune code
    give ``<NA>``; so do abroad codes.
    """
    return on_distinct(codes.astype("string"), _territory_distinct)


def _territory_distinct(codes: pd.Series) -> pd.Series:
    prefix = codes.str[:3]
    out = prefix.map(_OVERSEAS_PREFIX).astype("string")
    overseas = prefix.str[:2].isin(["97", "98"]).fillna(False)
    mainland = is_commune_code(codes) & ~overseas
    return out.mask(mainland.fillna(False), MAINLAND)


def rollup_arrondissements(codes: pd.Series) -> pd.Series:
    """Replace Paris, Lyon and Marseille arrondissement codes by their commune code.

    Parameters
    ----------
    codes
        Commune codes as strings.

    Returns
    -------
    pandas.Series
        Same index; ``75101``-``75120`` become ``75056``, ``69381``-``69389``
        ``69123``, ``13201``-``13216`` ``13055``; other values are unchanged.
    """
    return on_distinct(codes.astype("string"), _rollup_distinct)


def _rollup_distinct(codes: pd.Series) -> pd.Series:
    out = codes.astype("string")
    digits = out.str.fullmatch(r"[0-9]{5}").fillna(False).to_numpy(dtype=bool)
    numeric = np.zeros(len(out), dtype=np.int64)
    numeric[digits] = out[digits].astype("int64").to_numpy()
    for first, last, commune in ARRONDISSEMENT_RANGES:
        out = out.mask((numeric >= first) & (numeric <= last), commune)
    return out


def _first_present(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    upper = {c.upper(): c for c in columns}
    for name in candidates:
        if name in upper:
            return upper[name]
    return None


def examples_at(values: Any, positions: Any, what: str) -> str:
    """Return up to five ``<what> <position>: <value>`` examples, and how many more.

    The shared form of every "which lines are wrong" message: ``values`` and
    ``positions`` (file lines, features, rows) are aligned sequences.
    """
    head = values[:_MAX_LISTED]
    head = head.tolist() if hasattr(head, "tolist") else list(head)
    shown = [
        f"{what} {position}: {value!r}"
        for position, value in zip(positions[:_MAX_LISTED], head, strict=False)
    ]
    more = len(values) - _MAX_LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _check_exists(path: Path, role: str) -> None:
    if not path.exists():
        msg = f"{path}: {role} file not found"
        raise SourceError(msg)


# --------------------------------------------------------------------- communes
def read_communes(
    path: Path, layer: str | None = None, target_crs: str | None = TARGET_CRS
) -> gpd.GeoDataFrame:
    """Read commune polygons with their INSEE code (and EPCI SIREN when present).

    Parameters
    ----------
    path
        Any file pyogrio reads, e.g. ADMIN EXPRESS ``COMMUNE.shp``.
    layer
        Layer name for multi-layer files (GeoPackage); the first layer otherwise.
    target_crs
        CRS of the returned frame; None keeps the file's own CRS (see
        :func:`communes_by_territory`).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``commune_code``, ``commune_name``, ``epci_code_geo`` (SIREN read
        from the geometry file, may be missing) and ``geometry``.
    """
    _check_exists(path, "communes")
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"{path}: cannot read as a geometry file (expected e.g. ADMIN EXPRESS COMMUNE.shp): {exc}"
        raise DataError(msg) from exc
    columns = list(info["fields"])
    code_field = _first_present(columns, _COMMUNE_CODE_FIELDS)
    if code_field is None:
        msg = (
            f"{path}: no commune code field; expected one of {list(_COMMUNE_CODE_FIELDS)} "
            f"(ADMIN EXPRESS: INSEE_COM), found {columns}"
        )
        raise DataError(msg)
    epci_field = _first_present(columns, _COMMUNE_EPCI_FIELDS)
    name_field = _first_present(columns, _COMMUNE_NAME_FIELDS)
    wanted = [c for c in (code_field, epci_field, name_field) if c]
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer, columns=wanted)
    except Exception as exc:  # GDAL raises many kinds; all mean "unreadable file"
        msg = f"{path}: cannot read features: {exc}"
        raise DataError(msg) from exc
    if gdf.crs is None:
        msg = f"{path}: the layer has no CRS (a .prj file is missing?); expected a projected or geographic CRS"
        raise DataError(msg)

    fid = pd.RangeIndex(len(gdf))
    raw_codes = gdf[code_field]
    if not pd.api.types.is_string_dtype(raw_codes) and not pd.api.types.is_object_dtype(
        raw_codes
    ):
        msg = (
            f"{path}: field {code_field} is stored as {raw_codes.dtype}, expected text: "
            "commune codes are 5-character strings (leading zeros, 2A/2B)"
        )
        raise DataError(msg)
    codes = raw_codes.astype("string").str.strip()
    bad = ~is_commune_code(codes)
    if bad.any():
        msg = (
            f"{path}: field {code_field} must hold 5-character INSEE commune codes; "
            + examples_at(codes[bad].tolist(), fid[bad.to_numpy()], "feature")
        )
        raise DataError(msg)
    if codes.duplicated().any():
        dup = codes[codes.duplicated(keep=False)]
        msg = f"{path}: commune codes must be unique; " + examples_at(
            dup.tolist(), fid[dup.index.to_numpy()], "feature"
        )
        raise DataError(msg)

    geometry = gdf.geometry.values
    missing = shapely.is_missing(geometry) | shapely.is_empty(geometry)
    if missing.any():
        msg = f"{path}: features without geometry; " + examples_at(
            codes[missing].tolist(), fid[missing], "feature"
        )
        raise DataError(msg)
    kinds = set(shapely.get_type_id(geometry).tolist()) - {3, 6}
    if kinds:
        msg = f"{path}: expected Polygon or MultiPolygon geometries, found other types"
        raise DataError(msg)
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        logger.info("%s: repaired %d invalid polygon(s)", path, int(invalid.sum()))
        geometry = geometry.copy()
        # "structure" keeps polygons polygonal (no stray lines from collapsed parts).
        geometry[invalid] = shapely.make_valid(
            geometry[invalid], method="structure", keep_collapsed=False
        )

    out = gpd.GeoDataFrame(
        {
            "commune_code": codes.to_numpy(),
            "commune_name": (
                gdf[name_field].astype("string").to_numpy() if name_field else pd.NA
            ),
            "epci_code_geo": (
                gdf[epci_field]
                .astype("string")
                .str.split("/")
                .str[0]
                .str.strip()
                .to_numpy()
                if epci_field
                else pd.NA
            ),
        },
        geometry=gpd.GeoSeries(geometry, crs=gdf.crs)
        .to_crs(target_crs or gdf.crs)
        .values,
        crs=target_crs or gdf.crs,
    )
    out["commune_name"] = out["commune_name"].astype("string")
    out["epci_code_geo"] = out["epci_code_geo"].astype("string")
    return out


def communes_by_territory(
    layers: list[tuple[Path, gpd.GeoDataFrame]],
) -> tuple[dict[str, gpd.GeoDataFrame], list[str]]:
    """Split commune layers by territory, each in its official projected CRS.

    ADMIN EXPRESS ships one layer per territory in its own CRS (Lambert-93 for
    mainland France, UTM for the overseas departments) and a France-wide layer in
    WGS84; any mix of them is accepted. Measuring borders or distances in
    Lambert-93 outside mainland France would distort them, hence one frame per
    territory.

    Parameters
    ----------
    layers
        ``(path, frame)`` as returned by :func:`read_communes`, in any CRS.

    Returns
    -------
    tuple
        ``{territory: frame in TERRITORY_CRS[territory]}`` (territories with no
        commune are left out, mainland first) and the codes set aside because no
        territory of ADMIN EXPRESS holds them (overseas collectivities).

    Raises
    ------
    DataError
        When a commune code appears in two files.
    """
    parts: dict[str, list[gpd.GeoDataFrame]] = {}
    seen: dict[str, Path] = {}
    dropped: list[str] = []
    for path, frame in layers:
        codes = frame["commune_code"]
        again = [c for c in codes if c in seen]
        if again:
            msg = (
                f"{path}: commune code(s) {again[:_MAX_LISTED]} already read from "
                f"{seen[again[0]]}; each commune must come from one file"
            )
            raise DataError(msg)
        seen.update(dict.fromkeys(codes, path))
        territory = territory_of(codes)
        dropped += codes[territory.isna().to_numpy()].tolist()
        for code, part in frame.groupby(territory.to_numpy(), sort=False):
            crs = TERRITORY_CRS[code]
            parts.setdefault(code, []).append(
                part if part.crs == crs else part.to_crs(crs)
            )
    frames = {
        code: gpd.GeoDataFrame(
            pd.concat(parts[code], ignore_index=True),
            geometry="geometry",
            crs=TERRITORY_CRS[code],
        )
        for code in TERRITORY_CRS
        if code in parts
    }
    if dropped:
        logger.warning(
            "%d commune(s) outside the territories of ADMIN EXPRESS set aside: %s",
            len(dropped),
            ", ".join(sorted(dropped)[:10]),
        )
    return frames, sorted(dropped)


# --------------------------------------------------------------------- composition
def _sniff_sep(header: str) -> str:
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
    raise DataError(msg)


def _read_csv_text(path: Path, text: str, what: str) -> pd.DataFrame:
    first = text.split("\n", 1)[0]
    try:
        return pd.read_csv(
            io.StringIO(text), sep=_sniff_sep(first), dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, ValueError) as exc:
        msg = f"{path}: cannot parse as {what} CSV: {exc}"
        raise DataError(msg) from exc


def _find_header(
    frame: pd.DataFrame, required: tuple[str, ...], path: Path, sheet: str
) -> pd.DataFrame:
    # INSEE puts a few title lines above the header (row 6 today); find it.
    for i in range(min(len(frame), 20)):
        row = [str(v).strip() for v in frame.iloc[i].tolist()]
        if all(col in row for col in required):
            body = frame.iloc[i + 1 :].copy()
            body.columns = row
            body = body.loc[:, [c for c in body.columns if c and c != "nan"]]
            body.index = body.index + 1  # 1-based spreadsheet row numbers
            return body.dropna(how="all")
    msg = f"{path}: sheet {sheet!r}: no header row with columns {list(required)} in the first 20 rows"
    raise DataError(msg)


def _clean_str(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip()


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
