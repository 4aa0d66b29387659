"""Benchmark the FD_MOBPRO aggregation: observatory vs DuckDB vs plain pandas.

One run measures, on the same synthetic national-size file (written by
``scripts/make_synthetic_fd.py``), first the CSV then the Parquet variant, three
ways of computing workers by (residence, workplace, mode):

- ``ours``: ``observatory.readers.fd_mobpro.read_fd(path, progress=False)`` (dask, out of
  core: ``aggregate_fd``'s aggregation on each partition, on integer keys, then
  a tree sum of the partial sums whose last merge runs in key ranges);
- ``duckdb``: ``SELECT CASE WHEN ARM <> 'ZZZZZ' THEN ARM ELSE COMMUNE END,
  DCLT, TRANS, sum(IPONDI) ... GROUP BY ALL`` over ``read_csv(..., delim=';',
  all_varchar=true)`` / ``read_parquet``, fetched as a pandas DataFrame;
- ``pandas``: ``pandas.read_csv(sep=';', usecols=[...], dtype=str)`` (or
  ``read_parquet(columns=[...])``), then ``groupby(...).sum()``, as a user would.

Each measurement runs in a fresh subprocess, so that its peak memory is its own.
The parent records the wall time of the call (imports excluded, also reported
separately), the CPU time (user + sys, all threads) of the call, and the peak
resident set size: the larger of the child's own high-water mark (``VmHWM`` of
``/proc/self/status``, read at its end; not ``ru_maxrss``, which Linux carries
over ``execve`` from the forking parent) and the peak of the summed RSS of its
process tree, sampled every 20 ms (for dask's process scheduler). The three results are then compared: number of groups, total of
workers, and a group-by-group join (``TRANS`` mapped to the modes of
``observatory.readers.fd_mobpro``).

Targets, reported as pass/fail (never asserted): ours <= 1.5x DuckDB's wall
time, ours >= 4x faster than pandas, and, on the CSV, ours' peak RSS < 2 GB.

Results are printed as a table and merged into ``benchmarks/results.json`` under
the key ``fd`` (other keys are kept).

Usage::

    python scripts/bench_fd.py                  # national size, 3 repeats
    python scripts/bench_fd.py --rows 500000 --repeat 1    # quick check
    python scripts/bench_fd.py --sweep          # + blocksize/scheduler grid for ours
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    REPO_ROOT,
    code_identity,
    machine,
    merge_results,
    own_peak_rss,
    run_child,
    versions,
    warm,
)

DATA_DIR = REPO_ROOT / "benchmarks" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results.json"
GENERATOR = REPO_ROOT / "scripts" / "make_synthetic_fd.py"
DEFAULT_ROWS = 7_930_000
VINTAGE = 2020
METHODS = ("ours", "duckdb", "pandas")
FORMATS = ("csv", "parquet")
READ_COLUMNS = ["COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI"]
TARGET_VS_DUCKDB = 1.5
TARGET_VS_PANDAS = 4.0
TARGET_RSS_BYTES = 2 * 1000**3
SAMPLE_SECONDS = 0.02
#: Packages whose version is recorded.
PACKAGES = ("dask", "duckdb", "pandas", "pyarrow", "numpy")
SWEEP = [
    {"blocksize": "32MiB"},
    {"blocksize": "128MiB"},
    {"blocksize": "256MiB"},
    {"scheduler": "processes"},
    {"scheduler": "synchronous"},
]


# ------------------------------------------------------------------ child side


def run_ours(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Aggregate with ``observatory.readers.fd_mobpro.read_fd``.

    Parameters
    ----------
    path : Path
        FD_MOBPRO file.
    options : dict
        Extra keyword arguments of ``read_fd`` (blocksize, scheduler).

    Returns
    -------
    tuple
        The result table (origin, destination, mode, workers) and extra facts.
    """
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
    """Aggregate with DuckDB (all cores, default memory limit).

    Parameters
    ----------
    path : Path
        FD_MOBPRO file.
    options : dict
        Unused.

    Returns
    -------
    tuple
        The result table (origin, destination, trans, workers) and extra facts.
    """
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
    """Aggregate with plain pandas, everything in memory.

    Parameters
    ----------
    path : Path
        FD_MOBPRO file.
    options : dict
        Unused.

    Returns
    -------
    tuple
        The result table (origin, destination, trans, workers) and extra facts.
    """
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


