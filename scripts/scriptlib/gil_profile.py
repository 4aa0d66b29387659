"""Where a run holds the GIL: one ``observatory run`` under ``py-spy --gil``, summarised.

A run on two cores spends most of its time in Python code holding the GIL
(pandas and Python loops), the rest in C that lets it go (GDAL, GEOS, zlib,
Arrow, PROJ). Threads only help with the second kind: the seconds a run holds
the GIL bound its wall time from below, whatever the threads. ``py-spy record
--gil`` samples only the thread holding the GIL; this module runs it on the real
command line and sums its samples by pipeline stage and by the deepest frame of
the package, imports apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: Samples per second asked of py-spy.
RATE = 250

#: What makes a stage's samples, in pipeline order: a function (``name (``) or a
#: module (``/path.py``) in the stack; a stack counts for the first it holds.
#: The threads of a stage (the readers, the reprojection, dask's tasks) have
#: their own stacks, hence the functions and modules they start in.
STAGES = (
    ("fetch", "resolve_inputs ("),
    ("fingerprint", "fingerprint ("),
    ("read", "read_inputs ("),
    ("read", "_read_census ("),
    ("read", "in_territory_crs ("),
    ("read", "observatory/core/archives.py"),  # zip members, from Arrow's threads
    ("harmonise", "read_passage ("),
    ("territories", "build_territories ("),
    ("flows", "census_flows ("),
    ("flows", "observatory/runs/census.py"),
    ("flow_systems", "flow_systems ("),
    ("classify", "classify_epci ("),
    ("layers", "build_layers ("),
    ("layers", "with_flow_layers ("),
    ("export", "export_files ("),
    ("report", "with_documents ("),
    ("write", "publish ("),
)

_LINE = re.compile(r":\d+\)")


def record(config: Path, output: Path, raw: Path) -> None:
    """Run ``observatory run`` on ``config`` under py-spy; write its raw samples to ``raw``.

    Raises
    ------
    RuntimeError
        py-spy is not installed, or the run failed.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        message = "py-spy is not installed: pip install py-spy (the bench extra)"
        raise RuntimeError(message)
    run = "from observatory.cli.main import main; raise SystemExit(main())"
    command = [
        spy, "record", "-r", str(RATE), "--gil", "--threads", "-f", "raw",
        "-o", str(raw), "--", sys.executable, "-c", run,
        "run", "--config", str(config), "--output", str(output), "-q",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not raw.exists():
        message = f"py-spy run failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        raise RuntimeError(message)


def _stacks(raw: Path) -> list[tuple[list[str], int]]:
    # Each sampled stack (frames without line numbers, outermost first) and its count.
    stacks = []
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_LINE.sub(")", f) for f in stack.split(";")[1:]]
        stacks.append((frames, int(count)))
    return stacks


def _stage(frames: list[str]) -> str:
    for name, marker in STAGES:
        if any(marker in f for f in frames):
            return name
    return "other (start, manifest, summary, threads without a Python frame)"


def summary(raw: Path, top: int = 30) -> str:
    """Return the seconds holding the GIL: in all, imports, by stage, by deepest frame."""
    by_stage: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    total = imports = 0
    for frames, count in _stacks(raw):
        total += count
        if any(f.startswith("_find_and_load (") for f in frames):
            imports += count
            continue
        by_stage[_stage(frames)] += count
        ours = [f for f in frames if "observatory/" in f]
        by_frame[ours[-1] if ours else f"(outside the package) {frames[-1:]}"] += count
    lines = [
        f"seconds holding the GIL (py-spy --gil, {RATE} samples/s): {total / RATE:.2f}",
        f"  importing modules: {imports / RATE:.2f}",
        "",
        "by stage (imports apart)",
    ]
    lines += [f"  {n / RATE:6.3f}  {name}" for name, n in by_stage.most_common()]
    lines += ["", f"by deepest frame of the package (top {top})"]
    lines += [f"  {n / RATE:6.3f}  {name}" for name, n in by_frame.most_common(top)]
    return "\n".join(lines) + "\n"
