"""Command-line interface: ``observatory run | refresh | status | fetch | sources``.

Parses the command line, sets up logging on stderr, calls the package and turns
what it returns into text and an exit code: 0 success (or "up to date"), 1 a
failure (one line on stderr says what failed, where, and names the log), 2 wrong
command-line usage, 75 another run or refresh of the same output folder (or
fetch into the same download cache) is running.
"""

from observatory.cli.main import main
from observatory.cli.parser import EXIT_ERROR, EXIT_LOCKED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_ERROR", "EXIT_LOCKED", "EXIT_OK", "EXIT_USAGE", "main"]
