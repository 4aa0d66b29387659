"""Stages of a run: its id, the time each stage takes, the stage a failure crossed.

Light on purpose (no pandas, no pyarrow): ``observatory refresh`` imports it
when it only has to say "up to date". :func:`stage` times a block and names the
stage of a failure inside it: the ``stage`` field of an
:class:`~observatory.core.errors.ObservatoryError`, else a :class:`StageTimings` record.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from observatory.core.errors import ObservatoryError

logger = logging.getLogger(__name__)


#: A run is written to ``<output>/.staging-<run id>/`` before it is published.
STAGING_PREFIX = ".staging-"


def new_run_id(started: datetime) -> str:
    """Return a run id: UTC start time to the millisecond, then a random suffix.

    For example ``20251124T020000.123Z-4d5e6f``; ids sort chronologically.
    """
    millis = started.microsecond // 1000
    return f"{started:%Y%m%dT%H%M%S}.{millis:03d}Z-{secrets.token_hex(3)}"


class StageTimings(dict[str, float]):
    """Seconds spent in each stage that ended, and the stage a failure crossed.

    To the manifest and the state file it is a plain ``{stage: seconds}``. An
    exception that is not an :class:`ObservatoryError` (a bug, a signal, a full
    disk) has no ``stage`` field: :func:`stage` records the innermost stage it
    crossed here instead, and :meth:`failed_stage` answers for both kinds.
    """

    def __init__(self) -> None:
        super().__init__()
        self._failure: tuple[str, BaseException] | None = None

    def record_failure(self, name: str, exc: BaseException) -> None:
        """Record that ``exc`` left stage ``name``, unless an inner stage did first."""
        if self._failure is None or self._failure[1] is not exc:
            self._failure = (name, exc)

    def failed_stage(self, exc: BaseException) -> str | None:
        """Return the stage ``exc`` was raised in, None when it crossed no stage."""
        if isinstance(exc, ObservatoryError) and exc.stage is not None:
            return exc.stage
        if self._failure is not None and self._failure[1] is exc:
            return self._failure[0]
        return None


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time the block as stage ``name`` into ``timings``; name the stage of its failures.

    An :class:`ObservatoryError` raised inside gets ``stage = name`` unless an
    inner stage set it; any other exception is recorded in ``timings`` when it is
    a :class:`StageTimings`.
    """
    logger.info("%s: started", name)
    start = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, ObservatoryError):
            if exc.stage is None:
                exc.stage = name
        elif isinstance(timings, StageTimings):
            timings.record_failure(name, exc)
        raise
    timings[name] = round(time.perf_counter() - start, 3)
    logger.info("%s: done in %.2f s", name, timings[name])


def human_duration(seconds: float) -> str:
    """Return a duration as people say it: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
