"""Unattended refreshes: run folders, ``latest``, a lock, a state file, change detection.

Layout of an output folder::

    outputs/
      20251123T020000.412Z-1a2b3c/    one folder per published run, manifest.json inside
      20251124T020000.087Z-4d5e6f/
      latest -> 20251124T020000.087Z-4d5e6f   what readers (QGIS) open: symlink or copy
      LATEST                          text file naming the run ``latest`` shows
      .observatory/state.json         last success, last attempt, last failure
      .observatory/lock               held by the running refresh: pid, host, start
      .observatory/logs/<run id>.log  one log per attempt, DEBUG level

Guarantees, and how:

- **atomic publication**: a run is written to ``.staging-<run id>/``, validated,
  flushed, and renamed to ``<run id>/`` (:func:`observatory.runs.publish.publish`);
  ``latest`` then switches in one rename (:func:`switch_latest`). A reader opening
  ``latest/...`` gets one complete run, never a mix.
- **failure leaves the last good outputs**: nothing outside the staging folder
  is touched before the switch; the next run removes what a killed run left
  (:func:`remove_leftovers`), and old runs are pruned only after a successful
  switch (:func:`prune_runs`).
- **one refresh at a time**: :class:`Lock` (``O_CREAT | O_EXCL``); a lock whose
  process is gone (or, from another host, older than :data:`STALE_LOCK_AFTER_S`)
  is moved aside and replaced.
- **incremental**: :func:`fingerprint` (sha256 of every input file, of the
  config, classification and catalogue files, package version and code) is
  compared with the last successful run's; equal means "up to date".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observatory import __version__
from observatory.config import Config, SourceRef
from observatory.core.errors import ObservatoryError, OutputError, SourceError
from observatory.core.files import (
    fsync_path,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from observatory.core.timing import (
    STAGING_PREFIX,
    failed_stage,
    new_run_id,
    pause_point,
    stage,
)
from observatory.sources.inputs import (
    GEOGRAPHY_ROLES,
    ResolvedInput,
    cache_dir,
    catalogue_path,
    configured_inputs,
    input_files,
    resolve_inputs,
    source_refs,
)

if TYPE_CHECKING:
    from types import FrameType

    from observatory.runs.pipeline import RunReport


logger = logging.getLogger(__name__)


#: Exit codes of ``observatory run`` and ``observatory refresh``.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75  # 75: EX_TEMPFAIL


META_DIR = ".observatory"


LATEST = "latest"


#: Format of log lines, on stderr and in the run logs.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


LATEST_FILE = "LATEST"


#: A lock from another host (whose process cannot be checked) older than this
#: is stale, as is a lock whose pid cannot be matched to its process.
STALE_LOCK_AFTER_S = 6 * 3600


#: An unreadable lock file younger than this may be one being written.
LOCK_GRACE_S = 60


#: Attempt logs older than this are deleted (those the state names are kept).
LOG_RETENTION_DAYS = 30


RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


_LEFTOVER_PREFIXES = (
    STAGING_PREFIX,
    ".trash-",
    ".latest-",
    ".tmp-",
    f".{LATEST_FILE}.",
)


class Locked(ObservatoryError):
    """Another refresh holds the lock of the output folder."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class RunFailed(ObservatoryError):
    """A run or refresh failed; ``line`` is the one line for stderr (and cron mail)."""

    def __init__(
        self, line: str, stage: str | None, source: str | None, log: Path | None
    ) -> None:
        super().__init__(line)
        self.line = line
        self.stage = stage
        self.source = source
        self.log = log


