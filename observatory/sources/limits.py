"""The bounds of a download and of an extraction, from ``[sources]`` or the command line.

Sized on the real files (README, "Real sources"): the largest member extracted
from a catalogue archive is the FD_MOBPRO csv, about 0.8 GB (787,990,758 bytes
for RP 2019, measured by a third party; the RP 2020 zip is 92,560,753 bytes),
so 4 GiB leaves five times that; real CSVs and GeoPackages deflate 1 to 10 times
(9.2 for that FD_MOBPRO csv), a zip of zeros about 1,030 times, so a ratio of
100 stops a bomb after 100 times its compressed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from observatory.config import SourcesSection

#: The defaults of :class:`FetchLimits` (and of ``[sources]``).
TIMEOUT_S, RETRIES, BACKOFF_S = 60.0, 4, 1.0
MAX_EXTRACTED_BYTES, MAX_COMPRESSION_RATIO = 4 * 1024**3, 100.0


#: Members smaller than this are not held to the compression ratio: a small
#: file of repeated text may legitimately deflate far beyond it.
RATIO_FLOOR = 1 << 20


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long to wait, how often to retry, and how much an archive may inflate."""

    #: seconds allowed to connect and between two reads
    timeout: float = TIMEOUT_S
    #: retries after the first attempt (5xx, timeouts, a body cut short)
    retries: int = RETRIES
    #: backoff factor in seconds between retries (0: at once)
    backoff: float = BACKOFF_S
    #: the members of one archive together, and one downloaded file, in bytes
    max_extracted_bytes: int = MAX_EXTRACTED_BYTES
    #: uncompressed / compressed bytes of a member, counted while inflating
    max_compression_ratio: float = MAX_COMPRESSION_RATIO

    @classmethod
    def of(cls, section: SourcesSection) -> FetchLimits:
        """Return the limits a config's ``[sources]`` sets (the CLI's options replace them)."""
        return cls(
            timeout=section.timeout_s,
            retries=section.retries,
            max_extracted_bytes=section.max_extracted_bytes,
            max_compression_ratio=section.max_compression_ratio,
        )


def human_bytes(count: float) -> str:
    """Return a size for people: ``4 GiB``, ``1.5 MiB``, ``100 bytes``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    if count >= 1024:
        return f"{count / 1024:.3g} KiB"
    return f"{int(count)} bytes"
