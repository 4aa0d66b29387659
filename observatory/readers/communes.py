"""Read the communes layer (ADMIN EXPRESS COMMUNE or any file pyogrio reads).

Commune polygons with their INSEE code (and the EPCI SIREN when the layer has
it), checked feature by feature, and split by territory into each territory's
official CRS.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from observatory.core.errors import MAX_LISTED, DataError, examples_at
from observatory.geography import (
    TARGET_CRS,
    TERRITORY_CRS,
    is_commune_code,
    territory_of,
)
from observatory.readers.text import check_exists, first_present

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------- communes
def _fields(path: Path, layer: str | None) -> tuple[str, str | None, str | None]:
    """Find the fields of the commune code, the EPCI SIREN and the name."""
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"{path}: cannot read as a geometry file (expected e.g. ADMIN EXPRESS COMMUNE.shp): {exc}"
        raise DataError(msg, path=path) from exc
    columns = list(info["fields"])
    code_field = first_present(columns, _COMMUNE_CODE_FIELDS)
    if code_field is None:
        msg = (
            f"{path}: no commune code field; expected one of {list(_COMMUNE_CODE_FIELDS)} "
            f"(ADMIN EXPRESS: INSEE_COM), found {columns}"
        )
        raise DataError(msg, path=path)
    epci_field = first_present(columns, _COMMUNE_EPCI_FIELDS)
    name_field = first_present(columns, _COMMUNE_NAME_FIELDS)
    return code_field, epci_field, name_field


def _checked_codes(raw_codes: pd.Series, code_field: str, path: Path) -> pd.Series:
    """Commune codes, stripped: text, well formed and unique, or an error."""
    fid = pd.RangeIndex(len(raw_codes))
    if not pd.api.types.is_string_dtype(raw_codes) and not pd.api.types.is_object_dtype(
        raw_codes
    ):
        msg = (
            f"{path}: field {code_field} is stored as {raw_codes.dtype}, expected text: "
            "commune codes are 5-character strings (leading zeros, 2A/2B)"
        )
        raise DataError(msg, path=path)
    codes = raw_codes.astype("string").str.strip()
    bad = ~is_commune_code(codes)
    if bad.any():
        at = fid[bad.to_numpy()]
        msg = (
            f"{path}: field {code_field} must hold 5-character INSEE commune codes; "
            + examples_at(codes[bad].tolist(), at, "feature")
        )
        raise DataError(msg, path=path, line=int(at[0]))
    if codes.duplicated().any():
        dup = codes[codes.duplicated(keep=False)]
        at = fid[dup.index.to_numpy()]
        msg = f"{path}: commune codes must be unique; " + examples_at(
            dup.tolist(), at, "feature"
        )
        raise DataError(msg, path=path, line=int(at[0]))
    return codes


def _checked_polygons(geometry: np.ndarray, codes: pd.Series, path: Path) -> np.ndarray:
    """Polygons, invalid ones repaired; features without one are an error."""
    missing = shapely.is_missing(geometry) | shapely.is_empty(geometry)
    if missing.any():
        at = pd.RangeIndex(len(geometry))[missing]
        msg = f"{path}: features without geometry; " + examples_at(
            codes[missing].tolist(), at, "feature"
        )
        raise DataError(msg, path=path, line=int(at[0]))
    kinds = set(shapely.get_type_id(geometry).tolist()) - {3, 6}
    if kinds:
        msg = f"{path}: expected Polygon or MultiPolygon geometries, found other types"
        raise DataError(msg, path=path)
    invalid = ~shapely.is_valid(geometry)
    if invalid.any():
        logger.info("%s: repaired %d invalid polygon(s)", path, int(invalid.sum()))
        geometry = geometry.copy()
        # "structure" keeps polygons polygonal (no stray lines from collapsed parts).
        geometry[invalid] = shapely.make_valid(
            geometry[invalid], method="structure", keep_collapsed=False
        )
    return geometry


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

    Raises
    ------
    SourceError
        The file does not exist.
    DataError
        Unreadable file, no code field, bad or repeated codes, features without
        a polygon (naming the feature, from 0), no CRS.
    """
    check_exists(path, "communes")
    code_field, epci_field, name_field = _fields(path, layer)
    wanted = [c for c in (code_field, epci_field, name_field) if c]
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer, columns=wanted)
    except Exception as exc:  # GDAL raises many kinds; all mean "unreadable file"
        msg = f"{path}: cannot read features: {exc}"
        raise DataError(msg, path=path) from exc
    if gdf.crs is None:
        msg = f"{path}: the layer has no CRS (a .prj file is missing?); expected a projected or geographic CRS"
        raise DataError(msg, path=path)
    codes = _checked_codes(gdf[code_field], code_field, path)
    geometry = _checked_polygons(gdf.geometry.values, codes, path)
    epci_codes = (
        gdf[epci_field].astype("string").str.split("/").str[0].str.strip().to_numpy()
        if epci_field
        else pd.NA
    )
    out = gpd.GeoDataFrame(
        {
            "commune_code": codes.to_numpy(),
            "commune_name": (
                gdf[name_field].astype("string").to_numpy() if name_field else pd.NA
            ),
            "epci_code_geo": epci_codes,
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
                f"{path}: commune code(s) {again[:MAX_LISTED]} already read from "
                f"{seen[again[0]]}; each commune must come from one file"
            )
            raise DataError(msg)
        seen.update(dict.fromkeys(codes, path))
        territory = territory_of(codes)
        dropped += codes[territory.isna().to_numpy()].tolist()
        for key, part in frame.groupby(territory.to_numpy(), sort=False):
            code = str(key)
            crs = TERRITORY_CRS[code]
            layer = cast("gpd.GeoDataFrame", part)
            parts.setdefault(code, []).append(
                layer if layer.crs == crs else layer.to_crs(crs)
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
