"""PROJ's choice of coordinate operation, remembered between runs.

``Transformer.from_crs`` (what ``GeoSeries.to_crs`` calls) makes PROJ search its
database for every operation between two CRS, rank them and keep the best:
some 0.2 s of CPU for Lambert-93 to an overseas UTM, four searches on every
national run (Guadeloupe and Martinique share EPSG:5490). The search gives the same answer as long as nothing it depends on
changes, so :class:`ProjOperations` keeps the operation PROJ chose (as
PROJJSON) in a small JSON file of the download cache and, on the next run,
builds the transformer straight from it with ``Transformer.from_pipeline``: the
same operation, hence the same coordinates, bit for bit.

It is honest about what it keeps:

- Only a transformer made of ONE operation is kept. When several operations
  apply to parts of the area (say NAD27 to WGS 84), PROJ returns a transformer
  that picks one point by point; it has no single definition (``to_json()``
  gives None, pyproj issue #1549) and is searched again on every run.
- The file is valid for one environment (:func:`proj_environment`): the PROJ and
  pyproj versions, the database (path, size, time, ``metadata`` table), the grid
  files PROJ can find, network access and the ``PROJ_*`` variables. Any change,
  and a file unreadable or not of this format, empties it (a DEBUG line): it is
  searched again and rewritten.
- Writing is atomic and never fails a run: a folder one cannot write to is a
  warning.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from geopandas.array import GeometryArray, from_shapely
from pyproj import CRS, Transformer
from pyproj.datadir import get_data_dir, get_user_data_dir

from observatory.core.files import write_text_atomic
from observatory.core.fserrors import describe_os_error

logger = logging.getLogger(__name__)

#: The name of the file in the download cache.
OPERATIONS_FILE = "proj-operations.json"

#: What the file says it is; another value (a later layout) is ignored.
FORMAT = "observatory-proj-operations/1"

#: The options every transformer is made with (as ``GeoSeries.to_crs`` does).
ALWAYS_XY = True


def _files_in(folder: Path) -> list[list[Any]]:
    # Name and size of the files PROJ may read there: a grid added (or
    # removed) can change which operation is the best available one.
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [[e.name, e.stat().st_size] for e in entries if e.is_file()]


def _database(folder: Path) -> dict[str, Any]:
    """Describe ``proj.db``: path, size, time and its ``metadata`` table."""
    path = (folder / "proj.db").resolve()
    stat = path.stat()
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        metadata = sorted(db.execute("SELECT key, value FROM metadata").fetchall())
    return {
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "metadata": [list(row) for row in metadata],
    }


def proj_environment() -> dict[str, Any]:
    """Return everything PROJ's choice of operation depends on besides the two CRS.

    Raises
    ------
    OSError, sqlite3.Error, pyproj.exceptions.DataDirError
        PROJ's data folder or database cannot be found or read.
    """
    folders = [Path(p) for p in get_data_dir().split(os.pathsep) if p]
    with_db = next((f for f in folders if (f / "proj.db").is_file()), None)
    if with_db is None:
        msg = f"no proj.db in PROJ's data folders {folders}"
        raise FileNotFoundError(msg)
    user = Path(get_user_data_dir(create=False))
    return {
        "proj": pyproj.proj_version_str,
        "pyproj": pyproj.__version__,
        "database": _database(with_db),
        "grids": {str(f): _files_in(f) for f in [*folders, user]},
        "network": pyproj.network.is_network_enabled(),
        "variables": {
            k: v for k, v in sorted(os.environ.items()) if k.startswith("PROJ_")
        },
        "always_xy": ALWAYS_XY,
    }


def single_operation(transformer: Transformer) -> str | None:
    """Return the PROJJSON of the one operation ``transformer`` applies, or None.

    None when PROJ kept several candidate operations, to choose point by point
    by area of use (no single definition: ``to_json()`` gives None), and when
    the PROJJSON does not rebuild the same pipeline.
    """
    try:
        operation = transformer.to_json()
    except pyproj.exceptions.ProjError:
        return None
    if not operation:
        return None
    try:
        again = Transformer.from_pipeline(operation)
    except pyproj.exceptions.ProjError:
        return None
    return operation if again.definition == transformer.definition else None


class ProjOperations:
    """Transformers between CRS, PROJ's choice kept in a JSON file between runs.

    Parameters
    ----------
    path
        The JSON file (e.g. ``<download cache>/proj-operations.json``); read on
        the first transformer asked for, written by :meth:`save`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.from_cache = 0
        self.searched = 0
        self._environment: dict[str, Any] | None = None
        self._stored: dict[tuple[str, str], str] | None = None
        self._changed = False
        self._made: dict[tuple[str, str], Transformer] = {}

    def transformer(self, source: CRS, target: CRS) -> Transformer:
        """Return the transformer from ``source`` to ``target`` (x, y order).

        The kept operation when there is one, else ``Transformer.from_crs``
        (PROJ's search), whose operation is kept when it is a single one.

        Raises
        ------
        pyproj.exceptions.ProjError
            PROJ finds no operation between the two CRS.
        """
        key = (source.to_wkt(), target.to_wkt())
        if key in self._made:
            return self._made[key]
        stored = self._load().get(key)
        made = self._rebuilt(stored) if stored is not None else None
        if made is not None:
            self.from_cache += 1
        else:
            made = Transformer.from_crs(source, target, always_xy=ALWAYS_XY)
            self.searched += 1
            operation = single_operation(made) if self._environment else None
            if operation is not None:
                self._load()[key] = operation
            elif stored is not None:
                del self._load()[key]  # PROJ no longer reads it: not kept
            self._changed |= operation is not None or stored is not None
        self._made[key] = made
        return made

    def to_crs(self, geometry: gpd.GeoSeries, crs: str) -> GeometryArray:
        """Return ``geometry.to_crs(crs).values``, with :meth:`transformer`.

        The coordinates are transformed as geopandas does (2D and 3D
        geometries apart, x and y arrays to ``Transformer.transform``), so the
        result is the same, bit for bit, as ``GeoSeries.to_crs``.
        """
        target = CRS.from_user_input(crs)
        if geometry.crs is None or geometry.crs.is_exact_same(target):
            return geometry.to_crs(target).values  # geopandas' error, or no change
        transformer = self.transformer(geometry.crs, target)
        data = geometry.to_numpy()
        result = np.empty_like(data)
        has_z = shapely.has_z(data)
        for rows, include_z in ((~has_z, False), (has_z, True)):
            if not rows.any():
                continue
            coords = shapely.get_coordinates(data[rows], include_z=include_z)
            moved = transformer.transform(*coords.T)
            result[rows] = shapely.set_coordinates(data[rows], np.array(moved).T)
        return from_shapely(result, crs=target)

    def _rebuilt(self, operation: str) -> Transformer | None:
        try:
            return Transformer.from_pipeline(operation)
        except pyproj.exceptions.ProjError as exc:
            logger.debug("%s: a kept operation is not valid (%s)", self.path, exc)
            return None

    def _load(self) -> dict[tuple[str, str], str]:
        """Read the kept operations once; none when the file is absent, stale or bad."""
        if self._stored is not None:
            return self._stored
        self._stored = {}
        try:
            self._environment = proj_environment()
        except (OSError, sqlite3.Error, pyproj.exceptions.DataDirError) as exc:
            # Without a fingerprint of PROJ's data nothing is kept (and
            # _environment stays None).
            logger.debug("PROJ's data cannot be described (%s): nothing kept", exc)
            return self._stored
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._stored
        except (OSError, ValueError) as exc:
            logger.debug("%s: unreadable, ignored (%s)", self.path, exc)
            self._changed = True
            return self._stored
        self._stored = self._valid(record)
        return self._stored

    def _valid(self, record: Any) -> dict[tuple[str, str], str]:
        """Return the operations of a file's record, or none when it is stale or bad."""
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            logger.debug("%s: not a %s file, ignored", self.path, FORMAT)
        elif record.get("environment") != self._environment:
            logger.debug("%s: made with another PROJ or its data, ignored", self.path)
        else:
            entries = record.get("operations")
            if isinstance(entries, list) and all(
                isinstance(e, dict)
                and all(
                    isinstance(e.get(k), str) for k in ("source", "target", "operation")
                )
                for e in entries
            ):
                return {(e["source"], e["target"]): e["operation"] for e in entries}
            logger.debug("%s: malformed operations, ignored", self.path)
        self._changed = True
        return {}

    def save(self) -> None:
        """Log how many transformers came from the file, and write it if it changed.

        Writing is atomic (a temporary file renamed over it); failing to write
        is a warning, never an error.
        """
        if self.from_cache or self.searched:
            logger.info(
                "PROJ operations: %d from %s, %d searched",
                self.from_cache,
                self.path,
                self.searched,
            )
        if not self._changed or self._environment is None or self._stored is None:
            return
        record = {
            "format": FORMAT,
            "environment": self._environment,
            "operations": [
                {"source": source, "target": target, "operation": operation}
                for (source, target), operation in self._stored.items()
            ],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(record, indent=1) + "\n")
        except OSError as exc:
            logger.warning(
                "%s: cannot keep PROJ's choice of operations for the next run: %s",
                self.path,
                describe_os_error(exc),
            )
            return
        self._changed = False
