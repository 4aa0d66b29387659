"""The log of each attempt: ``.observatory/logs/<run id>.log``, DEBUG level, pruned after a while.

:data:`LOG_FORMAT` is the format of log lines in these files, and on stderr
(the command line uses it too).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from observatory.runs.layout import Layout
from observatory.runs.state import RunState

logger = logging.getLogger(__name__)


#: Format of log lines, on stderr and in the attempt logs.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: Attempt logs older than this are deleted (those the state names are kept).
LOG_RETENTION_DAYS = 30


class AttemptLog(logging.FileHandler):
    """The attempt's log file; a full disk must not spam stderr with logging errors."""

    #: Marks the handlers observatory adds to its logger (the tests remove them).
    _observatory = True

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record silently."""


@contextlib.contextmanager
def attempt_log(path: Path) -> Iterator[None]:
    """Copy every record of the package, DEBUG level up, to ``path`` during the block.

    A log file that cannot be opened is a warning, not a failure.
    """
    package = logging.getLogger("observatory")
    try:
        handler: logging.Handler | None = AttemptLog(
            path, encoding="utf-8", delay=False
        )
    except OSError as exc:
        logger.warning("cannot open the log file %s: %s", path, exc)
        handler = None
    level = package.level
    if handler is not None:
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        package.addHandler(handler)
        package.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        if handler is not None:
            package.removeHandler(handler)
            package.setLevel(level)
            handler.close()


def prune_logs(layout: Layout, state: RunState) -> None:
    """Delete attempt logs older than :data:`LOG_RETENTION_DAYS` the state does not name."""
    named = state.logs()
    limit = time.time() - LOG_RETENTION_DAYS * 86400
    for path in layout.logs.glob("*.log"):
        try:
            if path.name not in named and path.stat().st_mtime < limit:
                path.unlink()
        except OSError as exc:
            logger.warning("cannot prune log %s: %s", path, exc)
