"""Errors raised by observatory, and the shared form of their messages.

Every error a user can fix (a bad config, a malformed input file, a refused
download) is an :class:`ObservatoryError`; its message says where (file, line or
feature), what was expected and what was found. Its fields (``path``, ``line``,
``source``, ``stage``) are set where it is raised (``stage`` by
:func:`observatory.core.timing.stage` when it crosses a stage's boundary), and
the command line formats them. Anything else is a bug.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: How many examples an error message lists before "and N more".
MAX_LISTED = 5


def examples_at(values: Any, positions: Any, what: str) -> str:
    """Return up to five ``<what> <position>: <value>`` examples, and how many more.

    The shared form of every "which lines are wrong" message: ``values`` and
    ``positions`` (file lines, features, rows) are aligned sequences.
    """
    head = values[:MAX_LISTED]
    head = head.tolist() if hasattr(head, "tolist") else list(head)
    shown = [
        f"{what} {position}: {value!r}"
        for position, value in zip(positions[:MAX_LISTED], head, strict=False)
    ]
    more = len(values) - MAX_LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


class ObservatoryError(Exception):
    """Base class of the errors a user can act on.

    Parameters
    ----------
    message
        One sentence a user can act on: where, what was expected, what was found.
    path
        The file concerned, when there is one.
    line
        The line (or feature) of ``path`` concerned, 1-based.
    source
        The catalogue source or input role concerned (``flows``, ``communes``...).
    stage
        The stage of a run the error crossed (``read``, ``flows``...).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        source: str | None = None,
        stage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line
        self.source = source
        self.stage = stage

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled across dask workers: keep the fields whatever __init__ a subclass has.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[ObservatoryError], args: tuple[Any, ...], state: dict[str, Any]
) -> ObservatoryError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(ObservatoryError, ValueError):
    """A configuration file is missing, malformed or inconsistent."""


class DataError(ObservatoryError, ValueError):
    """An input file does not have the expected structure or content."""


class SourceError(ObservatoryError, OSError):
    """An input file cannot be found or read."""


class OutputError(ObservatoryError, OSError):
    """An output could not be written or failed validation before publication."""