def cpu_seconds() -> float:
    """Return user + sys CPU seconds of this process and its waited children.

    Returns
    -------
    float
        Seconds.
    """
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worker(spec: dict[str, Any]) -> int:
    """Run one measurement in this (fresh) process and write its facts.

    Parameters
    ----------
    spec : dict
        ``method``, ``path``, ``out`` (JSON facts), ``table`` (Parquet result),
        ``options``.

    Returns
    -------
    int
        Exit status.
    """
    start = time.perf_counter()
    runner = RUNNERS[spec["method"]]
    # Import the libraries first: their import time is reported apart.
    if spec["method"] == "ours":
        import dask.dataframe  # noqa: F401

        import observatory.readers.fd_mobpro  # noqa: F401
    elif spec["method"] == "duckdb":
        import duckdb  # noqa: F401
    import pandas as pd

    import_seconds = time.perf_counter() - start
    cpu_before = cpu_seconds()
    table, facts = runner(Path(spec["path"]), spec.get("options", {}))
    cpu = cpu_seconds() - cpu_before
    facts.update(
        {
            "import_seconds": round(import_seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "groups": len(table),
            "workers_total": float(table["workers"].sum()),
            "vmhwm_bytes": own_peak_rss(),
        }
    )
    for column in table.columns:
        if column != "workers":
            table[column] = table[column].astype(str)
    pd.DataFrame(table).to_parquet(spec["table"], index=False)
    Path(spec["out"]).write_text(json.dumps(facts), encoding="utf-8")
    return 0


# ----------------------------------------------------------------- parent side


def measure(
    method: str, path: Path, options: dict[str, Any], tmp: Path, tag: str
) -> dict[str, Any]:
    """Run one method on one file in a fresh subprocess and collect its figures.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    path : Path
        Input file.
    options : dict
        Options of the method (``read_fd`` keyword arguments for ``ours``).
    tmp : Path
        Scratch folder.
    tag : str
        Unique name of this run.

    Returns
    -------
    dict
        Wall and CPU seconds, peak RSS, groups, total, the result table's path.
    """
    spec = {
        "method": method,
        "path": str(path),
        "options": options,
        "out": str(tmp / f"{tag}.json"),
        "table": str(tmp / f"{tag}.parquet"),
    }
    child = run_child(
        [str(Path(__file__).resolve()), "--worker", json.dumps(spec)], SAMPLE_SECONDS
    )
    if child.returncode != 0:
        message = f"{method} on {path.name} failed with exit status {child.returncode}"
        raise RuntimeError(message)
    facts = json.loads(Path(spec["out"]).read_text(encoding="utf-8"))
    return {
        **facts,
        "process_seconds": round(child.seconds, 3),
        "process_cpu_seconds": round(child.cpu_seconds, 3),
        "tree_peak_rss_bytes": child.tree_peak_rss_bytes,
        "peak_rss_bytes": child.peak_rss_bytes(facts.get("vmhwm_bytes")),
        "table": spec["table"],
    }


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


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Reduce the repeats of one method on one file.

    Parameters
    ----------
    runs : list of dict
        Facts of each repeat.

    Returns
    -------
    dict
        Median and minimum wall seconds, median CPU seconds, largest peak RSS,
        and every repeat.
    """
    walls = [r["seconds"] for r in runs]
    cpus = [r["cpu_seconds"] for r in runs]
    peak = max(r["peak_rss_bytes"] for r in runs)
    first = runs[0]
    summary = {
        "wall_seconds": round(statistics.median(walls), 3),
        "wall_seconds_min": round(min(walls), 3),
        "cpu_seconds": round(statistics.median(cpus), 3),
        "peak_rss_bytes": peak,
        "peak_rss_mb": round(peak / 1e6, 1),
        "import_seconds": round(
            statistics.median(r["import_seconds"] for r in runs), 3
        ),
        "process_seconds": round(
            statistics.median(r["process_seconds"] for r in runs), 3
        ),
        "groups": first["groups"],
        "workers_total": round(first["workers_total"], 6),
    }
    for key in ("partitions", "threads", "read_seconds", "options"):
        if key in first:
            summary[key] = first[key]
    summary["repeats"] = [
        {
            k: r[k]
            for k in (
                "seconds",
                "cpu_seconds",
                "vmhwm_bytes",
                "tree_peak_rss_bytes",
                "process_seconds",
            )
        }
        for r in runs
    ]
    return summary


def targets(figures: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Evaluate the targets on one format.

    Parameters
    ----------
    figures : dict
        Method -> summary.
    fmt : str
        ``csv`` or ``parquet``.

    Returns
    -------
    dict
        Ratios and pass/fail.
    """
    ours = figures["ours"]["wall_seconds"]
    out: dict[str, Any] = {}
    if "duckdb" in figures:
        ratio = ours / figures["duckdb"]["wall_seconds"]
        out["ours_over_duckdb"] = round(ratio, 3)
        out["ours_within_1_5x_duckdb"] = ratio <= TARGET_VS_DUCKDB
    if "pandas" in figures:
        speedup = figures["pandas"]["wall_seconds"] / ours
        out["pandas_over_ours"] = round(speedup, 3)
        out["ours_4x_faster_than_pandas"] = speedup >= TARGET_VS_PANDAS
    rss = figures["ours"]["peak_rss_bytes"]
    out["ours_peak_rss_mb"] = round(rss / 1e6, 1)
    if fmt == "csv":
        out["ours_peak_rss_under_2gb"] = rss < TARGET_RSS_BYTES
    else:
        out["ours_peak_rss_under_2gb_informative"] = rss < TARGET_RSS_BYTES
    return out


def mobpro_sha256() -> str | None:
    """Return the sha256 of ``observatory/mobpro.py``, the code measured as ours.

    Returns
    -------
    str or None
        Hex digest, None when the file is missing.
    """
    # Imported here, not at the top: a worker must not load observatory before
    # it times its own imports.
    from observatory.core.files import sha256_file

    path = REPO_ROOT / "observatory" / "mobpro.py"
    return sha256_file(path) if path.exists() else None


def ensure_files(
    rows: int, formats: list[str], data_dir: Path, seed: int
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Return the synthetic files and their manifest, generating missing files.

    Parameters
    ----------
    rows : int
        Number of rows.
    formats : list of str
        Formats wanted.
    data_dir : Path
        Folder of the generated data.
    seed : int
        Seed passed to the generator.

    Returns
    -------
    tuple
        Format -> path, and the generator's manifest (``{}`` when it has none).
    """
    stem = f"FD_MOBPRO_{VINTAGE}_synthetic_{rows}"
    files = {fmt: data_dir / f"{stem}.{fmt}" for fmt in formats}
    manifest_path = data_dir / f"{stem}.json"

    def read_manifest() -> dict[str, Any]:
        if not manifest_path.exists():
            return {}
        return json.loads(manifest_path.read_text(encoding="utf-8"))

    manifest = read_manifest()
    seed_ok = not manifest_path.exists() or manifest.get("seed") == seed
    if not seed_ok or not all(path.exists() for path in files.values()):
        command = [
            sys.executable,
            str(GENERATOR),
            "--rows",
            str(rows),
            "--seed",
            str(seed),
        ]
        command += ["--format", "both", "--output", str(data_dir)]
        print("generating:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        manifest = read_manifest()
    return files, manifest


def mark(flag: bool | None) -> str:
    """Return PASS/FAIL for a target.

    Parameters
    ----------
    flag : bool or None
        Result of a target.

    Returns
    -------
    str
        ``PASS``, ``FAIL`` or ``-``.
    """
    if flag is None:
        return "-"
    return "PASS" if flag else "FAIL"


def print_table(fd: dict[str, Any]) -> None:
    """Print the results as a text table.

    Parameters
    ----------
    fd : dict
        This run's results.
    """
    print()
    header = f"{'format':8} {'method':26} {'wall s':>8} {'min s':>8} {'cpu s':>8} {'peak RSS MB':>12} {'groups':>10} {'workers':>16}"
    print(header)
    print("-" * len(header))
    for fmt, block in fd["formats"].items():
        for method, s in block["methods"].items():
            print(
                f"{fmt:8} {method:26} {s['wall_seconds']:8.2f} {s['wall_seconds_min']:8.2f} "
                f"{s['cpu_seconds']:8.2f} {s['peak_rss_mb']:12.1f} {s['groups']:10d} {s['workers_total']:16.3f}"
            )
        for label, s in block.get("sweep", {}).items():
            print(
                f"{fmt:8} {'ours ' + label:26} {s['wall_seconds']:8.2f} {s['wall_seconds_min']:8.2f} "
                f"{s['cpu_seconds']:8.2f} {s['peak_rss_mb']:12.1f} {s['groups']:10d} {s['workers_total']:16.3f}"
            )
    print()
    for fmt, block in fd["formats"].items():
        t = block.get("targets", {})
        check = block["check"]
        parts = []
        if "ours_over_duckdb" in t:
            parts.append(
                f"ours/duckdb {t['ours_over_duckdb']:.2f}x (<= {TARGET_VS_DUCKDB}: {mark(t['ours_within_1_5x_duckdb'])})"
            )
        if "pandas_over_ours" in t:
            parts.append(
                f"pandas/ours {t['pandas_over_ours']:.2f}x (>= {TARGET_VS_PANDAS}: {mark(t['ours_4x_faster_than_pandas'])})"
            )
        if "ours_peak_rss_under_2gb" in t:
            parts.append(
                f"ours peak RSS {t['ours_peak_rss_mb']:.0f} MB (< 2 GB: {mark(t['ours_peak_rss_under_2gb'])})"
            )
        print(f"{fmt}: " + "; ".join(parts))
        print(f"{fmt}: results identical across methods: {check.get('identical')}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        Options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="rows of the synthetic file (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each method on each file (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=2021,
        help="seed of the synthetic file (default: %(default)s)",
    )
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--blocksize", help="read_fd blocksize for ours (default: read_fd's)"
    )
    parser.add_argument(
        "--scheduler", help="read_fd scheduler for ours (default: read_fd's)"
    )
    parser.add_argument(
        "--sweep", action="store_true", help=f"also run ours once with each of {SWEEP}"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status (0 even when a target is missed).
    """
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    command_line = "python scripts/bench_fd.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    files, manifest = ensure_files(args.rows, args.formats, args.data_dir, args.seed)
    options: dict[str, Any] = {}
    if args.blocksize:
        options["blocksize"] = args.blocksize
    if args.scheduler:
        options["scheduler"] = args.scheduler

    fd: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line.strip(),
        "machine": {**machine(), "versions": versions(PACKAGES, missing="missing")},
        "file": {
            "synthetic": True,
            "rows": args.rows,
            "seed": args.seed,
            "generator": "scripts/make_synthetic_fd.py",
            "columns": len(manifest.get("columns", [])) or None,
        },
        "repeat": args.repeat,
        "ours_options": options,
        "ours_code": code_identity("mobpro_sha256", mobpro_sha256()),
        "targets": {
            "ours_over_duckdb_max": TARGET_VS_DUCKDB,
            "pandas_over_ours_min": TARGET_VS_PANDAS,
            "ours_peak_rss_csv_max_bytes": TARGET_RSS_BYTES,
        },
        "notes": [
            "wall/cpu seconds: the call only (imports excluded: import_seconds), median of the repeats; page cache warm",
            "peak RSS: max over repeats of max(child VmHWM, sampled summed RSS of its process tree every 20 ms)",
            "duckdb: read_csv(all_varchar=true) / read_parquet, default threads (= cores), result fetched with .df()",
            "pandas: read_csv(sep=';', usecols=5 columns, dtype=str) / read_parquet(columns=5), groupby().sum()",
        ],
        "formats": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fd-") as tmpdir:
        tmp = Path(tmpdir)
        for fmt, path in files.items():
            warm([path])
            fd["file"][f"{fmt}_bytes"] = path.stat().st_size
            fd["file"][f"{fmt}_name"] = path.name
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
            for repeat in range(args.repeat):
                for method in args.methods:
                    tag = f"{fmt}-{method}-{repeat}"
                    print(
                        f"{fmt:8} {method:8} run {repeat + 1}/{args.repeat} ...",
                        end=" ",
                        flush=True,
                    )
                    result = measure(
                        method, path, options if method == "ours" else {}, tmp, tag
                    )
                    print(
                        f"{result['seconds']:.2f} s, {result['peak_rss_bytes'] / 1e6:.0f} MB",
                        flush=True,
                    )
                    runs[method].append(result)
            figures = {m: summarise(r) for m, r in runs.items()}
            block: dict[str, Any] = {
                "path": str(path.relative_to(REPO_ROOT))
                if path.is_relative_to(REPO_ROOT)
                else str(path)
            }
            block["methods"] = figures
            block["check"] = compare({m: Path(r[-1]["table"]) for m, r in runs.items()})
            if "ours" in figures:
                block["targets"] = targets(figures, fmt)
            if args.sweep and "ours" in args.methods:
                sweep = {}
                for variant in SWEEP:
                    label = ",".join(f"{k}={v}" for k, v in variant.items())
                    print(f"{fmt:8} ours {label} ...", end=" ", flush=True)
                    result = measure(
                        "ours",
                        path,
                        {**options, **variant},
                        tmp,
                        f"{fmt}-sweep-{label}",
                    )
                    result["options"] = variant
                    print(
                        f"{result['seconds']:.2f} s, {result['peak_rss_bytes'] / 1e6:.0f} MB",
                        flush=True,
                    )
                    sweep[label] = summarise([result])
                block["sweep"] = sweep
            fd["formats"][fmt] = block
    print_table(fd)
    merge_results(args.results, "fd", fd)
    print(f"\nwritten: {args.results} (key 'fd')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
