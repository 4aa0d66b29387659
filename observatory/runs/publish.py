"""Publish a run's files: write into a staging folder, validate, rename in one step.

Nothing of a run is visible in ``<output>/<run_id>/`` before every file has
been written, read back and validated; a failure leaves no trace but the
staging folder, which the next run removes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pyproj

from observatory.config import OUTPUT_FORMATS
from observatory.core.errors import OutputError
from observatory.core.files import fsync_path
from observatory.core.timing import STAGING_PREFIX
from observatory.layers.files import RunFiles
from observatory.layers.geopackage import GEOPACKAGE_NAME
from observatory.layers.geoparquet import (
    GEOPARQUET_VERSION,
    ROW_GROUP_SIZE,
)
from observatory.layers.qgis_project import PROJECT_NAME, validate_project
from observatory.runs.geopackage_writing import GeoPackageWriting

logger = logging.getLogger(__name__)


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
        raise OutputError(msg, path=path)
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
        raise OutputError(msg, path=path)
    # The CRS a reader makes of the PROJJSON, as geopandas makes it (pyproj);
    # decoding the geometries as well cost 0.1 s a national run and checked
    # nothing more: the WKB is shapely's own.
    crs = _crs(column.get("crs"))
    found = crs.to_epsg() if crs is not None else None
    if found != epsg:
        seen = "no CRS" if crs is None else f"CRS {crs.name} (EPSG:{found})"
        msg = f"{path}: reads back with {seen}, expected EPSG:{epsg}"
        raise OutputError(msg, path=path)


def _crs(projjson: dict[str, Any] | None) -> pyproj.CRS | None:
    # None when the PROJJSON is missing or no CRS pyproj knows.
    if not projjson:
        return None
    try:
        return pyproj.CRS.from_user_input(projjson)
    except pyproj.exceptions.CRSError:
        return None


def publish(
    output_dir: Path,
    run_id: str,
    files: RunFiles,
    manifest: dict[str, Any],
    formats: Sequence[str] = OUTPUT_FORMATS,
    geopackage: GeoPackageWriting | None = None,
) -> dict[str, Path]:
    """Write and validate a run's files, then publish them as ``output_dir/<run_id>/``.

    Everything is written to ``output_dir/.staging-<run_id>/``, read back,
    validated and flushed to disk; the folder is then renamed to
    ``output_dir/<run_id>/`` in one step (same filesystem). A failure removes the
    staging folder and touches nothing else; a killed process leaves it behind
    for the next run to remove (:func:`observatory.runs.latest.remove_leftovers`).

    Parameters
    ----------
    output_dir
        Folder holding the run folders, created if needed.
    run_id
        Names the run folder (and the staging folder ``.staging-<run_id>``).
    files
        The tables (written as ``<stem>.parquet`` and/or as the layers of
        ``observatory.gpkg``), their QGIS styles (``<stem>.qml`` beside each
        Parquet file, the default style of each GeoPackage layer) and the side
        files (the data dictionary).
    manifest
        Written as ``manifest.json`` after the row counts, files and the time
        spent writing (``timings_s.write``) are added.
    formats
        ``geoparquet``, ``geopackage`` or both (``[output] formats``).
    geopackage
        The GeoPackage's helper process, started (and stopped) by the caller,
        asked to write ``files`` already or not; None: started here.

    Returns
    -------
    dict
        Published paths (inside ``output_dir/<run_id>/``) by file name.

    Raises
    ------
    OutputError
        When a file cannot be written or fails validation; nothing is published.
    """
    started = time.perf_counter()
    final = Path(output_dir) / run_id
    staging = Path(output_dir) / f"{STAGING_PREFIX}{run_id}"
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        msg = f"{output_dir}: cannot create the output folder ({exc.strerror or exc})"
        raise OutputError(msg, path=output_dir) from exc
    writing = geopackage
    if "geopackage" in formats and writing is None:
        writing = GeoPackageWriting.start(output_dir, run_id)
    try:
        if writing is not None and not writing.asked:
            writing.write(files)
        names = _write_files(staging, files, formats, writing)
        manifest["files"] = sorted([*names, "manifest.json"])
        manifest["rows"] = files.rows()
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
        raise OutputError(msg, path=output_dir) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if writing is not None and writing is not geopackage:
            writing.stop()


def _write_files(
    staging: Path,
    files: RunFiles,
    formats: Sequence[str],
    geopackage: GeoPackageWriting | None,
) -> list[str]:
    """Write, validate and flush the tables and side files; return their names.

    The GeoPackage is being written by a helper process meanwhile (``geopackage``,
    asked already); its file is moved into the staging folder once written,
    and its failure is raised here.
    """
    names = []
    texts = dict(files.texts)
    if "geoparquet" in formats:
        names += _write_geoparquet(staging, files)
        texts.update({f"{stem}.qml": qml for stem, qml in files.styles.items()})
    for name, text in texts.items():
        (staging / name).write_text(text, encoding="utf-8")
        fsync_path(staging / name)
        names.append(name)
    for name, content in files.documents.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        fsync_path(path)
        names.append(name)
    for folder in {(staging / name).parent for name in files.documents} - {staging}:
        fsync_path(folder)
    if "geopackage" in formats and geopackage is not None:
        written = geopackage.result()
        written.rename(staging / GEOPACKAGE_NAME)  # beside staging: one rename
        logger.info("wrote %s (%d layers)", GEOPACKAGE_NAME, len(files.tables))
        names.append(GEOPACKAGE_NAME)
    if PROJECT_NAME in files.documents:
        # The project must open the GeoPackage beside it, by a relative path.
        validate_project(staging / PROJECT_NAME, GEOPACKAGE_NAME, files.tables.keys())
    return names


def _write_geoparquet(staging: Path, files: RunFiles) -> list[str]:
    # Each table as <stem>.parquet, read back, validated and flushed.
    names = []
    for stem, (table, epsg) in files.tables.items():
        path = staging / f"{stem}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_SIZE)
        validate_written(path, table.num_rows, epsg)
        fsync_path(path)
        names.append(path.name)
        logger.info("wrote %s (%d rows)", path.name, table.num_rows)
    return names
