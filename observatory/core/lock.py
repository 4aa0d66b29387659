"""One writer at a time: the lock file of a folder (outputs, download cache) and who holds it.

:class:`Lock` creates the file with ``O_CREAT | O_EXCL`` and writes its holder
(:class:`LockInfo`: command, pid, host, start time) into it; a lock whose process
is gone (or, from another host, older than :data:`STALE_LOCK_AFTER_S`) is moved
aside and replaced. A refused command is told what it wanted (``what``: "the
output folder ...", "the download cache ...") and who holds it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from observatory.core.errors import ObservatoryError, OutputError
from observatory.core.fserrors import describe_os_error
from observatory.core.timing import human_duration

logger = logging.getLogger(__name__)


#: A lock from another host (whose process cannot be checked) older than this
#: is stale, as is a lock whose pid cannot be matched to its process.
STALE_LOCK_AFTER_S = 6 * 3600


#: An unreadable lock file younger than this may be one being written.
LOCK_GRACE_S = 60


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: the JSON object of the lock file.

    Every field may be missing from a file written by hand or by an older
    version: it is then None.
    """

    pid: int | None = None
    host: str | None = None
    process: str | None = None  # see process_identity()
    run_id: str | None = None
    command: str | None = None
    started: str | None = None
    started_epoch: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the lock file's JSON object."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockInfo:
        """Read a lock file's JSON object, dropping values of the wrong type."""

        def typed(key: str, kind: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            return value if isinstance(value, kind) else None

        epoch = typed("started_epoch", (int, float))
        return cls(
            pid=typed("pid", int),
            host=typed("host", str),
            process=typed("process", str),
            run_id=typed("run_id", str),
            command=typed("command", str),
            started=typed("started", str),
            started_epoch=float(epoch) if epoch is not None else None,
        )


class Locked(ObservatoryError):
    """Another live process holds the lock; ``holder`` says who, when known."""

    def __init__(self, message: str, holder: LockInfo | None = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockState:
    """What a lock file says, for ``observatory status``."""

    present: bool
    holder: LockInfo | None  # None: absent, or unreadable (being written?)
    stale: str | None  # why it is stale; None when absent or possibly alive


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if (
        sys.platform == "win32"
    ):  # pragma: no cover - os.kill(pid, 0) would kill it there
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


def process_identity(pid: int) -> str | None:
    """Return the boot id and start time of a process (Linux), None elsewhere.

    Recorded in the lock next to the pid, it tells a reused pid from the
    process that took the lock.
    """
    stat = _proc_stat(pid)
    if not stat or len(stat) < 20:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{boot}:{stat[19]}"


def read_lock(path: Path) -> tuple[LockInfo | None, float | None]:
    """Return (the lock's holder or None if unreadable, its mtime or None if absent)."""
    try:
        mtime = path.stat().st_mtime
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        try:
            return None, path.stat().st_mtime
        except OSError:
            return None, None
    return (LockInfo.from_dict(data) if isinstance(data, dict) else None), mtime


def lock_staleness(info: LockInfo | None, mtime: float) -> str | None:
    """Return why a lock is stale, or None when its holder may still be running."""
    now = time.time()
    if info is None:
        age = now - mtime
        return f"unreadable lock file, {age:.0f} s old" if age > LOCK_GRACE_S else None
    age = now - (info.started_epoch or mtime)
    pid = info.pid
    if info.host == socket.gethostname() and pid is not None:
        if not _pid_alive(pid):
            return f"process {pid} is not running"
        recorded, current = info.process, process_identity(pid)
        if recorded and current:
            if recorded != current:
                return f"pid {pid} now belongs to another process"
            return None  # the very process that took the lock: never steal it
        if age > STALE_LOCK_AFTER_S:
            return f"{age / 3600:.1f} h old and pid {pid} cannot be verified"
        return None
    if age > STALE_LOCK_AFTER_S:
        return (
            f"taken {age / 3600:.1f} h ago on host {info.host} "
            f"(more than {STALE_LOCK_AFTER_S / 3600:g} h)"
        )
    return None


def describe_holder(info: LockInfo | None) -> str:
    """Return who holds a lock, for messages."""
    if info is None or info == LockInfo():
        return "a process whose lock file is being written"
    ago = (
        f", {human_duration(time.time() - info.started_epoch)} ago"
        if info.started_epoch is not None
        else ""
    )
    if info.command is None:
        who = "a process" if info.run_id is None else f"a process (run {info.run_id})"
    else:
        who = info.command if info.run_id is None else f"{info.command} {info.run_id}"
    return (
        f"{who}: pid {_or(info.pid, '?')} on host {_or(info.host, '?')}, "
        f"started {_or(info.started, '?')}{ago}"
    )


def _or(value: object, default: str) -> object:
    return default if value is None else value


def lock_state(path: Path) -> LockState:
    """Return whether the lock at ``path`` is absent, held, or stale and why."""
    info, mtime = read_lock(path)
    if mtime is None:
        return LockState(present=False, holder=None, stale=None)
    return LockState(present=True, holder=info, stale=lock_staleness(info, mtime))


class Lock:
    """Exclusive lock of a folder: a file created with ``O_CREAT | O_EXCL``.

    Parameters
    ----------
    path
        The lock file.
    run_id
        This holder's id (a run id): a lock holding another one was taken over.
    command
        What holds it (``run``, ``refresh``, ``fetch``), written for the others.
    what
        What the lock protects, for the message a refused command gets
        ("the output folder /srv/outputs"); by default the lock's folder.
    """

    def __init__(
        self, path: Path, run_id: str, command: str, *, what: str | None = None
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.what = what or f"the folder {path.parent}"
        now = time.time()
        self.info = LockInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            process=process_identity(os.getpid()),
            run_id=run_id,
            command=command,
            started=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            started_epoch=now,
        )
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
                info, mtime = read_lock(self.path)
                if mtime is None:
                    continue  # released meanwhile: try again
                why = lock_staleness(info, mtime)
                if why is None:
                    msg = (
                        f"{self.what} is in use by {describe_holder(info)}; "
                        f"lock {self.path}"
                    )
                    raise Locked(msg, info) from None
                self._recover(info, why)
                continue
            except OSError as exc:
                msg = f"cannot create the lock {self.path}: {describe_os_error(exc)}"
                raise OutputError(msg, path=self.path) from exc
            self._write(fd)
            self.held = True
            return
        msg = f"the lock {self.path} keeps changing hands; giving up"
        raise Locked(msg)

    def _write(self, fd: int) -> None:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.info.to_dict(), out)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            msg = f"cannot write the lock {self.path}: {describe_os_error(exc)}"
            raise OutputError(msg, path=self.path) from exc

    def _recover(self, info: LockInfo | None, why: str) -> None:
        """Move a stale lock aside in one rename, checking it is the one judged stale."""
        aside = self.path.with_name(f"{self.path.name}.stale-{secrets.token_hex(4)}")
        try:
            self.path.rename(aside)
        except FileNotFoundError:
            return  # another process recovered it first
        moved, _ = read_lock(aside)
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
        info, _ = read_lock(self.path)
        if info is not None and info.run_id != self.run_id:
            logger.warning(
                "the lock %s was taken over by %s", self.path, describe_holder(info)
            )
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
