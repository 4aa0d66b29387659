"""One GeoPackage holding every layer of a run, each with its QGIS style as default.

GDAL and QGIS packages without Arrow (Debian, Ubuntu: GDAL 3.6 / QGIS 3.22)
cannot read Parquet; ``observatory.gpkg`` carries the same tables for them:

- GeoPackage **1.2** (``VERSION=1.2``): GDAL 3.6 opens it without warnings (GDAL
  >= 3.7 writes 1.4 by default, which older readers flag as partially supported);
- every map layer of every territory, each in its CRS, under its file stem
  (``flows``, ``flows_REU``...), geometry column ``geometry`` (multi-polygons
  for polygons, as the specification wants one geometry type per layer);
- ``flow_matrix`` as an attribute table (no geometry);
- the column types of :mod:`observatory.layers.schemas`, their French aliases and
  descriptions in ``gpkg_data_columns`` (``name``, GDAL's alternative name,
  and ``description``);
- each layer's style as its default in ``layer_styles`` (the table and columns
  QGIS itself creates), so the file opens styled wherever it is copied.

:func:`write_geopackage` writes the file into a given folder and validates it by
reading it back; placing it in a run folder is :mod:`observatory.runs.publish`'s job.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

from observatory.core.errors import OutputError
from observatory.layers.geoparquet import METADATA_KEY

#: File name of the GeoPackage in a run folder.
GEOPACKAGE_NAME = "observatory.gpkg"


#: GeoPackage version written (``PRAGMA user_version`` 10200).
GEOPACKAGE_VERSION = "1.2"


#: The table QGIS reads a GeoPackage layer's default style from.
STYLES_TABLE = "layer_styles"


#: Geometry column of the map layers (the Parquet files' name).
GEOMETRY_COLUMN = "geometry"


#: Field metadata GDAL turns into ``gpkg_data_columns`` title and description.
_GDAL_ALIAS, _GDAL_COMMENT = b"GDAL:OGR:alternative_name", b"GDAL:OGR:comment"


#: GDAL's option for SQLite's ``PRAGMA synchronous`` on the files it opens.
_SYNCHRONOUS = "OGR_SQLITE_SYNCHRONOUS"


#: Geometry type of each map layer, whatever its rows (an empty layer has none).
LAYER_GEOMETRY = {
    "epci_indicators": "MultiPolygon",
    "flows": "LineString",
    "metropoles": "MultiPolygon",
    "dominant_flows": "LineString",
}


def _geometry_type(stem: str, table: pa.Table) -> str:
    """Return the GeoPackage geometry type of a layer: its layer's, else its rows'."""
    for layer, kind in LAYER_GEOMETRY.items():
        if stem == layer or stem.startswith(f"{layer}_"):
            return kind
    # The GeoParquet metadata lists the geometry types of the column.
    geo = json.loads(table.schema.metadata[b"geo"])
    types = set(geo["columns"][GEOMETRY_COLUMN].get("geometry_types", []))
    if types and types <= {"Polygon", "MultiPolygon"}:
        return "MultiPolygon"
    if types == {"LineString"}:
        return "LineString"
    return "Unknown"


def _gpkg_table(table: pa.Table, geometry_type: str | None) -> pa.Table:
    """Return the columns written to the GeoPackage: no ``bbox``, multi-polygons.

    Field descriptions and aliases move to the metadata keys GDAL writes into
    ``gpkg_data_columns``.
    """
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if field.name == "bbox":
            continue  # the GeoParquet covering; a GeoPackage has its R-tree
        if field.name == GEOMETRY_COLUMN and geometry_type == "MultiPolygon":
            geometries = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
            polygons = shapely.get_type_id(geometries) == shapely.GeometryType.POLYGON
            # Each polygon the only part of its multi-polygon.
            parts = np.arange(np.count_nonzero(polygons))
            geometries[polygons] = shapely.multipolygons(
                geometries[polygons], indices=parts
            )
            column = pa.chunked_array([shapely.to_wkb(geometries)], pa.binary())
        metadata = field.metadata or {}
        gdal = {
            key: metadata[ours]
            for key, ours in (
                (_GDAL_ALIAS, b"alias_fr"),
                (_GDAL_COMMENT, b"description"),
            )
            if ours in metadata
        }
        fields.append(pa.field(field.name, field.type, metadata=gdal or None))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def styles_table(
    styles: Mapping[str, str], geometry_columns: Mapping[str, str]
) -> pa.Table:
    """Return the rows of ``layer_styles``: one default style per layer.

    Parameters
    ----------
    styles
        QML text by layer (table) name.
    geometry_columns
        Geometry column of each layer, ``""`` for an attribute table (QGIS looks a
        style up by table name and geometry column).
    """
    names = list(styles)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    text = pa.string()
    return pa.table(
        {
            "f_table_catalog": pa.array([""] * len(names), text),
            "f_table_schema": pa.array([""] * len(names), text),
            "f_table_name": pa.array(names, text),
            "f_geometry_column": pa.array([geometry_columns[n] for n in names], text),
            "styleName": pa.array(names, text),
            "styleQML": pa.array([styles[n] for n in names], text),
            "styleSLD": pa.array([""] * len(names), text),
            "useAsDefault": pa.array([True] * len(names), pa.bool_()),
            "description": pa.array(
                ["Style par défaut (observatory)"] * len(names), text
            ),
            "owner": pa.array([""] * len(names), text),
            "ui": pa.array([None] * len(names), text),
            "update_time": pa.array([now] * len(names), pa.timestamp("ms", "UTC")),
        }
    )


def _provenance(table: pa.Table) -> dict[str, str] | None:
    # The run's provenance, as in the Parquet files (gpkg_metadata, per layer).
    metadata = table.schema.metadata or {}
    if METADATA_KEY not in metadata:
        return None
    return {METADATA_KEY.decode(): metadata[METADATA_KEY].decode()}


@contextmanager
def _unsynchronised() -> Iterator[None]:
    """Let GDAL's SQLite skip its flush to disk at each commit while it writes.

    ``OGR_SQLITE_SYNCHRONOUS=OFF`` (``PRAGMA synchronous = OFF``): a system crash
    could leave the file damaged, but the file is written into a staging folder,
    which a failed run drops, and flushed once before it is published
    (:func:`observatory.runs.publish.publish`). A flush per layer cost 50 ms
    holding the GIL on the national run. The previous value is set back.
    """
    previous = pyogrio.get_gdal_config_option(_SYNCHRONOUS)
    pyogrio.set_gdal_config_options({_SYNCHRONOUS: "OFF"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({_SYNCHRONOUS: previous})


def write_geopackage(
    folder: Path,
    tables: Mapping[str, tuple[pa.Table, int | None]],
    styles: Mapping[str, str],
    name: str = GEOPACKAGE_NAME,
) -> Path:
    """Write every table into one GeoPackage 1.2 with its default style; validate it.

    Parameters
    ----------
    folder
        Existing folder the file is written into (a run's staging folder); a file
        of the same name there is replaced.
    tables
        ``{layer name: (Arrow table, EPSG code or None)}`` as
        :func:`observatory.layers.files.run_files` makes them: GeoParquet tables
        (``geometry`` as WKB, ``bbox``, ``geo`` metadata) for map layers, plain
        tables (EPSG None) written as attribute tables.
    styles
        QML text by layer name (:func:`observatory.layers.styles.layer_styles`
        keyed by file stem), stored as each layer's default style.
    name
        File name, :data:`GEOPACKAGE_NAME` by default.

    Returns
    -------
    Path
        The GeoPackage written.

    Raises
    ------
    OutputError
        When a table cannot be written or the file does not read back as written.
    """
    path = Path(folder) / name
    path.unlink(missing_ok=True)
    try:
        with _unsynchronised():
            styled = _write_layers(path, tables, styles)
    except (
        OSError,
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
    ) as exc:
        msg = f"{path}: cannot write the GeoPackage ({exc})"
        raise OutputError(msg, path=path) from exc
    validate_geopackage(path, tables, styled)
    return path


def _write_layers(
    path: Path,
    tables: Mapping[str, tuple[pa.Table, int | None]],
    styles: Mapping[str, str],
) -> set[str]:
    """Write the tables, then their default styles; return the layers styled."""
    geometry_columns: dict[str, str] = {}
    options: dict[str, Any] = {"dataset_options": {"VERSION": GEOPACKAGE_VERSION}}
    for layer, (table, epsg) in tables.items():
        kind = _geometry_type(layer, table) if epsg is not None else None
        spatial: dict[str, Any] = {}
        if kind is not None:
            spatial = {"geometry_name": GEOMETRY_COLUMN, "geometry_type": kind}
            spatial |= {"crs": f"EPSG:{epsg}"}
            spatial["layer_options"] = {"GEOMETRY_NAME": GEOMETRY_COLUMN}
        pyogrio.write_arrow(
            _gpkg_table(table, kind), path, layer=layer, driver="GPKG",
            layer_metadata=_provenance(table), **spatial, **options,
        )  # fmt: skip
        options = {}  # dataset options apply when the file is created
        geometry_columns[layer] = GEOMETRY_COLUMN if kind is not None else ""
    rows = styles_table(
        {k: v for k, v in styles.items() if k in tables}, geometry_columns
    )
    pyogrio.write_arrow(
        rows, path, layer=STYLES_TABLE, driver="GPKG", layer_options={"FID": "id"}
    )
    return set(rows.column("f_table_name").to_pylist())


def validate_geopackage(
    path: Path,
    tables: Mapping[str, tuple[pa.Table, int | None]],
    styled: set[str],
) -> None:
    """Read a GeoPackage back: version, layers, row counts, CRS and default styles.

    Parameters
    ----------
    path
        The GeoPackage.
    tables
        What was written, as :func:`write_geopackage` was given it.
    styled
        The layers that must have a default style.

    Raises
    ------
    OutputError
        Naming every difference from what was meant to be written.
    """
    problems = []
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            defaults = db.execute(
                f"SELECT f_table_name FROM {STYLES_TABLE} WHERE useAsDefault"
            ).fetchall()
    except sqlite3.Error as exc:
        msg = f"{path}: unreadable GeoPackage ({exc})"
        raise OutputError(msg, path=path) from exc
    if version != 10200:
        problems.append(f"GeoPackage version {version}, expected 10200 (1.2)")
    if {row[0] for row in defaults} != styled:
        problems.append(f"default styles for {sorted(r[0] for r in defaults)}")
    found = {str(n): str(t) for n, t in pyogrio.list_layers(path)}
    for layer, (table, epsg) in tables.items():
        if layer not in found:
            problems.append(f"layer {layer} missing")
            continue
        info = pyogrio.read_info(path, layer=layer, force_feature_count=True)
        if info["features"] != table.num_rows:
            problems.append(
                f"{layer}: {info['features']} rows, {table.num_rows} expected"
            )
        crs = info["crs"]
        if (crs or None) != (f"EPSG:{epsg}" if epsg is not None else None):
            problems.append(f"{layer}: CRS {crs}, expected EPSG:{epsg}")
    if problems:
        msg = f"{path}: invalid GeoPackage: {'; '.join(problems)}"
        raise OutputError(msg, path=path)
