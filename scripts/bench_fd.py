"""Benchmark the FD_MOBPRO aggregation: observatory vs DuckDB vs plain pandas.

One run measures, on the same synthetic national-size file (written by
``scripts/make_synthetic_fd.py``), first the CSV then the Parquet variant, three
ways of computing workers by (residence, workplace, mode):

- ``ours``: ``observatory.readers.fd_mobpro.read_fd(path, progress=False)`` (dask,
  out of core: ``aggregate_fd``'s aggregation on each partition, on integer keys, then
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
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scriptlib.bench import (
    REPO_ROOT,
    code_identity,
    describe_run,
    merge_results,
    own_peak_rss,
    run_worker,
    source_sha256,
    versions,
    warm,
)
from scriptlib.console import script_logger, show, start_logging
from scriptlib.fd_files import DEFAULT_ROWS, DEFAULT_SEED, stem_for
from scriptlib.fd_methods import RUNNERS, compare

DATA_DIR = REPO_ROOT / "benchmarks" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results.json"
GENERATOR = REPO_ROOT / "scripts" / "make_synthetic_fd.py"
#: The code measured as ours: the FD_MOBPRO reader (a module or a package).
FD_READER = REPO_ROOT / "observatory" / "readers" / "fd_mobpro"
METHODS = ("ours", "duckdb", "pandas")
FORMATS = ("csv", "parquet")
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
NOTES = [
    "wall/cpu seconds: the call only (imports excluded: import_seconds), median of the repeats; page cache warm",
    "peak RSS: max over repeats of max(child VmHWM, sampled summed RSS of its process tree every 20 ms)",
    "duckdb: read_csv(all_varchar=true) / read_parquet, default threads (= cores), result fetched with .df()",
    "pandas: read_csv(sep=';', usecols=5 columns, dtype=str) / read_parquet(columns=5), groupby().sum()",
]

logger = script_logger("bench_fd")


# ------------------------------------------------------------------ child side


def cpu_seconds() -> float:
    """Return user + sys CPU seconds of this process and its waited children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worker(spec: dict[str, Any]) -> int:
    """Run one measurement in this (fresh) process and write its facts.

    Parameters
    ----------
    spec : dict
        ``method``, ``path``, ``facts`` (JSON written here), ``table`` (Parquet
        result), ``options``.

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
    Path(spec["facts"]).write_text(json.dumps(facts), encoding="utf-8")
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
        "facts": str(tmp / f"{tag}.json"),
        "table": str(tmp / f"{tag}.parquet"),
    }
    child, facts = run_worker(Path(__file__), spec, SAMPLE_SECONDS)
    if facts is None:
        message = f"{method} on {path.name} failed with exit status {child.returncode}"
        raise RuntimeError(message)
    return {
        **facts,
        "process_seconds": round(child.seconds, 3),
        "process_cpu_seconds": round(child.cpu_seconds, 3),
        "tree_peak_rss_bytes": child.tree_peak_rss_bytes,
        "peak_rss_bytes": child.peak_rss_bytes(facts.get("vmhwm_bytes")),
        "table": spec["table"],
    }


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


def fd_reader_sha256() -> str | None:
    """Return the sha256 of the FD_MOBPRO reader's source, the code measured as ours."""
    module = FD_READER.with_suffix(".py")
    return source_sha256(module if module.exists() else FD_READER)


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
    stem = stem_for(rows)
    files = {fmt: data_dir / f"{stem}.{fmt}" for fmt in formats}
    manifest_path = data_dir / f"{stem}.json"

    def read_manifest() -> dict[str, Any]:
        if not manifest_path.exists():
            return {}
        return json.loads(manifest_path.read_text(encoding="utf-8"))

    manifest = read_manifest()
    seed_ok = not manifest_path.exists() or manifest.get("seed") == seed
    if not seed_ok or not all(path.exists() for path in files.values()):
        command = [sys.executable, str(GENERATOR), "--rows", str(rows)]
        command += ["--seed", str(seed), "--format", "both", "--output", str(data_dir)]
        logger.info("generating: %s", " ".join(command))
        subprocess.run(command, check=True)
        manifest = read_manifest()
    return files, manifest


def mark(flag: bool | None) -> str:
    """Return ``PASS``, ``FAIL`` or ``-`` (no verdict) for a target."""
    if flag is None:
        return "-"
    return "PASS" if flag else "FAIL"


def _figure_row(fmt: str, label: str, s: dict[str, Any]) -> str:
    """Return one row of the results table."""
    return (
        f"{fmt:8} {label:26} {s['wall_seconds']:8.2f} {s['wall_seconds_min']:8.2f} "
        f"{s['cpu_seconds']:8.2f} {s['peak_rss_mb']:12.1f} {s['groups']:10d} "
        f"{s['workers_total']:16.3f}"
    )


