"""Turn layers into typed Arrow tables: GeoParquet 1.1 for maps, plain Parquet for the matrix.

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
in EPSG:2975...). Writing and publishing the files is
:mod:`observatory.runs.publish`'s job.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.core.errors import OutputError
from observatory.geography import TERRITORY_EPSG
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
    return _typed(fields, [_plain(table.column(f.name)) for f in fields])


def _typed(
    fields: list[Field], arrays: list[pa.Array | pa.ChunkedArray]
) -> tuple[list[pa.Field], list[pa.ChunkedArray]]:
    # Cast each column to its field's type; the field carries its description.
    schema_fields, columns = [], []
    for f, array in zip(fields, arrays, strict=True):
        try:
            columns.append(array.cast(f.type))
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


def _attribute(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    # The column as geopandas converts a frame made of numpy arrays: the values
    # as numpy, their dtype inferred by pandas, then pyarrow's (NaN is null).
    # Strings are Arrow strings already: the same values, no Python object each.
    if isinstance(values.dtype, pd.StringDtype):
        return pa.array(values.array, from_pandas=True)
    return pa.array(pd.Series(values.to_numpy()), from_pandas=True)


def _geometry(frame: gpd.GeoDataFrame) -> pa.Table:
    """Return the WKB ``geometry`` and ``bbox`` columns with the ``geo`` metadata.

    geopandas writes them (CRS, geometry types, bbox and covering); the other
    columns do not enter the ``geo`` metadata, so only the geometry makes the trip.
    """
    buffer = io.BytesIO()
    shapes = gpd.GeoDataFrame(geometry=frame.geometry.to_numpy(), crs=frame.crs)
    shapes.to_parquet(
        buffer,
        index=False,
        schema_version=GEOPARQUET_VERSION,
        write_covering_bbox=True,
        geometry_encoding="WKB",
        compression=None,  # read back at once: compressing would be wasted
    )
    return pq.ParquetFile(pa.BufferReader(buffer.getvalue())).read()


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
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        msg = f"layer is missing column(s) {missing}"
        raise OutputError(msg)
    schema_fields, columns = _typed(fields, [_attribute(frame[f.name]) for f in fields])
    table = _geometry(frame)
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
