"""Stages of a run: timing, naming the stage a failure happened in, a test hook.

Light on purpose (no pandas, no pyarrow): ``observatory refresh`` imports it
when it only has to say "up to date".

:func:`stage` times a block, logs its start and end, and tags an exception
raised inside it with the stage's name (attribute ``observatory_stage``) so that
``observatory refresh`` can say *where* a run failed.

:func:`pause_point` is a **test hook** and nothing else: when the environment
variable ``OBSERVATORY_TEST_PAUSE_AT`` names the point reached, the process
writes its pid to the file named by ``OBSERVATORY_TEST_PAUSE_FILE`` (if set) and
sleeps until it is killed. The tests use it to SIGKILL a run at a chosen stage,
deterministically. Unset (always, outside the tests), it does nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)


#: A run is written to ``<output>/.staging-<run id>/`` before it is published.
STAGING_PREFIX = ".staging-"


PAUSE_AT_ENV = "OBSERVATORY_TEST_PAUSE_AT"


PAUSE_FILE_ENV = "OBSERVATORY_TEST_PAUSE_FILE"


_PAUSE_LIMIT_S = 120.0  # a forgotten hook must not hang a process forever


def new_run_id(started: datetime) -> str:
    """Return a run id: UTC start time to the millisecond, then a random suffix.

    For example ``20251124T020000.123Z-4d5e6f``; ids sort chronologically.
    """
    millis = started.microsecond // 1000
    return f"{started:%Y%m%dT%H%M%S}.{millis:03d}Z-{secrets.token_hex(3)}"


def failed_stage(exc: BaseException) -> str | None:
    """Return the stage an exception was raised in, if :func:`stage` tagged it."""
    return getattr(exc, "observatory_stage", None)


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time the block as stage ``name`` into ``timings`` and tag its failures."""
    logger.info("%s: started", name)
    pause_point(name)
    start = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        if failed_stage(exc) is None:
            exc.observatory_stage = name  # type: ignore[attr-defined]
        raise
    timings[name] = round(time.perf_counter() - start, 3)
    logger.info("%s: done in %.2f s", name, timings[name])


def pause_point(name: str) -> None:
    """Test hook: sleep here, to be killed, when ``$OBSERVATORY_TEST_PAUSE_AT == name``."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    logger.warning("test hook %s=%s: pausing until killed", PAUSE_AT_ENV, name)
    if flag := os.environ.get(PAUSE_FILE_ENV):
        Path(flag).write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + _PAUSE_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
    msg = f"test hook {PAUSE_AT_ENV}={name}: not killed within {_PAUSE_LIMIT_S:g} s"
    raise RuntimeError(msg)