def _verdicts(fmt: str, block: dict[str, Any]) -> list[str]:
    """Return the lines of one format's targets and agreement check."""
    t = block.get("targets", {})
    parts = []
    if "ours_over_duckdb" in t:
        parts.append(
            f"ours/duckdb {t['ours_over_duckdb']:.2f}x (<= {TARGET_VS_DUCKDB}: "
            f"{mark(t['ours_within_1_5x_duckdb'])})"
        )
    if "pandas_over_ours" in t:
        parts.append(
            f"pandas/ours {t['pandas_over_ours']:.2f}x (>= {TARGET_VS_PANDAS}: "
            f"{mark(t['ours_4x_faster_than_pandas'])})"
        )
    if "ours_peak_rss_under_2gb" in t:
        parts.append(
            f"ours peak RSS {t['ours_peak_rss_mb']:.0f} MB (< 2 GB: "
            f"{mark(t['ours_peak_rss_under_2gb'])})"
        )
    identical = block["check"].get("identical")
    return [
        f"{fmt}: " + "; ".join(parts),
        f"{fmt}: results identical across methods: {identical}",
    ]


def table_lines(fd: dict[str, Any]) -> list[str]:
    """Return the results as a text table, then the targets of each format."""
    header = (
        f"{'format':8} {'method':26} {'wall s':>8} {'min s':>8} {'cpu s':>8} "
        f"{'peak RSS MB':>12} {'groups':>10} {'workers':>16}"
    )
    lines = ["", header, "-" * len(header)]
    for fmt, block in fd["formats"].items():
        for method, s in block["methods"].items():
            lines.append(_figure_row(fmt, method, s))
        for label, s in block.get("sweep", {}).items():
            lines.append(_figure_row(fmt, "ours " + label, s))
    lines.append("")
    for fmt, block in fd["formats"].items():
        lines += _verdicts(fmt, block)
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (default: ``sys.argv[1:]``)."""
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
        default=DEFAULT_SEED,
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


def measured(
    method: str, path: Path, options: dict[str, Any], tmp: Path, tag: str
) -> dict[str, Any]:
    """Measure once (:func:`measure`) and log the figures as they come."""
    result = measure(method, path, options, tmp, tag)
    logger.info(
        "%-8s %-8s %s: %.2f s, %.0f MB",
        path.suffix.lstrip("."),
        method,
        tag,
        result["seconds"],
        result["peak_rss_bytes"] / 1e6,
    )
    return result


def run_format(
    fmt: str, path: Path, args: argparse.Namespace, options: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    """Measure every method on one file, compare them, evaluate the targets.

    Parameters
    ----------
    fmt : str
        ``csv`` or ``parquet``.
    path : Path
        The file.
    args : argparse.Namespace
        Options (methods, repeats, sweep).
    options : dict
        ``read_fd`` keyword arguments for ours.
    tmp : Path
        Scratch folder.

    Returns
    -------
    dict
        The format's block of the results: path, methods, check, targets, sweep.
    """
    warm([path])
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    for repeat in range(args.repeat):
        for method in args.methods:
            own = options if method == "ours" else {}
            tag = f"{fmt}-{method}-{repeat}"
            runs[method].append(measured(method, path, own, tmp, tag))
    figures = {m: summarise(r) for m, r in runs.items()}
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    block: dict[str, Any] = {"path": str(shown), "methods": figures}
    block["check"] = compare({m: Path(r[-1]["table"]) for m, r in runs.items()})
    if "ours" in figures:
        block["targets"] = targets(figures, fmt)
    if args.sweep and "ours" in args.methods:
        sweep = {}
        for variant in SWEEP:
            label = ",".join(f"{k}={v}" for k, v in variant.items())
            tag = f"{fmt}-sweep-{label}"
            result = measured("ours", path, {**options, **variant}, tmp, tag)
            result["options"] = variant
            sweep[label] = summarise([result])
        block["sweep"] = sweep
    return block


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0, even when a target is missed."""
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    start_logging()
    files, manifest = ensure_files(args.rows, args.formats, args.data_dir, args.seed)
    options: dict[str, Any] = {}
    if args.blocksize:
        options["blocksize"] = args.blocksize
    if args.scheduler:
        options["scheduler"] = args.scheduler

    shown = sys.argv[1:] if argv is None else argv
    fd: dict[str, Any] = {
        **describe_run(
            "scripts/bench_fd.py", shown, versions(PACKAGES, missing="missing")
        ),
        "file": {
            "synthetic": True,
            "rows": args.rows,
            "seed": args.seed,
            "generator": "scripts/make_synthetic_fd.py",
            "columns": len(manifest.get("columns", [])) or None,
        },
        "repeat": args.repeat,
        "ours_options": options,
        "ours_code": code_identity("mobpro_sha256", fd_reader_sha256()),
        "targets": {
            "ours_over_duckdb_max": TARGET_VS_DUCKDB,
            "pandas_over_ours_min": TARGET_VS_PANDAS,
            "ours_peak_rss_csv_max_bytes": TARGET_RSS_BYTES,
        },
        "notes": NOTES,
        "formats": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fd-") as tmpdir:
        for fmt, path in files.items():
            fd["file"][f"{fmt}_bytes"] = path.stat().st_size
            fd["file"][f"{fmt}_name"] = path.name
            fd["formats"][fmt] = run_format(fmt, path, args, options, Path(tmpdir))
    show(table_lines(fd))
    merge_results(args.results, "fd", fd)
    show(f"\nwritten: {args.results} (key 'fd')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
