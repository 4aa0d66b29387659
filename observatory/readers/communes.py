"""Read the communes layer of ADMIN EXPRESS (or any file pyogrio reads, or GeoParquet).

Commune polygons with their INSEE code (and the EPCI SIREN when the layer has
it), checked feature by feature, and split by territory into each territory's
official CRS.

Both layouts of ADMIN EXPRESS COG CARTO are recognised without settings: the
shapefiles of edition 3-2 (``COMMUNE.shp``, fields ``INSEE_COM``, ``NOM``,
``SIREN_EPCI``) and edition 4-0 (2026: a GeoPackage of lower-case layers
``commune``, ``arrondissement_municipal``, ``epci``..., or one GeoParquet file
per layer; fields ``code_insee``, ``nom_officiel``, ``codes_siren_des_epci``,
geometry column ``geometrie``). Field and layer names match in any case.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pyproj

from observatory.core.errors import MAX_LISTED, DataError, examples_at
from observatory.geography import (
    SIREN,
    TARGET_CRS,
    TERRITORY_CRS,
    is_commune_code,
    on_distinct,
    territory_of,
)
from observatory.readers.operations import ProjOperations
from observatory.readers.polygons import RepairPolicy, checked_polygons
from observatory.readers.text import check_exists, first_present, one_line

logger = logging.getLogger(__name__)


_COMMUNE_CODE_FIELDS = (
    "INSEE_COM",
    "CODE_INSEE",
    "INSEE",
    "CODGEO",
    "CODE",
    "CODE_COM",
)


_COMMUNE_EPCI_FIELDS = (
    "SIREN_EPCI",
    "CODES_SIREN_DES_EPCI",
    "CODE_EPCI",
    "EPCI_SIREN",
    "EPCI",
    "SIREN_EPCI_",
)


_COMMUNE_NAME_FIELDS = ("NOM", "NOM_OFFICIEL", "NOM_COM", "LIBGEO", "NOM_M")


#: The commune layer of a multi-layer file (``COMMUNE`` up to edition 3-2,
#: ``commune`` in 4-0), compared in any case.
COMMUNE_LAYERS = ("commune",)


#: What ADMIN EXPRESS writes in the EPCI field of a commune in no EPCI.
NO_SIREN = "NR"


_PARQUET_SUFFIXES = (".parquet", ".geoparquet")


# --------------------------------------------------------------------- layer and fields
def _layer_names(path: Path) -> list[str]:
    """List the layers of a file pyogrio reads, or say it is no geometry file."""
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # GDAL raises many kinds; all mean "not readable"
        msg = f"{path}: cannot read as a geometry file (expected e.g. ADMIN EXPRESS COMMUNE.shp or a GeoPackage): {one_line(exc)}"
        raise DataError(msg, path=path) from exc
    return [str(name) for name in layers[:, 0]]


def choose_layer(path: Path, layer: str | None) -> str:
    """Return the layer of ``path`` holding the communes.

    ``layer`` (``[inputs] communes_layer``) is matched in any case; a file of
    one layer is read whatever it is called; in a file of several layers
    without ``layer``, the commune layer of ADMIN EXPRESS (``commune`` or
    ``COMMUNE``) is chosen and logged.

    Raises
    ------
    DataError
        Not a geometry file, ``layer`` absent from a multi-layer file, or several
        layers and none recognisable (naming the layers found).
    """
    names = _layer_names(path)
    if len(names) == 1:
        if layer is not None and names[0].lower() != layer.lower():
            logger.info("%s: one layer, %r, read as the communes", path, names[0])
        return names[0]
    wanted = (layer,) if layer is not None else COMMUNE_LAYERS
    found = [n for n in names if n.lower() in {w.lower() for w in wanted}]
    exact = [n for n in found if n in wanted]
    if len(found) == 1 or len(exact) == 1:
        chosen = exact[0] if len(exact) == 1 else found[0]
        if layer is None:
            logger.info(
                "%s: %d layers; reading the communes from layer %r",
                path,
                len(names),
                chosen,
            )
        return chosen
    if layer is not None:
        msg = f"{path}: no layer {layer!r} ([inputs] communes_layer) in the file; found layers {names}"
    else:
        msg = (
            f"{path}: {len(names)} layers and none is the commune layer of ADMIN EXPRESS "
            f"('commune' or 'COMMUNE'); set [inputs] communes_layer to one of {names}"
        )
    raise DataError(msg, path=path)


def _parquet_columns(path: Path) -> tuple[list[str], str]:
    """Return the attribute columns and the geometry column of a GeoParquet file."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        msg = f"{path}: cannot read as a GeoParquet file (expected e.g. ADMIN EXPRESS 4-0 commune.parquet): {one_line(exc)}"
        raise DataError(msg, path=path) from exc
    try:
        geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
    except ValueError:
        geo = {}
    primary = geo.get("primary_column") if isinstance(geo, dict) else None
    if not isinstance(primary, str) or primary not in schema.names:
        msg = (
            f"{path}: a Parquet file without GeoParquet metadata ('geo' with a primary "
            f"geometry column); expected a GeoParquet layer such as ADMIN EXPRESS 4-0 "
            f"commune.parquet, found columns {schema.names}"
        )
        raise DataError(msg, path=path)
    return [n for n in schema.names if n != primary], primary


