"""How the scripts talk: progress through ``logging``, results on stdout.

Progress, notes and warnings go to stderr through each script's logger, a child
of ``scripts`` (:func:`script_logger`); the libraries' loggers, the
``observatory`` package's included, speak from WARNING up. The figures a script
exists to produce are written to stdout with :func:`show`, so that they can be
piped or redirected apart from the progress.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable


def script_logger(name: str) -> logging.Logger:
    """Return the logger of script ``name`` (``scripts.<name>``)."""
    return logging.getLogger(f"scripts.{name}")


def start_logging() -> None:
    """Send the scripts' INFO and up, the rest's WARNING and up, to stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("scripts").setLevel(logging.INFO)


def show(lines: str | Iterable[str]) -> None:
    """Write a result (one line or several) to stdout and flush it."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
