"""SIGTERM and SIGINT during a run: unwind as :class:`Terminated`, or wait a moment.

``timeout`` (and systemd) stop a job with SIGTERM, whose default action ends
Python without any cleanup; raising instead lets the run record its failure and
release its lock. :func:`critical_section` defers the signal while two renames
must both happen.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType


class Terminated(BaseException):
    """SIGTERM (or SIGINT) arrived: unwind, record the failure, release the lock."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


_critical = 0


_pending: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _critical:
        _pending = signum  # raised when the critical section ends
        return
    raise Terminated(signum)


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """Defer SIGTERM/SIGINT until the block ends: what it does must all happen."""
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
    """Turn SIGTERM and SIGINT into :class:`Terminated`; return the undo function."""
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
