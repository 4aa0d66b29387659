"""The figures of ``bench_pipeline.py``: a run's timings, medians, the floor, the targets.

Pure functions of the repeats' records (dicts measured by the parent), so that
the script itself keeps to measuring. Standard library only.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

#: A run may take at most this many times its I/O floor (issue 13), median of
#: the repeats of both, measured in the same benchmark.
FLOOR_RATIO_MAX = 2.5
#: Largest peak RSS of a national run (issue 13), bytes.
PEAK_RSS_MAX_BYTES = 1_200_000_000
#: The stage that runs in a thread of its own, beside ``flows``.
OVERLAPPING = "territories"
#: The earlier end-to-end target (median wall seconds).
WALL_SECONDS_MAX = 30.0


def median(values: list[float]) -> float:
    """Return the median, rounded to the millisecond."""
    return round(statistics.median(values), 3)


def spread(values: list[float]) -> dict[str, float]:
    """Return ``min``, ``median`` and ``max`` of ``values``, to the millisecond."""
    return {
        "min": round(min(values), 3),
        "median": median(values),
        "max": round(max(values), 3),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians over the repeats (stages in run order), largest peak RSS."""
    walls = [r["wall_seconds"] for r in runs]
    stages: dict[str, float] = {}
    for name in runs[0]["stages_seconds"]:
        stages[name] = median([r["stages_seconds"].get(name, 0.0) for r in runs])
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
        # Interpreter start, imports and exit: the wall time outside cli.main.
        "outside_main_seconds": median(
            [r["wall_seconds"] - r["run_seconds"] for r in runs]
        ),
        "stage_shares_of_wall": {
            name: round(seconds / wall, 3) for name, seconds in stages.items()
        },
    }


def summarise_floor(floors: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the I/O floor over its repeats: wall spread, imports, each file's median."""
    roles = floors[0]["files"]
    return {
        "wall_seconds": spread([f["wall_seconds"] for f in floors]),
        "import_seconds": median([f["import_seconds"] for f in floors]),
        "read_seconds": median([f["read_seconds"] for f in floors]),
        "cpu_seconds": median([f["cpu_seconds"] for f in floors]),
        "peak_rss_mb": round(max(f["peak_rss_bytes"] for f in floors) / 1e6, 1),
        "files_seconds": {
            role: median([f["files"][role]["seconds"] for f in floors])
            for role in roles
        },
        "files_rows": {role: info["rows"] for role, info in roles.items()},
    }


def targets(summary: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Return each target of the run, its measure and pass/fail (never asserted)."""
    ratio = summary["wall_seconds"] / floor["wall_seconds"]["median"]
    return {
        "floor_ratio": {
            "max": FLOOR_RATIO_MAX,
            "value": round(ratio, 3),
            "measure": "median wall of the run / median wall of the I/O floor, "
            "both whole processes (imports included), interleaved",
            "pass": ratio <= FLOOR_RATIO_MAX,
        },
        "peak_rss": {
            "max_bytes": PEAK_RSS_MAX_BYTES,
            "value_bytes": summary["peak_rss_bytes"],
            "pass": summary["peak_rss_bytes"] <= PEAK_RSS_MAX_BYTES,
        },
        "wall": {
            "max_seconds": WALL_SECONDS_MAX,
            "value_seconds": summary["wall_seconds"],
            "pass": summary["wall_seconds"] < WALL_SECONDS_MAX,
        },
    }


def load_range(records: list[dict[str, Any]]) -> list[float]:
    """Return the lowest and highest 1-minute load average seen around the records."""
    loads = [
        value
        for r in records
        for value in (r["load_average_before"][0], r["load_average_after"][0])
    ]
    return [min(loads), max(loads)]


def table_lines(result: dict[str, Any]) -> list[str]:
    """Return the stage table, the floor and the targets, as text."""
    summary, floor, goal = result["summary"], result["floor"], result["targets"]
    wall = summary["wall_seconds"]
    lines = ["", f"{'stage':<28}{'median s':>10}{'share':>9}"]
    for name, seconds in sorted(
        summary["stages_seconds"].items(), key=lambda item: -item[1]
    ):
        lines.append(f"{name:<28}{seconds:>10.3f}{seconds / wall:>9.1%}")
    outside = summary["outside_main_seconds"]
    floor_wall = floor["wall_seconds"]
    verdict = {True: "PASS", False: "FAIL"}
    return [
        *lines,
        f"{'(interpreter, imports, exit)':<28}{outside:>10.3f}{outside / wall:>9.1%}",
        "-" * 47,
        f"{OVERLAPPING} runs beside flows: the lines add up to more than the wall",
        f"{'end to end (wall)':<28}{wall:>10.3f}   "
        f"(min {summary['wall_seconds_min']:.2f}, max {summary['wall_seconds_max']:.2f})",
        f"{'cli.main':<28}{summary['run_seconds']:>10.3f}",
        f"{'CPU (user+sys)':<28}{summary['cpu_seconds']:>10.3f}",
        f"{'peak RSS':<28}{summary['peak_rss_mb']:>7,.0f} MB",
        f"{'I/O floor (wall)':<28}{floor_wall['median']:>10.3f}   "
        f"(min {floor_wall['min']:.2f}, max {floor_wall['max']:.2f}; "
        f"imports {floor['import_seconds']:.2f})",
        f"load average (1 min): {result['load_average'][0]:.2f}-"
        f"{result['load_average'][1]:.2f}",
        f"target: run <= {goal['floor_ratio']['max']:g} x floor: "
        f"{verdict[goal['floor_ratio']['pass']]} ({goal['floor_ratio']['value']:.2f} x)",
        f"target: peak RSS <= {goal['peak_rss']['max_bytes'] / 1e9:g} GB: "
        f"{verdict[goal['peak_rss']['pass']]} ({summary['peak_rss_mb']:,.0f} MB)",
        f"target: median wall < {goal['wall']['max_seconds']:g} s: "
        f"{verdict[goal['wall']['pass']]} ({wall:.2f} s)",
    ]


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

    Raises
    ------
    ValueError
        When the run published no manifest, or one without timings.
    """
    manifest_path = output / "latest" / "manifest.json"
    if not manifest_path.exists():
        message = f"{manifest_path}: the run exited 0 but published no manifest"
        raise ValueError(message)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    timings = dict(manifest.get("timings_s") or {})
    if not timings:
        message = f"{manifest_path}: no timings_s"
        raise ValueError(message)
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
