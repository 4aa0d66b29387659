"""EDGE: the sources catalogue, downloads, archives and the cache, down to verified local paths.

``catalogue`` reads the catalogue's entries, ``download`` fetches one file over
HTTP, ``archives`` (with ``sevenzip``) extracts members safely, ``provenance`` is
the record kept beside each cached file, ``cache`` ties them into
:func:`~observatory.sources.cache.fetch_source`, and ``inputs`` resolves a
config's inputs to local files through them.
"""
