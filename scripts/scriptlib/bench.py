"""Measuring and recording, as both benchmark scripts do it.

``bench_fd.py`` and ``bench_pipeline.py`` run each measurement in a fresh child
process (the script itself with ``--worker <spec>``), take its peak memory from
its own ``VmHWM`` and from a sampled RSS of its process tree, describe the
machine and the measured code, and merge their figures under one key of
``benchmarks/results.json``. Each script keeps what it measures and how it
reports it. Standard library only at import time: a worker imports this module
before it times its own imports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ child side


def own_peak_rss() -> int | None:
    """Return this process's peak RSS (``VmHWM``) in bytes.

    ``ru_maxrss`` is not used for this: Linux keeps it across ``execve``, so a
    child inherits the high-water mark of the parent it was forked from.

    Returns
    -------
    int or None
        Bytes, or None where ``/proc`` is missing.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


# ----------------------------------------------------------------- parent side


class TreeSampler:
    """Sample the summed RSS of a process and its descendants in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        """Start sampling ``pid``.

        Parameters
        ----------
        pid : int
            Root process.
        interval : float
            Seconds between two samples.
        """
        import psutil

        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._root = psutil.Process(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            # Processes come and go between listing and reading (dask workers):
            # skip the vanished ones rather than lose the whole sample.
            with contextlib.suppress(psutil.Error):
                for process in [self._root, *self._root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def stop(self) -> int:
        """Stop sampling.

        Returns
        -------
        int
            Peak summed RSS in bytes.
        """
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass(frozen=True)
class ChildRun:
    """What the parent saw of one child process.

    Attributes
    ----------
    returncode : int
        Exit status (negative: killed by that signal).
    seconds : float
        Wall seconds from spawning the child to reaping it.
    usage : resource.struct_rusage
        Resource usage of the child and its waited descendants, from ``wait4``.
    tree_peak_rss_bytes : int
        Peak summed RSS of its process tree, as sampled.
    """

    returncode: int
    seconds: float
    usage: Any
    tree_peak_rss_bytes: int

    def peak_rss_bytes(self, vmhwm: int | None) -> int:
        """Return the peak RSS: the larger of the child's own and its tree's.

        Parameters
        ----------
        vmhwm : int or None
            The child's ``VmHWM`` (:func:`own_peak_rss`), None when unknown.

        Returns
        -------
        int
            Bytes; ``ru_maxrss`` stands in for a missing ``VmHWM``.
        """
        own = vmhwm or self.usage.ru_maxrss * 1024  # KiB on Linux
        return max(own, self.tree_peak_rss_bytes)

    @property
    def cpu_seconds(self) -> float:
        """User + sys CPU seconds of the child (all threads, waited children)."""
        return self.usage.ru_utime + self.usage.ru_stime


def run_worker(
    script: Path,
    spec: dict[str, Any],
    interval: float,
    stdout: Any = None,
    stderr: Any = None,
) -> tuple[ChildRun, dict[str, Any] | None]:
    """Run ``python script --worker <spec>`` in a fresh process, sampling its RSS.

    The repository is put on the child's ``PYTHONPATH``, so that it imports
    ``observatory`` from this checkout.

    Parameters
    ----------
    script : Path
        The benchmark script (its ``--worker`` option runs one measurement).
    spec : dict
        What to measure; ``spec["facts"]`` names the JSON file the worker writes.
    interval : float
        Seconds between two RSS samples of its process tree.
    stdout, stderr : file, optional
        Where its output goes (default: inherited).

    Returns
    -------
    tuple
        What the parent saw (exit status, wall seconds, ``wait4`` usage, sampled
        tree peak), and the worker's facts (None when it failed).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
    )
    args = [str(Path(script).resolve()), "--worker", json.dumps(spec)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=stdout, stderr=stderr
    )
    sampler = TreeSampler(process.pid, interval)
    # wait4, not Popen.wait: its rusage is this child's alone, where
    # RUSAGE_CHILDREN would add up every child reaped so far.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    child = ChildRun(process.returncode, seconds, usage, sampler.stop())
    if child.returncode != 0:
        return child, None
    return child, json.loads(Path(spec["facts"]).read_text(encoding="utf-8"))


