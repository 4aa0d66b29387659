"""observatory: commuting flows between French métropoles and the EPCI around them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("observatory")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
