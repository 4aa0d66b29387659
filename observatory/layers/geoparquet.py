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
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.core.errors import OutputError
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
