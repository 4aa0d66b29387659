"""Write the output layers: GeoParquet 1.1, a manifest, a data dictionary, QGIS aliases.

A run's files are first written to a staging folder
``<output>/.staging-<run_id>/``, read back, validated and flushed to disk; the
folder is then renamed to ``<output>/<run_id>/`` in one step. A failed run
removes its staging folder and leaves the outputs of earlier runs as they were.
Switching ``<output>/latest`` to the new run folder and pruning old ones is
:mod:`observatory.runs.refresh`'s job.

GeoParquet files follow the 1.1.0 specification: WKB geometry, PROJJSON CRS, a
``bbox`` covering column, zstd compression and the column types of
:mod:`observatory.layers.schemas`. The geometry field carries **no**
``ARROW:extension:name = geoarrow.wkb`` annotation: GDAL 3.9-3.12 built with Arrow
>= 21 (QGIS 3.44 / 4.0 bundles) report an unknown CRS on such columns
(OSGeo/gdal#14320, fixed in GDAL 3.13). Files written by GDAL itself carry no
annotation either, and the CRS is read from the ``geo`` metadata.

Each territory's layers are written in its official projected CRS: EPSG:2154
(Lambert-93) for mainland France as ``<layer>.parquet``, the overseas
departments' UTM CRS as ``<layer>_<territory>.parquet`` (``flows_REU.parquet``
in EPSG:2975...).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.core.errors import OutputError
from observatory.core.files import fsync_path
from observatory.core.timing import STAGING_PREFIX, pause_point
from observatory.geography import MAINLAND, TERRITORY_EPSG
from observatory.layers.schemas import Field

logger = logging.getLogger(__name__)


GEOPARQUET_VERSION = "1.1.0"


#: Official projected CRS a layer may be written in (one per territory).
OFFICIAL_EPSG = frozenset(TERRITORY_EPSG.values())


ROW_GROUP_SIZE = 50_000


METADATA_KEY = b"observatory"


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    # pyarrow may hand back WKB as a registered extension type: keep its storage.
    if isinstance(column.type, pa.ExtensionType):
        return pa.chunked_array(
            [chunk.storage for chunk in column.chunks], column.type.storage_type
        )
    return column


def _typed_columns(
    table: pa.Table, fields: list[Field]
) -> tuple[list[pa.Field], list[pa.ChunkedArray]]:
    missing = [f.name for f in fields if f.name not in table.column_names]
    if missing:
        msg = f"layer is missing column(s) {missing}"
        raise OutputError(msg)
    schema_fields, columns = [], []
    for f in fields:
        try:
            columns.append(_plain(table.column(f.name)).cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            msg = f"column {f.name} cannot be stored as {f.type}: {exc}"
            raise OutputError(msg) from exc
        schema_fields.append(
            pa.field(
                f.name,
                f.type,
                metadata={"description": f.description, "alias_fr": f.alias_fr},
            )
        )
    return schema_fields, columns


def layer_stem(layer: str, territory: str) -> str:
    """Return the file stem of a map layer: ``flows`` (mainland), ``flows_REU``..."""
    return layer if territory == MAINLAND else f"{layer}_{territory}"


def geoparquet_table(
    frame: gpd.GeoDataFrame, fields: list[Field], provenance: Mapping[str, Any]
) -> pa.Table:
    """Convert a layer to an Arrow table ready to be written as GeoParquet 1.1.

    Parameters
    ----------
    frame
        Layer with the columns of ``fields`` and a geometry in the official CRS
        of its territory (EPSG:2154 for mainland France).
    fields
        Output columns, in order, with their types.
    provenance
        JSON-serialisable record stored under the ``observatory`` key of the file
        metadata.
    """
    if frame.crs is None or frame.crs.to_epsg() not in OFFICIAL_EPSG:
        msg = (
            "layers are written in the official CRS of their territory "
            f"(EPSG {sorted(OFFICIAL_EPSG)}), got {frame.crs}"
        )
        raise OutputError(msg)
    buffer = io.BytesIO()
    # geopandas writes the 'geo' metadata and the covering bbox column.
    layer = gpd.GeoDataFrame(
        {f.name: frame[f.name].to_numpy() for f in fields},
        geometry=frame.geometry.to_numpy(),
        crs=frame.crs,
    )
    layer.to_parquet(
        buffer,
        index=False,
        schema_version=GEOPARQUET_VERSION,
        write_covering_bbox=True,
        geometry_encoding="WKB",
    )
    table = pq.read_table(pa.BufferReader(buffer.getvalue()))
    schema_fields, columns = _typed_columns(table, fields)
    schema_fields += [
        pa.field(
            "geometry", pa.binary()
        ),  # no geoarrow.wkb annotation (see module doc)
        table.schema.field("bbox"),
    ]
    columns += [_plain(table.column("geometry")), table.column("bbox")]
    metadata = {
        b"geo": table.schema.metadata[b"geo"],
        METADATA_KEY: json.dumps(provenance, ensure_ascii=False, default=str).encode(),
    }
    return pa.Table.from_arrays(
        columns, schema=pa.schema(schema_fields, metadata=metadata)
    )


def plain_table(
    frame: pd.DataFrame, fields: list[Field], provenance: Mapping[str, Any]
) -> pa.Table:
    """Convert a non-spatial layer (the flow matrix) to a typed Arrow table."""
    table = pa.Table.from_pandas(frame[[f.name for f in fields]], preserve_index=False)
    schema_fields, columns = _typed_columns(table, fields)
    metadata = {
        METADATA_KEY: json.dumps(provenance, ensure_ascii=False, default=str).encode()
    }
    return pa.Table.from_arrays(
        columns, schema=pa.schema(schema_fields, metadata=metadata)
    )


def validate_written(path: Path, expected_rows: int, epsg: int | None) -> None:
    """Read a written file back and check what readers rely on.

    ``epsg`` is the CRS a spatial layer must carry; None for a plain table.

    Raises
    ------
    OutputError
        When the row count, the GeoParquet metadata, the covering or the CRS is
        not what was meant to be written.
    """
    meta = pq.read_metadata(path)
    if meta.num_rows != expected_rows:
        msg = f"{path}: {meta.num_rows} rows written, {expected_rows} expected"
        raise OutputError(msg)
    if epsg is None:
        return
    geo = json.loads(meta.metadata[b"geo"])
    column = geo["columns"].get(geo.get("primary_column", ""), {})
    problems = []
    if geo.get("version") != GEOPARQUET_VERSION:
        problems.append(f"version {geo.get('version')!r}")
    if column.get("encoding") != "WKB":
        problems.append("encoding is not WKB")
    if "bbox" not in column.get("covering", {}):
        problems.append("no bbox covering")
    crs_id = (column.get("crs") or {}).get("id", {})
    if (crs_id.get("authority"), crs_id.get("code")) != ("EPSG", epsg):
        problems.append(f"crs is not EPSG:{epsg} ({crs_id})")
    field = pq.read_schema(path).field("geometry")
    if field.metadata and b"ARROW:extension:name" in field.metadata:
        problems.append("geometry carries an Arrow extension annotation")
    if problems:
        msg = f"{path}: invalid GeoParquet: {', '.join(problems)}"
        raise OutputError(msg)
    back = gpd.read_parquet(path)
    if back.crs is None or back.crs.to_epsg() != epsg:
        msg = f"{path}: reads back with CRS {back.crs}, expected EPSG:{epsg}"
        raise OutputError(msg)


def qgis_aliases(fields: list[Field]) -> str:
    """Return a QGIS style (``.qml``) holding French field aliases.

    QGIS loads ``<layer>.qml`` next to a file-based layer as its default style, so
    the attribute table shows the French labels while field names stay stable.
    """
    aliases = "\n".join(
        f'    <alias field={quoteattr(f.name)} index="{i}" name={quoteattr(f.alias_fr)}/>'
        for i, f in enumerate(fields)
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.34.0" styleCategories="Fields">\n'
        f"  <aliases>\n{aliases}\n  </aliases>\n"
        "</qgis>\n"
    )


def data_dictionary_csv(layers: Mapping[str, list[Field]]) -> str:
    """Return the data dictionary of the layers as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["layer", "column", "type", "description", "alias_fr"])
    for layer, fields in layers.items():
        for f in fields:
            writer.writerow([layer, f.name, str(f.type), f.description, f.alias_fr])
    return out.getvalue()


