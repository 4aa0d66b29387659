"""The three ways ``bench_fd.py`` aggregates FD_MOBPRO, and their agreement check.

Each method takes the file and its options and returns its result table
(origin, destination, ``trans`` or ``mode``, workers) and facts about the run;
:func:`compare` checks that the tables agree group by group. Standard library
only at import time: the benchmark's worker processes import this module before
they time their own imports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from scriptlib.fd_files import VINTAGE

READ_COLUMNS = ["COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI"]


def run_ours(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Aggregate with ``read_fd``; ``options`` are its keyword arguments."""
    from observatory.readers.fd_mobpro import read_fd

    start = time.perf_counter()
    table, report = read_fd(path, progress=False, **options)
    seconds = time.perf_counter() - start
    table = table.rename(
        columns={"origin_commune": "origin", "destination_commune": "destination"}
    )
    extra = {
        "partitions": report.get("partitions"),
        "rows_read": report.get("rows_read"),
    }
    return table, {"seconds": seconds, **extra}


def run_duckdb(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Aggregate with DuckDB (all cores, default memory limit; no options)."""
    import duckdb

    del options
    connection = duckdb.connect()
    quoted = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        source = f"read_parquet('{quoted}')"
    else:
        source = f"read_csv('{quoted}', delim=';', header=true, all_varchar=true)"
    query = f"""
        SELECT CASE WHEN ARM <> 'ZZZZZ' THEN ARM ELSE COMMUNE END AS origin,
               DCLT AS destination, TRANS AS trans,
               sum(CAST(IPONDI AS DOUBLE)) AS workers
        FROM {source}
        GROUP BY ALL
    """
    start = time.perf_counter()
    table = connection.sql(query).df()
    seconds = time.perf_counter() - start
    threads = connection.sql("SELECT current_setting('threads')").fetchone()[0]
    connection.close()
    return table, {"seconds": seconds, "threads": int(threads)}


def run_pandas(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Aggregate with plain pandas, everything in memory (no options)."""
    import pandas as pd

    del options
    start = time.perf_counter()
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, columns=READ_COLUMNS)
    else:
        frame = pd.read_csv(path, sep=";", usecols=READ_COLUMNS, dtype=str)
    read_seconds = time.perf_counter() - start
    frame["IPONDI"] = frame["IPONDI"].astype(float)
    frame["origin"] = frame["ARM"].where(frame["ARM"] != "ZZZZZ", frame["COMMUNE"])
    table = (
        frame.groupby(["origin", "DCLT", "TRANS"])["IPONDI"]
        .sum()
        .reset_index()
        .rename(columns={"DCLT": "destination", "TRANS": "trans", "IPONDI": "workers"})
    )
    seconds = time.perf_counter() - start
    return table, {"seconds": seconds, "read_seconds": round(read_seconds, 3)}


RUNNERS = {"ours": run_ours, "duckdb": run_duckdb, "pandas": run_pandas}


def compare(tables: dict[str, Path]) -> dict[str, Any]:
    """Check that the methods agree, group by group.

    Parameters
    ----------
    tables : dict
        Method -> Parquet result of one run.

    Returns
    -------
    dict
        Per method: groups and total; per other method vs ``ours``: keys only
        on one side, groups whose workers differ, largest absolute difference.
    """
    import numpy as np
    import pandas as pd

    from observatory.readers.fd_mobpro import trans_to_mode

    keys = ["origin", "destination", "mode"]
    frames = {}
    for method, path in tables.items():
        frame = pd.read_parquet(path)
        if "trans" in frame.columns:
            frame["mode"] = trans_to_mode(frame["trans"], VINTAGE).astype(str)
            frame = frame.drop(columns="trans")
        frames[method] = frame
    out: dict[str, Any] = {
        "groups": {m: len(f) for m, f in frames.items()},
        "workers_total": {
            m: round(float(f["workers"].sum()), 6) for m, f in frames.items()
        },
    }
    reference = frames.get("ours")
    agreement = {}
    for method, frame in frames.items():
        if reference is None or method == "ours":
            continue
        joined = reference.merge(
            frame, on=keys, how="outer", suffixes=("_ours", "_other"), indicator=True
        )
        both = joined[joined["_merge"] == "both"]
        diff = (both["workers_ours"] - both["workers_other"]).abs()
        tolerance = 1e-9 * np.maximum(1.0, both["workers_ours"].abs())
        agreement[method] = {
            "only_in_ours": int((joined["_merge"] == "left_only").sum()),
            "only_in_other": int((joined["_merge"] == "right_only").sum()),
            "differing_groups": int((diff > tolerance).sum()),
            "max_abs_difference": float(diff.max()) if len(diff) else 0.0,
        }
    out["vs_ours"] = agreement
    totals = list(out["workers_total"].values())
    groups = list(out["groups"].values())
    out["same_totals"] = max(totals) - min(totals) <= 1e-6 * max(1.0, max(totals))
    out["same_groups"] = len(set(groups)) == 1
    out["identical"] = (
        out["same_totals"]
        and out["same_groups"]
        and all(
            a["only_in_ours"] == a["only_in_other"] == a["differing_groups"] == 0
            for a in agreement.values()
        )
    )
    return out