class Terminated(BaseException):
    """SIGTERM (or SIGINT) arrived: unwind, record the failure, release the lock."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


# --------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """The paths of an output folder."""

    root: Path

    @property
    def meta(self) -> Path:
        """The bookkeeping folder ``.observatory/``."""
        return self.root / META_DIR

    @property
    def state(self) -> Path:
        """The state file."""
        return self.meta / "state.json"

    @property
    def lock(self) -> Path:
        """The lock file."""
        return self.meta / "lock"

    @property
    def logs(self) -> Path:
        """The folder of attempt logs."""
        return self.meta / "logs"

    @property
    def latest(self) -> Path:
        """The stable path readers open."""
        return self.root / LATEST

    def run_dir(self, run_id: str) -> Path:
        """Return the folder of a published run."""
        return self.root / run_id

    def run_ids(self) -> list[str]:
        """Return the published run folders, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if RUN_ID.match(p.name) and p.is_dir() and not p.is_symlink()
        )

    def latest_manifest(self) -> dict[str, Any]:
        """Return the manifest ``latest`` shows, empty when it is missing or unreadable."""
        try:
            manifest = json.loads(
                (self.latest / "manifest.json").read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return {}
        return manifest if isinstance(manifest, dict) else {}

    def latest_run(self) -> str | None:
        """Return the run ``latest`` shows, or None when it is missing or dangling."""
        link = self.latest
        if link.is_symlink():
            name = link.readlink().name
            return name if RUN_ID.match(name) and link.is_dir() else None
        if link.is_dir():
            run_id = self.latest_manifest().get("run_id")
            return run_id if isinstance(run_id, str) else None
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------- state
def read_state(layout: Layout) -> dict[str, Any]:
    """Return the state of an output folder, ``{}`` when there is none yet."""
    try:
        state = json.loads(layout.state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable state file %s: %s", layout.state, exc)
        return {}
    return state if isinstance(state, dict) else {}


def write_state(layout: Layout, state: dict[str, Any]) -> None:
    """Write the state file atomically."""
    state["format"] = 1
    write_json_atomic(layout.state, state)


# --------------------------------------------------------------------- lock
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would kill it there
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    stat = _proc_stat(pid)
    return not (stat and stat[0] == "Z")  # a zombie is dead


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _process_identity(pid: int) -> str | None:
    """Boot id and start time of a process (Linux): tells a reused pid apart."""
    stat = _proc_stat(pid)
    if not stat or len(stat) < 20:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{boot}:{stat[19]}"


def _read_lock(path: Path) -> tuple[dict[str, Any] | None, float | None]:
    """Return (the lock's content or None if unreadable, its mtime or None if absent)."""
    try:
        mtime = path.stat().st_mtime
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        try:
            return None, path.stat().st_mtime
        except OSError:
            return None, None
    return (info if isinstance(info, dict) else None), mtime


def lock_staleness(info: dict[str, Any] | None, mtime: float) -> str | None:
    """Return why a lock is stale, or None when its holder may still be running."""
    now = time.time()
    if info is None:
        age = now - mtime
        return f"unreadable lock file, {age:.0f} s old" if age > LOCK_GRACE_S else None
    age = now - float(info.get("started_epoch") or mtime)
    pid = info.get("pid")
    if info.get("host") == socket.gethostname() and isinstance(pid, int):
        if not _pid_alive(pid):
            return f"process {pid} is not running"
        recorded, current = info.get("process"), _process_identity(pid)
        if recorded and current:
            if recorded != current:
                return f"pid {pid} now belongs to another process"
            return None  # the very process that took the lock: never steal it
        if age > STALE_LOCK_AFTER_S:
            return f"{age / 3600:.1f} h old and pid {pid} cannot be verified"
        return None
    if age > STALE_LOCK_AFTER_S:
        return (
            f"taken {age / 3600:.1f} h ago on host {info.get('host')} "
            f"(more than {STALE_LOCK_AFTER_S / 3600:g} h)"
        )
    return None


def describe_holder(info: dict[str, Any] | None) -> str:
    """Return who holds a lock, for messages."""
    if not info:
        return "a process whose lock file is being written"
    started = info.get("started", "?")
    try:
        ago = f", {_ago(time.time() - float(info['started_epoch']))} ago"
    except (KeyError, TypeError, ValueError):
        ago = ""
    return (
        f"{info.get('command', 'refresh')} {info.get('run_id', '?')}: pid "
        f"{info.get('pid', '?')} on host {info.get('host', '?')}, started {started}{ago}"
    )


class Lock:
    """Exclusive lock of an output folder: a file created with ``O_CREAT | O_EXCL``."""

    def __init__(self, path: Path, run_id: str, command: str) -> None:
        self.path = path
        self.run_id = run_id
        now = time.time()
        self.info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process": _process_identity(os.getpid()),
            "run_id": run_id,
            "command": command,
            "started": _iso(datetime.fromtimestamp(now, UTC)),
            "started_epoch": now,
        }
        self.held = False
        self.recovered: str | None = None  # why a stale lock was replaced

    def acquire(self) -> None:
        """Take the lock, recovering a stale one.

        Raises
        ------
        Locked
            When another live process holds it.
        OutputError
            When the lock file cannot be written.
        """
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info, mtime = _read_lock(self.path)
                if mtime is None:
                    continue  # released meanwhile: try again
                why = lock_staleness(info, mtime)
                if why is None:
                    msg = (
                        f"another refresh is running ({describe_holder(info)}); "
                        f"lock {self.path}"
                    )
                    raise Locked(msg, info) from None
                self._recover(info, why)
                continue
            except OSError as exc:
                msg = f"cannot create the lock {self.path} ({exc.strerror or exc})"
                raise OutputError(msg) from exc
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(self.info, out)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                self.path.unlink(missing_ok=True)
                msg = f"cannot write the lock {self.path} ({exc.strerror or exc})"
                raise OutputError(msg) from exc
            self.held = True
            return
        msg = f"the lock {self.path} keeps changing hands; giving up"
        raise Locked(msg)

    def _recover(self, info: dict[str, Any] | None, why: str) -> None:
        """Move a stale lock aside in one rename, checking it is the one judged stale."""
        aside = self.path.with_name(f"{self.path.name}.stale-{secrets.token_hex(4)}")
        try:
            self.path.rename(aside)
        except FileNotFoundError:
            return  # another process recovered it first
        moved, _ = _read_lock(aside)
        if moved != info:  # a new lock was taken in between: give it back
            try:
                os.link(aside, self.path)
            except OSError:
                if not self.path.exists():
                    aside.rename(self.path)
            aside.unlink(missing_ok=True)
            return
        self.recovered = (
            f"recovered a stale lock ({why}), left by {describe_holder(info)}"
        )
        logger.debug("%s", self.recovered)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock if this process still holds it."""
        if not self.held:
            return
        self.held = False
        info, _ = _read_lock(self.path)
        if info is not None and info.get("run_id") != self.run_id:
            logger.warning(
                "the lock %s was taken over by %s", self.path, describe_holder(info)
            )
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def lock_status(layout: Layout) -> str:
    """Return a line saying whether the output folder's lock is free, held or stale."""
    info, mtime = _read_lock(layout.lock)
    if mtime is None:
        return "free"
    why = lock_staleness(info, mtime)
    if why is None:
        return f"held by {describe_holder(info)}"
    return f"stale ({why}); the next refresh recovers it"


# --------------------------------------------------------------------- signals
_critical = 0


_pending: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _critical:
        _pending = signum  # raised when the critical section ends
        return
    raise Terminated(signum)


@contextlib.contextmanager
def _critical_section() -> Iterator[None]:
    """Defer SIGTERM/SIGINT while two renames must both happen."""
    global _critical, _pending
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if not _critical and _pending is not None:
            signum, _pending = _pending, None
            raise Terminated(signum)


def install_signal_handlers() -> Callable[[], None]:
    """Turn SIGTERM and SIGINT into :class:`Terminated`; return the undo function.

    ``timeout`` (and systemd) stop a job with SIGTERM, whose default action ends
    Python without any cleanup; raising instead lets the run record its failure
    and release its lock.
    """
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[signum] = signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread
            continue

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


# --------------------------------------------------------------------- fingerprint
@lru_cache(maxsize=1)
def code_sha256() -> str:
    """Return the sha256 of the package's source files (changes when code changes)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def static_fingerprint(config: Config) -> dict[str, Any]:
    """Return the package and configuration part of the fingerprint."""
    catalogue = catalogue_path(config) if source_refs(config) else None
    return {
        "package_version": __version__,
        "code_sha256": code_sha256(),
        "config": str(config.path),
        "config_sha256": config.sha256,
        "classification": str(config.classification.source),
        "classification_sha256": sha256_file(config.classification.source),
        "catalogue": str(catalogue) if catalogue else None,
        "catalogue_sha256": sha256_file(catalogue) if catalogue else None,
    }


def fingerprint(config: Config, inputs: dict[str, ResolvedInput]) -> dict[str, Any]:
    """Return what a run's outputs depend on.

    The fingerprint holds the sha256 of every input file (every shapefile part;
    for a catalogue source, the file read and the archive it came from), of the
    config, classification and catalogue files, and the package version and code.
    The sha256 measured are kept in each input's ``digests``, for the manifest.
    """
    records = []
    for role, resolved in inputs.items():
        if not resolved.path.is_file():
            msg = f"[inputs] {role}: {resolved.path} does not exist"
            raise SourceError(msg)
        # the fetch has just measured the files it downloaded or extracted
        digests = {
            str(part): resolved.digests.get(str(part)) or sha256_file(part)
            for part in input_files(resolved)
        }
        inputs[role] = replace(resolved, digests={**resolved.digests, **digests})
        for path, digest in digests.items():
            record = {"role": role, "path": path, "sha256": digest}
            if resolved.source_id:
                record["source"] = resolved.source_id
                record["source_sha256"] = resolved.provenance.get("sha256")
            records.append(record)
    return {**static_fingerprint(config), "inputs": records}


def static_changes(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Return what changed in the package and configuration parts of two fingerprints."""
    reasons = []
    if previous.get("package_version") != current["package_version"]:
        reasons.append(
            f"package version changed ({previous.get('package_version')} -> "
            f"{current['package_version']})"
        )
    elif previous.get("code_sha256") != current["code_sha256"]:
        reasons.append(f"package code changed (same version {__version__})")
    for key, what in (
        ("config", "config"),
        ("classification", "classification rules"),
        ("catalogue", "sources catalogue"),
    ):
        if (previous.get(key), previous.get(f"{key}_sha256")) != (
            current[key],
            current[f"{key}_sha256"],
        ):
            reasons.append(f"{what} changed ({current[key] or previous.get(key)})")
    return reasons


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Return why outputs made with fingerprint ``previous`` are stale; [] if they are not."""
    if not previous:
        return ["no successful run recorded"]
    reasons = static_changes(previous, current)
    before = {(r["role"], r["path"]): r["sha256"] for r in previous.get("inputs", [])}
    now = {(r["role"], r["path"]): r["sha256"] for r in current["inputs"]}
    for key in sorted(before.keys() | now.keys()):
        role, path = key
        if key not in before:
            reasons.append(f"input {role} is new: {path}")
        elif key not in now:
            reasons.append(f"input {role} no longer read: {path}")
        elif before[key] != now[key]:
            reasons.append(
                f"input {role} changed: {path} (sha256 {before[key][:12]}... -> "
                f"{now[key][:12]}...)"
            )
    return reasons


# --------------------------------------------------------------------- publication
def remove_leftovers(layout: Layout) -> list[str]:
    """Remove what killed runs left: staging and temporary folders, stale lock copies.

    Call it only with the lock held: these names belong to the lock holder.
    """
    removed = []
    places = [(layout.root, _LEFTOVER_PREFIXES), (layout.meta, ("lock.stale-", "."))]
    for folder, prefixes in places:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.name.startswith(prefixes):
                continue
            try:
                _remove(path)
            except OSError as exc:
                logger.warning("cannot remove leftover %s: %s", path, exc)
                continue
            logger.info("removed %s, left by an interrupted run", path)
            removed.append(path.name)
    return removed


def _write_latest_file(layout: Layout, run_id: str) -> None:
    write_text_atomic(layout.root / LATEST_FILE, run_id + "\n")


def switch_latest(layout: Layout, run_id: str, mode: str = "auto") -> str:
    """Make ``latest`` show the run folder ``run_id`` in one rename; return the mode used.

    ``symlink``: a relative symlink made under a temporary name, then
    :func:`os.replace`'d over ``latest``. ``copy`` (Windows shares, filesystems
    without symlinks): the run folder is copied to a temporary folder, flushed,
    then ``latest`` is renamed aside and the copy renamed to ``latest``; a reader
    may find no ``latest`` for the instant between the two renames, never a mix.
    ``auto`` tries a symlink and falls back to a copy. The ``LATEST`` file then
    names the run.
    """
    target = layout.run_dir(run_id)
    if not (target / "manifest.json").is_file():
        msg = f"{target} is not a complete run folder"
        raise OutputError(msg)
    token = secrets.token_hex(4)
    tmp = layout.root / f".latest-{token}"
    old = layout.root / f".latest-old-{token}"
    used = mode
    if mode in ("auto", "symlink"):
        try:
            tmp.symlink_to(run_id, target_is_directory=True)
            used = "symlink"
        except (OSError, NotImplementedError) as exc:
            if mode == "symlink":
                msg = f'{layout.root}: cannot create a symlink ({exc}); set [output] latest = "copy"'
                raise OutputError(msg) from exc
            logger.info("no symlinks in %s (%s): latest is a copy", layout.root, exc)
            used = "copy"
    try:
        if used == "copy":
            shutil.copytree(target, tmp, symlinks=False)
            for path in tmp.iterdir():
                fsync_path(path)
            fsync_path(tmp)
        with _critical_section():
            link = layout.latest
            if link.is_symlink():
                if used == "copy":
                    link.unlink()
            elif link.exists():
                link.rename(old)  # a real folder: move it aside first
            try:
                tmp.replace(link)
            except OSError:
                if old.exists() and not link.exists():
                    old.rename(link)
                raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            _remove(tmp)
        hint = (
            " (a file in it may be open, e.g. in QGIS on Windows)"
            if used == "copy"
            else ""
        )
        msg = (
            f"{layout.latest}: cannot switch to run {run_id} ({exc.strerror or exc}); "
            f"it stays on the previous run{hint}; the new run is complete in {target}"
        )
        raise OutputError(msg) from exc
    if old.exists():
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
    fsync_path(layout.root)
    _write_latest_file(layout, run_id)
    logger.info("%s -> %s (%s)", layout.latest, run_id, used)
    return used


def prune_runs(layout: Layout, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` run folders, never the one ``latest`` shows.

    A folder is first renamed to ``.trash-<run id>`` (it vanishes in one step),
    then deleted. Errors are logged, not raised: the new run is published.
    """
    shown = layout.latest_run()
    runs = layout.run_ids()
    kept = set(runs[-keep:]) | {shown}
    pruned = []
    for run_id in runs:
        if run_id in kept:
            continue
        trash = layout.root / f".trash-{run_id}"
        try:
            layout.run_dir(run_id).rename(trash)
            shutil.rmtree(trash)
        except OSError as exc:
            logger.warning("cannot prune %s: %s", layout.run_dir(run_id), exc)
            continue
        logger.info("pruned run %s (keep_runs = %d)", run_id, keep)
        pruned.append(run_id)
    return pruned


