"""One run or refresh at a time per output folder: its lock, from :mod:`observatory.core.lock`.

The lock file is ``<output>/.observatory/lock``; a command it refuses is told
"the output folder <output> is in use by <command> <run id>: pid ..., started
...". The generic lock (holder, staleness, recovery) lives in ``core`` so that
the download cache (``sources``) is locked the same way.
"""

from __future__ import annotations

from pathlib import Path

from observatory.core import lock as _core
from observatory.core.lock import (
    LOCK_GRACE_S,
    STALE_LOCK_AFTER_S,
    Locked,
    LockInfo,
    LockState,
    describe_holder,
    lock_staleness,
    lock_state,
    process_identity,
    read_lock,
)

__all__ = [
    "LOCK_GRACE_S",
    "STALE_LOCK_AFTER_S",
    "Lock",
    "LockInfo",
    "LockState",
    "Locked",
    "describe_holder",
    "lock_staleness",
    "lock_state",
    "process_identity",
    "read_lock",
]


class Lock(_core.Lock):
    """The lock of an output folder, at ``<output>/.observatory/lock``."""

    def __init__(self, path: Path, run_id: str, command: str) -> None:
        super().__init__(
            path, run_id, command, what=f"the output folder {path.parent.parent}"
        )
