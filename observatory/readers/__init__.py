"""EDGE: one module per official file format, read into the project's canonical tables."""