def _fields(path: Path, columns: list[str]) -> tuple[str, str | None, str | None]:
    """Find the fields of the commune code, the EPCI SIREN and the name (any case)."""
    code_field = first_present(columns, _COMMUNE_CODE_FIELDS)
    if code_field is None:
        msg = (
            f"{path}: no commune code field; expected one of {list(_COMMUNE_CODE_FIELDS)} "
            f"(ADMIN EXPRESS: INSEE_COM, or code_insee from edition 4-0), found {columns}"
        )
        raise DataError(msg, path=path)
    epci_field = first_present(columns, _COMMUNE_EPCI_FIELDS)
    name_field = first_present(columns, _COMMUNE_NAME_FIELDS)
    return code_field, epci_field, name_field


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read features: {one_line(exc)}", path=path)


_Fields = tuple[str, str | None, str | None]


def _read_features(path: Path, layer: str | None) -> tuple[gpd.GeoDataFrame, _Fields]:
    """Read the fields of code, EPCI and name (:func:`_fields`) and the polygons."""
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        columns, geometry = _parquet_columns(path)
        fields = _fields(path, columns)
        wanted = [c for c in fields if c]
        try:
            return gpd.read_parquet(path, columns=[*wanted, geometry]), fields
        except Exception as exc:  # Arrow raises many kinds; all mean "unreadable"
            raise _unreadable(path, exc) from exc
    chosen = choose_layer(path, layer)
    try:
        names = list(pyogrio.read_info(path, layer=chosen)["fields"])
    except Exception as exc:  # GDAL raises many kinds; all mean "unreadable file"
        raise _unreadable(path, exc) from exc
    fields = _fields(path, names)
    wanted = [c for c in fields if c]
    try:
        # Through Arrow: a third faster, the same frame.
        frame = pyogrio.read_dataframe(
            path, layer=chosen, columns=wanted, use_arrow=True
        )
    except Exception as exc:  # GDAL raises many kinds; all mean "unreadable file"
        raise _unreadable(path, exc) from exc
    _check_text(frame, wanted, path)
    return frame, fields


