"""Errors raised by observatory.

Every error a user can fix (a bad config, a malformed input file) is an
:class:`ObservatoryError`; its message says where (file, line or feature), what
was expected and what was found. Anything else is a bug.
"""


class ObservatoryError(Exception):
    """Base class of the errors a user can act on."""


class ConfigError(ObservatoryError, ValueError):
    """A configuration file is missing, malformed or inconsistent."""


class DataError(ObservatoryError, ValueError):
    """An input file does not have the expected structure or content."""


class SourceError(ObservatoryError, OSError):
    """An input file cannot be found or read."""


class OutputError(ObservatoryError, OSError):
    """An output could not be written or failed validation before publication."""
