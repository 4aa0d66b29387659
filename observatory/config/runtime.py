"""The ``[run]``, ``[sources]``, ``[compute]`` and ``[output]`` tables: where a run reads, works and writes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from observatory.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RunSection:
    """What the run is about; free text copied into the outputs' metadata."""

    name: str = "observatory"
    description: str = ""
    synthetic_flows: bool = False


def default_cache_dir() -> Path:
    """Return the download cache: ``$OBSERVATORY_CACHE``, else the XDG cache folder."""
    if env := os.environ.get("OBSERVATORY_CACHE"):
        return Path(env).expanduser()
    return (
        Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "observatory"
    )


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {f"{p}IB": 1024 ** (i + 1) for i, p in enumerate("KMGT")}


def parse_size(text: str) -> int | None:
    """Return the bytes of a size such as ``"4 GiB"``, ``"500MB"`` or ``"1024"``; None if malformed."""
    match = _SIZE.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


@dataclass(frozen=True, slots=True)
class SourcesSection:
    """Where the catalogue of public sources is, where downloads are cached, and their bounds.

    The bounds apply to every download and extraction: ``timeout_s`` to connect
    and between two reads, ``retries`` after a failed attempt (5xx, timeout, a
    body cut short), ``max_extracted_size`` for the members extracted from one
    archive together (and for one downloaded file), ``max_compression_ratio``
    for each member (uncompressed / compressed, counted while inflating). The
    defaults are sized on the real files (README, "Real sources").
    """

    catalogue: Path | None = None
    cache_dir: Path | None = None
    timeout_s: float = 60.0
    retries: int = 4
    max_extracted_size: str = "4 GiB"
    max_compression_ratio: float = 100.0

    @property
    def max_extracted_bytes(self) -> int:
        """``max_extracted_size`` in bytes."""
        size = parse_size(self.max_extracted_size)
        assert size is not None  # checked when the config loads
        return size

    def check(self, where: str) -> None:
        """Refuse a bound that is not positive, and a malformed size."""
        if not self.timeout_s > 0:
            msg = f"{where} timeout_s must be > 0 seconds, got {self.timeout_s}"
            raise ConfigError(msg)
        if not 0 <= self.retries <= 20:
            msg = f"{where} retries must be between 0 and 20, got {self.retries}"
            raise ConfigError(msg)
        size = parse_size(self.max_extracted_size)
        if not size:
            msg = (
                f"{where} max_extracted_size must be a size above 0 such as "
                f'"4 GiB" or "500 MB", got {self.max_extracted_size!r}'
            )
            raise ConfigError(msg)
        if not self.max_compression_ratio >= 1:
            msg = (
                f"{where} max_compression_ratio must be >= 1, "
                f"got {self.max_compression_ratio}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class ComputeSection:
    """Where parallel work runs (see :mod:`observatory.core.compute`), FD partition size.

    ``scheduler`` is ``"threads"`` (default), ``"processes"``, ``"synchronous"``
    or the address of a dask.distributed scheduler, ``"tcp://host:8786"``.
    """

    scheduler: str | None = None
    blocksize: str = "64MiB"

    def check(self, where: str) -> None:
        """Refuse a scheduler that is neither local nor an address."""
        check_scheduler(self.scheduler, f"{where} scheduler")


def check_scheduler(scheduler: str | None, where: str) -> None:
    """Refuse a dask scheduler that is neither local nor an address, naming ``where``."""
    from observatory.core.compute import scheduler_kind

    try:
        scheduler_kind(scheduler)
    except ConfigError as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc


#: How ``outputs/latest`` is switched: a symlink, a copied folder, or the first
#: that works (symlinks are refused by some Windows shares).
LATEST_MODES = ("auto", "symlink", "copy")


#: What a run writes: GeoParquet files (one per layer, QGIS styles beside them);
#: one GeoPackage (every layer, styles inside) that GDAL 3.6 / QGIS 3.22 open, with
#: its QGIS project (a group and an atlas page per métropole); the report (PNG maps,
#: charts, a PDF atlas and report.html, for readers without QGIS).
OUTPUT_FORMATS = ("geoparquet", "geopackage", "report")


@dataclass(frozen=True, slots=True)
class OutputSection:
    """Where runs are published unless ``--output`` says otherwise, and how many are kept."""

    dir: Path | None = None
    keep_runs: int = 5
    latest: str = "auto"
    formats: tuple[str, ...] = OUTPUT_FORMATS
    #: Processes drawing the report's maps and charts: this one and helpers
    #: (each helper about 0.45 GB more for the national report, a quarter less time).
    report_processes: int = 1

    def check(self, where: str) -> None:
        """Refuse a retention below one run and an unknown ``latest`` mode."""
        if self.keep_runs < 1:
            msg = f"{where} keep_runs must be >= 1, got {self.keep_runs}"
            raise ConfigError(msg)
        if self.report_processes < 1:
            msg = f"{where} report_processes must be >= 1, got {self.report_processes}"
            raise ConfigError(msg)
        if not self.formats or set(self.formats) - set(OUTPUT_FORMATS):
            msg = (
                f"{where} formats must be a non-empty list of {list(OUTPUT_FORMATS)}, "
                f"got {list(self.formats)}"
            )
            raise ConfigError(msg)
        if self.latest not in LATEST_MODES:
            msg = f"{where} latest must be one of {list(LATEST_MODES)}, got {self.latest!r}"
            raise ConfigError(msg)