def _check_text(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    """Refuse text Arrow was given as UTF-8 but is not (a wrong .cpg)."""
    for column in columns:
        values = frame[column].array
        if isinstance(values, pd.arrays.ArrowStringArray):
            try:
                pa.array(values).validate(full=True)
            except pa.ArrowInvalid as exc:
                msg = (
                    f"{path}: field {column} holds text that is not UTF-8 ({one_line(exc)}); "
                    "expected the encoding the layer declares (a shapefile's .cpg)"
                )
                raise DataError(msg, path=path) from exc


def epci_sirens(raw: pd.Series, valid: set[str] | None = None) -> pd.Series:
    """Return the EPCI SIREN of each commune as its geometry file gives it, when one is sure.

    ADMIN EXPRESS writes several SIREN separated by ``/`` where a commune
    belongs to several groupings (the communes of Grand Paris: the métropole and
    an EPT), and ``NR`` where it belongs to none (a missing value here). The
    order of several values is not documented, so the first is never taken
    blindly: of several, those in ``valid`` (the EPCI of the composition, which
    stays the reference) are kept, or the 9-digit ones when ``valid`` is None,
    and a commune left with exactly one gets it, any other a missing value. A
    single value is kept as it is: one outside the composition is a
    disagreement the membership report counts.
    """

    def pick(text: object) -> object:
        if not isinstance(text, str):
            return pd.NA
        parts = sorted({p.strip() for p in text.split("/")} - {"", NO_SIREN})
        if len(parts) > 1:
            parts = [
                p
                for p in parts
                if (p in valid if valid is not None else SIREN.fullmatch(p))
            ]
        return parts[0] if len(parts) == 1 else pd.NA

    return on_distinct(raw.astype("string"), lambda u: u.map(pick).astype("string"))


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


def reprojected(
    geometry: gpd.GeoSeries,
    crs: str | None,
    path: Path,
    operations: ProjOperations | None = None,
) -> Any:
    """Return the polygons in ``crs`` (as they are when None), or say why not.

    With ``operations``, PROJ's choice of transformation is taken from (and
    kept in) it rather than searched again: the same coordinates.
    """
    if crs is None:
        return geometry.values
    try:
        if operations is not None:
            return operations.to_crs(geometry, crs)
        return geometry.to_crs(crs).values
    except pyproj.exceptions.ProjError as exc:
        msg = f"{path}: cannot reproject from the layer's CRS to {crs}: {one_line(exc)}"
        raise DataError(msg, path=path) from exc


def _check_layer(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Refuse a layer without a CRS or without a feature."""
    if gdf.crs is None:
        msg = f"{path}: the layer has no CRS (a .prj file is missing?); expected a projected or geographic CRS"
        raise DataError(msg, path=path)
    if gdf.empty:
        msg = f"{path}: no feature in the layer: expected one polygon per commune"
        raise DataError(msg, path=path)


def read_communes(
    path: Path,
    layer: str | None = None,
    target_crs: str | None = TARGET_CRS,
    *,
    epci_codes: set[str] | None = None,
    repairs: RepairPolicy | None = None,
) -> gpd.GeoDataFrame:
    """Read commune polygons with their INSEE code (and EPCI SIREN when present).

    Parameters
    ----------
    path
        Any file pyogrio reads, e.g. ADMIN EXPRESS ``COMMUNE.shp`` (3-2) or its
        4-0 GeoPackage, or a GeoParquet layer (4-0 ``commune.parquet``).
    layer
        Layer name for multi-layer files, in any case (see :func:`choose_layer`:
        without it, the ``commune`` layer of a GeoPackage is found); a file of
        one layer, and GeoParquet, are read whatever it says.
    target_crs
        CRS of the returned frame; None keeps the file's own CRS (see
        :func:`communes_by_territory`).
    epci_codes
        The EPCI SIREN of the composition: the values of the file's EPCI field
        kept (:func:`epci_sirens`).
    repairs
        What to do with invalid polygons (see
        :func:`~observatory.readers.polygons.checked_polygons`): by default,
        repair them, each a warning, and refuse a repair changing an area by
        more than 1 %.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``commune_code``, ``commune_name``, ``epci_code_geo`` (SIREN read
        from the geometry file, missing where it gives none or several) and
        ``geometry``.

    Raises
    ------
    SourceError
        The file does not exist.
    DataError
        Unreadable file, no commune layer, no feature, no code field, bad or
        repeated codes, features without a polygon, or a repair changing an area
        too much (naming the feature, from 0), no CRS.
    """
    check_exists(path, "communes")
    gdf, (code_field, epci_field, name_field) = _read_features(path, layer)
    _check_layer(gdf, path)
    codes = _checked_codes(gdf[code_field], code_field, path)
    names = gdf[name_field] if name_field else None
    geometry = checked_polygons(
        cast("np.ndarray", gdf.geometry.values),
        codes,
        names,
        path,
        repairs or RepairPolicy(),
    )
    out = gpd.GeoDataFrame(
        {
            "commune_code": codes.to_numpy(),
            "commune_name": (
                gdf[name_field].astype("string").to_numpy() if name_field else pd.NA
            ),
            "epci_code_geo": (
                epci_sirens(gdf[epci_field], epci_codes).to_numpy()
                if epci_field
                else pd.NA
            ),
        },
        geometry=reprojected(gpd.GeoSeries(geometry, crs=gdf.crs), target_crs, path),
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
    territory. This is :func:`split_by_territory` then :func:`in_territory_crs`.

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
        When a commune code appears in two files, or a layer cannot be reprojected.
    """
    parts, dropped = split_by_territory(layers)
    return in_territory_crs(parts), dropped


#: Commune layers split by territory: ``{territory: [(path, part in the file's CRS)]}``.
TerritoryParts = dict[str, list[tuple[Path, gpd.GeoDataFrame]]]


def split_by_territory(
    layers: list[tuple[Path, gpd.GeoDataFrame]],
) -> tuple[TerritoryParts, list[str]]:
    """Split commune layers by territory, each part still in its file's CRS.

    Returns the parts and the codes no territory of ADMIN EXPRESS holds
    (overseas collectivities), sorted; see :func:`communes_by_territory`.
    """
    parts: TerritoryParts = {}
    seen: dict[str, Path] = {}
    dropped: list[str] = []
    for path, frame in layers:
        codes = frame["commune_code"]
        again = codes[codes.isin(list(seen))].tolist() if seen else []
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
            parts.setdefault(str(key), []).append(
                (path, cast("gpd.GeoDataFrame", part))
            )
    if dropped:
        logger.warning(
            "%d commune(s) outside the territories of ADMIN EXPRESS set aside: %s",
            len(dropped),
            ", ".join(sorted(dropped)[:10]),
        )
    return parts, sorted(dropped)


def in_territory_crs(
    parts: TerritoryParts, operations: ProjOperations | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Put each territory's parts in its official CRS, one frame per territory.

    PROJ takes some 0.2 s of CPU to choose each transformation (from Lambert-93
    to an overseas UTM, say), without holding the GIL: the pipeline runs this in
    a thread of its own (:func:`observatory.runs.reading.read_inputs`) and passes
    ``operations``, PROJ's earlier choices kept in the download cache (saved
    here when there are new ones); without it, PROJ searches every time.
    """
    frames = {}
    for code in TERRITORY_CRS:
        if code not in parts:
            continue
        crs = TERRITORY_CRS[code]
        projected = [
            part
            if part.crs == crs
            else part.set_geometry(reprojected(part.geometry, crs, path, operations))
            for path, part in parts[code]
        ]
        frames[code] = gpd.GeoDataFrame(
            pd.concat(projected, ignore_index=True), geometry="geometry", crs=crs
        )
    if operations is not None:
        operations.save()
    return frames