def stderr_tail(path: Path, lines: int = 5) -> str:
    """Return the last ``lines`` lines of a captured stderr (empty when missing)."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def warm(paths: Iterable[Path]) -> None:
    """Read files once so that every measured run starts with a warm page cache.

    Parameters
    ----------
    paths : iterable of Path
        Files to read.
    """
    for path in paths:
        with Path(path).open("rb") as handle:
            while handle.read(1 << 24):
                pass


# ------------------------------------------------------------------ context


def versions(packages: Iterable[str], missing: str | None = None) -> dict[str, Any]:
    """Return the versions of Python and of the given packages.

    Parameters
    ----------
    packages : iterable of str
        Distribution names.
    missing : str, optional
        Value recorded for a package that is not installed.

    Returns
    -------
    dict
        ``python`` then each package, in order -> version.
    """
    out: dict[str, Any] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = missing
    return out


def machine() -> dict[str, Any]:
    """Describe this machine: cores, RAM, CPU model and platform.

    Returns
    -------
    dict
        ``cores``, ``ram_bytes``, ``ram_gib``, ``cpu`` (``platform.processor()``
        or None where ``/proc/cpuinfo`` has no model name) and ``platform``.
    """
    import psutil

    cpu = platform.processor() or None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = psutil.virtual_memory().total
    return {
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "ram_gib": round(ram / 2**30, 1),
        "cpu": cpu,
        "platform": platform.platform(),
    }


def describe_run(
    script: str, argv: Sequence[str], versions_: dict[str, Any]
) -> dict[str, Any]:
    """Return when, how and where a benchmark ran: the head of its results.

    Parameters
    ----------
    script : str
        The script's path in the repository (``scripts/bench_fd.py``).
    argv : sequence of str
        Its arguments.
    versions_ : dict
        Versions of Python and the libraries (:func:`versions`).

    Returns
    -------
    dict
        ``date`` (UTC, to the second), ``command`` and ``machine`` (with
        ``versions``).
    """
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", script, *argv]),
        "machine": {**machine(), "versions": versions_},
    }


def source_sha256(path: Path) -> str | None:
    """Return a hash of Python source: one file, or every ``.py`` below a folder.

    Parameters
    ----------
    path : Path
        A module file or a package folder.

    Returns
    -------
    str or None
        The sha256 of the file, or of the folder's files (relative name and
        content, in name order); None when ``path`` is missing.
    """
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*.py")):
        name = file.relative_to(path).as_posix().encode()
        digest.update(name + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def code_identity(key: str, digest: str | None) -> dict[str, Any]:
    """Identify the measured code: git HEAD, whether observatory/ is dirty, a hash.

    Parameters
    ----------
    key : str
        Name of the hash in the result (e.g. ``mobpro_sha256``).
    digest : str or None
        The hash of the measured code, None when unknown.

    Returns
    -------
    dict
        ``git_head``, ``git_dirty`` (None when git is unavailable) and ``key``.
    """
    out: dict[str, Any] = {"git_head": None, "git_dirty": None}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        run = {"cwd": REPO_ROOT, "capture_output": True, "text": True, "check": True}
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run)
        out["git_head"] = head.stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "observatory"], **run
        )
        out["git_dirty"] = bool(status.stdout.strip())
    out[key] = digest
    return out


def merge_results(path: Path, key: str, value: dict[str, Any]) -> None:
    """Write ``value`` under ``key`` of the results file, keeping the other keys.

    Parameters
    ----------
    path : Path
        Results file (``benchmarks/results.json``).
    key : str
        Entry of this benchmark (``fd``, ``pipeline``).
    value : dict
        This run's results.
    """
    # Imported here, not at the top: bench_fd's worker loads this module before
    # it times its own import of observatory.
    from observatory.core.files import write_json_atomic

    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own, flushed, then renamed over the target: a
    # reader never sees half a file, and two benchmarks finishing together do
    # not write into the same temporary file.
    write_json_atomic(path, data)
