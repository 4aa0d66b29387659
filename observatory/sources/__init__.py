"""EDGE: the sources catalogue, downloads, archives and the cache, down to verified local paths."""