def _prune_logs(layout: Layout, state: dict[str, Any]) -> None:
    named = {
        Path(entry["log"]).name
        for key in ("last_success", "last_attempt", "last_failure")
        if isinstance(entry := state.get(key), dict) and entry.get("log")
    }
    limit = time.time() - LOG_RETENTION_DAYS * 86400
    for path in layout.logs.glob("*.log"):
        try:
            if path.name not in named and path.stat().st_mtime < limit:
                path.unlink()
        except OSError as exc:
            logger.warning("cannot prune log %s: %s", path, exc)


# --------------------------------------------------------------------- logging
class _RunLog(logging.FileHandler):
    """The attempt's log file; a full disk must not spam stderr with logging errors."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record silently."""


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[None]:
    package = logging.getLogger("observatory")
    try:
        handler: logging.Handler | None = _RunLog(path, encoding="utf-8", delay=False)
    except OSError as exc:
        logger.warning("cannot open the log file %s: %s", path, exc)
        handler = None
    level = package.level
    if handler is not None:
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._observatory = True  # type: ignore[attr-defined]
        package.addHandler(handler)
        package.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        if handler is not None:
            package.removeHandler(handler)
            package.setLevel(level)
            handler.close()


# --------------------------------------------------------------------- execute
@dataclass
class Outcome:
    """What :func:`execute` did."""

    command: str
    status: str  # "published" or "up_to_date"
    run_id: str  # this attempt
    latest: str | None  # the run latest shows now
    reasons: list[str] = field(default_factory=list)
    report: RunReport | None = None
    log: Path | None = None
    duration_s: float = 0.0
    latest_mode: str | None = None
    pruned: list[str] = field(default_factory=list)
    previous_success: dict[str, Any] | None = None


