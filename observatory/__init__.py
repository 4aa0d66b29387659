"""observatory: commuting flows between French métropoles and the EPCI around them."""

# The one place the version is written (pyproject.toml reads it from here):
# importlib.metadata would cost every command some 80 ms to find it.
__version__ = "0.1.0"

__all__ = ["__version__"]