def publish(
    output_dir: Path,
    run_id: str,
    tables: Mapping[str, tuple[pa.Table, int | None]],
    texts: Mapping[str, str],
    manifest: dict[str, Any],
) -> dict[str, Path]:
    """Write and validate a run's files, then publish them as ``output_dir/<run_id>/``.

    Everything is written to ``output_dir/.staging-<run_id>/``, read back,
    validated and flushed to disk; the folder is then renamed to
    ``output_dir/<run_id>/`` in one step (same filesystem). A failure removes the
    staging folder and touches nothing else; a killed process leaves it behind
    for the next run to remove (:func:`observatory.runs.refresh.remove_leftovers`).

    Parameters
    ----------
    output_dir
        Folder holding the run folders, created if needed.
    run_id
        Names the run folder (and the staging folder ``.staging-<run_id>``).
    tables
        ``{file stem: (arrow table, EPSG code of a spatial layer or None)}``,
        written as ``<stem>.parquet``.
    texts
        ``{file name: content}`` for the side files (QGIS styles, dictionary).
    manifest
        Written as ``manifest.json`` after the row counts, files and the time
        spent writing (``timings_s.write``) are added.

    Returns
    -------
    dict
        Published paths (inside ``output_dir/<run_id>/``) by file name.
    """
    started = time.perf_counter()
    final = Path(output_dir) / run_id
    staging = Path(output_dir) / f"{STAGING_PREFIX}{run_id}"
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        msg = f"{output_dir}: cannot create the output folder ({exc.strerror or exc})"
        raise OutputError(msg) from exc
    try:
        names = []
        for stem, (table, epsg) in tables.items():
            path = staging / f"{stem}.parquet"
            pq.write_table(
                table, path, compression="zstd", row_group_size=ROW_GROUP_SIZE
            )
            validate_written(path, table.num_rows, epsg)
            fsync_path(path)
            names.append(path.name)
            logger.info("wrote %s (%d rows)", path.name, table.num_rows)
            pause_point("write.partial")
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
            fsync_path(staging / name)
            names.append(name)
        manifest["files"] = sorted([*names, "manifest.json"])
        manifest["rows"] = {stem: table.num_rows for stem, (table, _) in tables.items()}
        manifest.setdefault("timings_s", {})["write"] = round(
            time.perf_counter() - started, 3
        )
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
            encoding="utf-8",
        )
        fsync_path(staging / "manifest.json")
        fsync_path(staging)
        staging.rename(final)  # one step: the run folder appears complete
        fsync_path(Path(output_dir))
        logger.info("published %s", final)
        return {name: final / name for name in manifest["files"]}
    except OSError as exc:
        msg = (
            f"{output_dir}: writing run {run_id} failed ({exc.strerror or exc}); "
            "earlier outputs left in place"
        )
        raise OutputError(msg) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