def _one_line(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def failure_line(command: str, exc: BaseException, log: Path | None) -> str:
    """Return the one line saying what failed, on which stage or source, and the log."""
    where = f"stage '{failed_stage(exc) or 'start'}'"
    source = getattr(exc, "observatory_source", None)
    if isinstance(exc, ObservatoryError | Terminated):
        what = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        what = "interrupted (SIGINT)"
    elif isinstance(exc, OSError):  # disk full, permissions... outside the writers
        what = f"{type(exc).__name__}: {exc}" + (
            " (traceback in the log)" if log else ""
        )
    else:
        what = f"unexpected error {type(exc).__name__}: {exc} (a bug" + (
            ": the traceback is in the log)" if log else ")"
        )
    if source:
        where += f" (source {source})"
        what = what.removeprefix(f"{source}: ")
    line = f"observatory {command} failed at {where}: {what}"
    return _one_line(line + (f"; log: {log}" if log else ""))


def execute(
    config: Config,
    output_dir: Path,
    *,
    offline: bool = False,
    force: bool = False,
    command: str = "refresh",
) -> Outcome:
    """Fetch, recompute if anything changed (or ``force``), publish, switch ``latest``.

    Parameters
    ----------
    config
        A loaded configuration.
    output_dir
        The output folder (run folders, ``latest``, ``.observatory/``).
    offline
        Take catalogue sources from the download cache only.
    force
        Recompute even when nothing changed (``observatory run`` always does).
    command
        ``"refresh"`` or ``"run"``, for the state and the messages.

    Raises
    ------
    Locked
        Another refresh of ``output_dir`` is running.
    RunFailed
        The run failed; the last good outputs and ``latest`` are untouched, the
        failure is recorded in the state and the attempt's log.
    """
    layout = Layout(Path(output_dir).resolve())
    started = _now()
    run_id = new_run_id(started)
    try:
        layout.logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        exc.observatory_stage = "lock"  # type: ignore[attr-defined]
        line = failure_line(command, exc, None)
        raise RunFailed(line, "lock", None, None) from exc
    lock = Lock(layout.lock, run_id, command)
    try:
        lock.acquire()
    except OutputError as exc:
        exc.observatory_stage = "lock"  # type: ignore[attr-defined]
        raise RunFailed(failure_line(command, exc, None), "lock", None, None) from exc
    try:
        log = layout.logs / f"{run_id}.log"
        with _run_log(log):
            if lock.recovered:
                logger.warning("%s", lock.recovered)
            return _execute_locked(
                config, layout, run_id, started, log, offline, force, command
            )
    finally:
        lock.release()


def _execute_locked(
    config: Config,
    layout: Layout,
    run_id: str,
    started: datetime,
    log: Path,
    offline: bool,
    force: bool,
    command: str,
) -> Outcome:
    clock = time.monotonic()
    logger.info(
        "observatory %s: %s %s%s: config %s, output %s",
        __version__,
        command,
        run_id,
        " --force" if force and command == "refresh" else "",
        config.path,
        layout.root,
    )
    state = read_state(layout)
    previous = state.get("last_attempt")
    if isinstance(previous, dict) and previous.get("outcome") == "running":
        previous.update(
            outcome="interrupted",
            error=(
                f"{previous.get('command', 'refresh')} {previous.get('run_id')} ended "
                "without recording an outcome (killed, timed out or power loss)"
            ),
        )
        state["last_failure"] = previous
        logger.warning("%s", previous["error"])
    attempt: dict[str, Any] = {
        "run_id": run_id,
        "command": command,
        "started": _iso(started),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "log": str(log),
        "outcome": "running",
    }
    state["last_attempt"] = attempt
    success = (
        state.get("last_success")
        if isinstance(state.get("last_success"), dict)
        else None
    )
    timings: dict[str, float] = {}
    outcome = Outcome(
        command=command,
        status="published",
        run_id=run_id,
        latest=None,
        log=log,
        previous_success=success,
    )
    try:
        with stage("start", timings):
            write_state(layout, state)
            remove_leftovers(layout)
            _heal_latest(layout, success, config.output.latest)
            _warn_flat_layout(layout)
        with stage("fetch", timings):
            inputs = resolve_inputs(config, offline=offline)
        with stage("fingerprint", timings):
            current = fingerprint(config, inputs)
            reasons = _reasons(layout, success, current, force, command)
        if not reasons:
            assert success is not None
            outcome.status = "up_to_date"
            outcome.latest = success["run_id"]
            logger.info(
                "up to date: inputs, config and package unchanged since run %s",
                success["run_id"],
            )
        else:
            logger.info("recomputing: %s", "; ".join(reasons))
            outcome.reasons = reasons
            from observatory.runs import pipeline  # heavy imports only when computing

            outcome.report = pipeline.run(
                config,
                layout.root,
                inputs=inputs,
                run_id=run_id,
                started=started,
                timings=timings,
                manifest_extra={
                    "refresh": {
                        "command": command,
                        "forced": force,
                        "reasons": reasons,
                        "fingerprint": current,
                    }
                },
            )
            timings = outcome.report.timings
            pause_point("publish.renamed")
            with stage("latest", timings):
                outcome.latest_mode = switch_latest(
                    layout, run_id, config.output.latest
                )
                outcome.latest = run_id
            pause_point("publish.switched")
            with stage("prune", timings):
                outcome.pruned = prune_runs(layout, config.output.keep_runs)
    except BaseException as exc:
        duration = round(time.monotonic() - clock, 3)
        line = failure_line(command, exc, log)
        if isinstance(exc, ObservatoryError | Terminated | KeyboardInterrupt):
            logger.error("%s", line, extra={"console": False})
        else:
            logger.error("%s", line, exc_info=exc, extra={"console": False})
        attempt.update(
            outcome="failed",
            finished=_iso(_now()),
            duration_s=duration,
            stage=failed_stage(exc),
            source=getattr(exc, "observatory_source", None),
            error=line,
            timings_s=timings,
        )
        state["last_failure"] = attempt
        try:
            write_state(layout, state)
        except OSError as state_exc:
            logger.error("cannot record the failure in %s: %s", layout.state, state_exc)
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        raise RunFailed(
            line, failed_stage(exc), getattr(exc, "observatory_source", None), log
        ) from exc

    outcome.duration_s = round(time.monotonic() - clock, 3)
    attempt.update(
        outcome=outcome.status,
        finished=_iso(_now()),
        duration_s=outcome.duration_s,
        timings_s=timings,
    )
    if outcome.status == "published":
        attempt["reasons"] = outcome.reasons
        state["last_success"] = {
            **attempt,
            "run_dir": str(layout.run_dir(run_id)),
            "fingerprint": current,
            "rows": outcome.report.rows if outcome.report else {},
            "warnings": outcome.report.warnings if outcome.report else [],
        }
    try:
        write_state(layout, state)
    except OSError as exc:
        exc.observatory_stage = "state"  # type: ignore[attr-defined]
        line = failure_line(command, exc, log)
        logger.error("%s", line, extra={"console": False})
        raise RunFailed(line, "state", None, log) from exc
    _prune_logs(layout, state)
    logger.info(
        "%s %s: %s in %.1f s", command, run_id, outcome.status, outcome.duration_s
    )
    return outcome


def _reasons(
    layout: Layout,
    success: dict[str, Any] | None,
    current: dict[str, Any],
    force: bool,
    command: str,
) -> list[str]:
    reasons = []
    if force:
        reasons.append("--force" if command == "refresh" else f"observatory {command}")
    if success is None:
        return [*reasons, "no successful run recorded"]
    shown = layout.latest_run()
    if shown != success.get("run_id"):
        reasons.append(
            f"{layout.latest} shows {shown or 'nothing'}, not the last successful run "
            f"{success.get('run_id')}"
        )
    return reasons + changes(success.get("fingerprint"), current)


#: Files that earlier versions wrote directly into the output folder.
_FLAT_FILES = (
    "epci_indicators.parquet",
    "flows.parquet",
    "metropoles.parquet",
    "flow_matrix.parquet",
    "manifest.json",
)


def _warn_flat_layout(layout: Layout) -> None:
    flat = [name for name in _FLAT_FILES if (layout.root / name).is_file()]
    if flat:
        logger.warning(
            "%s holds %s from an earlier version that wrote layers flat: they are no "
            "longer updated; open %s/ instead and delete them",
            layout.root,
            ", ".join(flat),
            layout.latest,
        )


def _heal_latest(layout: Layout, success: dict[str, Any] | None, mode: str) -> None:
    """Restore a missing ``latest`` (a copy-mode switch killed between its renames)."""
    if layout.latest.exists() or layout.latest.is_symlink() or success is None:
        return
    run_id = success.get("run_id")
    if isinstance(run_id, str) and (layout.run_dir(run_id) / "manifest.json").is_file():
        logger.warning(
            "%s is missing: pointing it at run %s again", layout.latest, run_id
        )
        switch_latest(layout, run_id, mode)


# --------------------------------------------------------------------- status
def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _since(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{iso} ({_ago((_now() - moment).total_seconds())} ago)"


def _effective_outcome(entry: dict[str, Any], layout: Layout) -> str:
    """Return an attempt's outcome; "running" without a live lock is "interrupted"."""
    outcome = str(entry.get("outcome", "?"))
    if outcome != "running":
        return outcome
    info, mtime = _read_lock(layout.lock)
    alive = (
        mtime is not None
        and lock_staleness(info, mtime) is None
        and (info or {}).get("run_id") == entry.get("run_id")
    )
    return "running" if alive else "interrupted"


def _attempt_line(entry: dict[str, Any], layout: Layout) -> str:
    outcome = _effective_outcome(entry, layout)
    if outcome == "running":
        outcome = "running now"
    elif outcome == "interrupted" and entry.get("outcome") == "running":
        outcome = "interrupted (ended without recording an outcome: killed, timed out or power loss)"
    elif outcome in ("failed", "interrupted"):
        outcome = f"{outcome}: {entry.get('error', '?')}"
    elif outcome == "up_to_date":
        outcome = "up to date, nothing recomputed"
    took = (
        f", took {entry['duration_s']:.1f} s"
        if isinstance(entry.get("duration_s"), int | float)
        else ""
    )
    return f"{entry.get('command', 'refresh')} {entry.get('run_id', '?')}, started {_since(entry.get('started'))}{took}: {outcome}"


def status(config: Config, output_dir: Path) -> tuple[str, int]:
    """Return the status report of an output folder and its exit code.

    The code is 1 when the last attempt failed or was interrupted, else 0, so
    that ``observatory status`` can serve as a monitoring check. Nothing is
    written and nothing is downloaded: whether a source changed upstream is only
    known to the next ``refresh``.
    """
    from observatory.sources.fetch import cached_provenance
    from observatory.sources.inputs import load_config_catalogue

    layout = Layout(Path(output_dir).resolve())
    state = read_state(layout)
    success = (
        state.get("last_success")
        if isinstance(state.get("last_success"), dict)
        else None
    )
    attempt = (
        state.get("last_attempt")
        if isinstance(state.get("last_attempt"), dict)
        else None
    )
    failure = (
        state.get("last_failure")
        if isinstance(state.get("last_failure"), dict)
        else None
    )
    lines = [f"observatory {__version__}: output {layout.root}, config {config.path}"]
    if success:
        lines.append(
            f"Last success:  {success['run_id']}, finished {_since(success.get('finished'))}, "
            f"took {success.get('duration_s', 0):.1f} s, in {success.get('run_dir')}"
        )
    else:
        lines.append("Last success:  none (no refresh has published a run here yet)")
    shown = layout.latest_run()
    kind = "symlink" if layout.latest.is_symlink() else "folder"
    lines.append(
        f"Latest:        {layout.latest} -> {shown} ({kind})"
        if shown
        else f"Latest:        {layout.latest} is missing"
    )
    lines.append(
        f"Last attempt:  {_attempt_line(attempt, layout)}"
        if attempt
        else "Last attempt:  none"
    )
    if failure and (not attempt or failure.get("run_id") != attempt.get("run_id")):
        lines.append(f"Last failure:  {_attempt_line(failure, layout)}")
    lines.append(f"Lock:          {lock_status(layout)}")
    runs = layout.run_ids()
    lines.append(
        f"Run folders:   {len(runs)} (keep_runs = {config.output.keep_runs})"
        + (f", oldest {runs[0]}" if runs else "")
    )

    previous = (success or {}).get("fingerprint") or {}
    before = {(r["role"], r["path"]): r for r in previous.get("inputs", [])}
    manifest = layout.latest_manifest()
    run_inputs = {r.get("role"): r for r in manifest.get("inputs", [])}
    reasons: list[str] = []
    lines.append("Inputs:")
    refs = source_refs(config)
    catalogue = load_config_catalogue(config) if refs else {}
    for role, (kind, value) in configured_inputs(config).items():
        if isinstance(value, SourceRef):
            source = catalogue[value.source]
            record = cached_provenance(source, cache_dir(config))
            vintage = f"RP {source.vintage}, " if source.vintage else ""
            head = f"  {role}: source {value.source} ({source.publisher}, {vintage}geography {source.geography})"
            if record is None:
                lines.append(f"{head}: not in the cache {cache_dir(config)}")
                reasons.append(f"source {value.source} is not in the cache")
                continue
            lines += [
                head,
                f"      {source.url}",
                f"      fetched {_since(record.get('fetched_at'))}, checked "
                f"{_since(record.get('checked_at'))}, sha256 {record.get('sha256')}",
            ]
            recorded = {
                r.get("source_sha256") for k, r in before.items() if k[0] == role
            }
            if success and recorded and recorded != {record.get("sha256")}:
                reasons.append(f"source {value.source} changed in the cache")
            continue
        resolved = ResolvedInput(kind, value)
        vintage = run_inputs.get(role, {}).get("vintage")
        geography = config.inputs.geography if kind in GEOGRAPHY_ROLES else None
        detail = ", ".join(
            x
            for x in (
                f"vintage {vintage}" if vintage else "",
                f"geography {geography}" if geography else "",
            )
            if x
        )
        lines.append(f"  {role}: local file{f' ({detail})' if detail else ''}")
        parts = input_files(resolved) or [value]
        for part in parts:
            if not part.is_file():
                lines.append(f"      {part}: MISSING")
                reasons.append(f"input {role} is missing: {part}")
                continue
            digest = sha256_file(part)
            age = time.time() - part.stat().st_mtime
            lines.append(
                f"      {part.name}: modified {_ago(age)} ago, sha256 {digest}"
            )
            known = before.get((role, str(part)))
            if success and (known is None or known["sha256"] != digest):
                reasons.append(f"input {role} changed: {part}")

    if not success:
        reasons.insert(0, "no successful run recorded")
    else:
        reasons = static_changes(previous, static_fingerprint(config)) + reasons
        if shown != success.get("run_id"):
            reasons.append(f"{layout.latest} does not show run {success.get('run_id')}")
    if reasons:
        lines.append(f"A refresh would recompute: yes ({'; '.join(reasons)})")
    else:
        lines.append(
            "A refresh would recompute: no (inputs, config and package unchanged "
            f"since run {success and success['run_id']}; refresh also asks the "
            "servers whether a catalogue source changed)"
        )
    failed = bool(attempt) and _effective_outcome(attempt, layout) in (
        "failed",
        "interrupted",
    )
    return "\n".join(lines), EXIT_ERROR if failed else EXIT_OK


__all__ = [
    "EXIT_ERROR",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Layout",
    "Lock",
    "Locked",
    "Outcome",
    "RunFailed",
    "Terminated",
    "changes",
    "execute",
    "fingerprint",
    "install_signal_handlers",
    "prune_runs",
    "read_state",
    "remove_leftovers",
    "status",
    "switch_latest",
]
