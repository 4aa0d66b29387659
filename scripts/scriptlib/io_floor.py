"""The I/O floor of a run: reading its inputs once, the least any pipeline must do.

What the floor reads, each file once, with the fastest readers the project has
at hand, imports included (they are part of any run's cost):

- the communes (``COMMUNE.shp``) with pyogrio into an Arrow table
  (``pyogrio.read_arrow``: attributes and WKB geometry, no shapely objects);
- each base-flux zip with pyarrow's CSV reader (``;``-separated, types inferred),
  straight from its zip member;
- the EPCI workbook with calamine, every sheet to Python rows.

The commune passage (a 120 kB CSV) and writing are left out: the floor is the
issue-13 definition. Standard library only at import time: the child times
its own imports of pyogrio, pyarrow and calamine.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

#: The ``[inputs]`` roles the floor reads, by reader.
FLOOR_ROLES = {
    "communes": "communes",
    "epci_composition": "workbook",
    "flows": "csv_zip",
    "flows_previous": "csv_zip",
}


def floor_files(config: Path) -> list[tuple[str, str, str]]:
    """Return ``(role, reader, path)`` of the inputs the floor reads, from a config.

    Parameters
    ----------
    config : Path
        A run configuration whose ``[inputs]`` name local files (a string, or
        ``{ path = ... }``), relative to the config's folder.

    Returns
    -------
    list of tuple
        One entry per input of :data:`FLOOR_ROLES` present in the config.

    Raises
    ------
    ValueError
        Naming the config and the role whose input is not a local file.
    """
    inputs = tomllib.loads(config.read_text(encoding="utf-8")).get("inputs", {})
    out = []
    for role, reader in FLOOR_ROLES.items():
        value = inputs.get(role)
        if value is None:
            continue
        path = value.get("path") if isinstance(value, dict) else value
        if not isinstance(path, str):
            message = f"{config}: [inputs] {role} is not a local file path"
            raise ValueError(message)
        out.append((role, reader, str((config.parent / path).resolve())))
    return out


def _read(reader: str, path: str) -> int:
    # Read one file as the floor does; return the rows read.
    if reader == "communes":
        import pyogrio

        _, table = pyogrio.read_arrow(path)
        return int(table.num_rows)
    if reader == "csv_zip":
        import zipfile

        from pyarrow import csv

        with zipfile.ZipFile(path) as archive:
            (member,) = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            with archive.open(member) as stream:
                table = csv.read_csv(
                    stream, parse_options=csv.ParseOptions(delimiter=";")
                )
        return int(table.num_rows)
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(path)
    return sum(
        len(workbook.get_sheet_by_name(name).to_python())
        for name in workbook.sheet_names
    )


def read_floor(files: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Read every input once, timing imports and each file (the child's work).

    Parameters
    ----------
    files : list of tuple
        :func:`floor_files`.

    Returns
    -------
    dict
        ``import_seconds``, ``read_seconds`` and, by role, ``seconds`` and
        ``rows``.
    """
    start = time.perf_counter()
    import pyarrow.csv  # noqa: F401
    import pyogrio  # noqa: F401
    import python_calamine  # noqa: F401

    imported = time.perf_counter()
    by_role = {}
    for role, reader, path in files:
        began = time.perf_counter()
        rows = _read(reader, path)
        by_role[role] = {
            "seconds": round(time.perf_counter() - began, 3),
            "rows": rows,
        }
    return {
        "import_seconds": round(imported - start, 3),
        "read_seconds": round(time.perf_counter() - imported, 3),
        "files": by_role,
    }
