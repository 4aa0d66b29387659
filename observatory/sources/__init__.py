"""EDGE: the sources catalogue, downloads, archives and the cache, down to verified local paths.

``catalogue`` reads the catalogue's entries, ``limits`` holds the bounds of a
download (``[sources]``), ``download`` fetches one file over HTTP, ``archives``
(with ``sevenzip``) extracts and verifies members, ``provenance`` is the record
kept beside each cached file, ``verify`` checks a cached file against the
catalogue, ``staging`` builds a source's new cache folder aside, swaps it in
whole and locks the cache, ``cache`` ties them into
:func:`~observatory.sources.cache.fetch_source`, and ``inputs`` resolves a
config's inputs to local files through them.
"""
