"""The ``[run]``, ``[sources]``, ``[compute]`` and ``[output]`` tables: where a run reads, works and writes."""

from __future__ import annotations

import os
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


@dataclass(frozen=True, slots=True)
class SourcesSection:
    """Where the catalogue of public sources is and where downloads are cached."""

    catalogue: Path | None = None
    cache_dir: Path | None = None


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

    def check(self, where: str) -> None:
        """Refuse a retention below one run and an unknown ``latest`` mode."""
        if self.keep_runs < 1:
            msg = f"{where} keep_runs must be >= 1, got {self.keep_runs}"
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
