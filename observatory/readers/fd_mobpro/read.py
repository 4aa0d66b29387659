"""Read a whole FD_MOBPRO file out of core: :func:`read_fd` and its report.

Prepares the file (:mod:`~observatory.readers.fd_mobpro.source`), splits it
(:mod:`~observatory.readers.fd_mobpro.partitions`), sums it on dask
(:mod:`~observatory.readers.fd_mobpro.partials`), and on a bad value reads the
faulty partition again to name its file lines.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from observatory.core.archives import mebibytes
from observatory.core.compute import computer, scheduler_kind
from observatory.core.errors import DataError, ObservatoryError, SourceError
from observatory.readers.delimited import first_long_line
from observatory.readers.fd_mobpro.coding import (
    coding_label,
    row_problems,
    trans_coding,
)
from observatory.readers.fd_mobpro.keys import MODE_RANK
from observatory.readers.fd_mobpro.partials import (
    PartitionError,
    RangeCounts,
    sum_tree,
)
from observatory.readers.fd_mobpro.partitions import LongLine, read_partitions
from observatory.readers.fd_mobpro.source import FdSource, prepare_source
from observatory.readers.text import one_line

logger = logging.getLogger(__name__)


class FdReadReport(TypedDict):
    """What :func:`read_fd` read, as recorded in a run's manifest."""

    path: str
    member: str | None
    format: str
    vintage: int
    trans_coding: str
    rows_read: int
    workers_total: float
    workers_by_mode: dict[str, float]  # modes found, in the order of MODES
    triples: int
    pairs: int
    partitions: int
    scheduler: str
    seconds: float


def read_fd(
    path: Path,
    vintage: int | None = None,
    *,
    blocksize: str | int = "64MiB",
    scheduler: str | None = None,
    progress: bool = True,
    temp_dir: Path | None = None,
) -> tuple[pd.DataFrame, FdReadReport]:
    """Read an FD_MOBPRO file out of core into flows by mode.

    Parameters
    ----------
    path
        INSEE's file: ``;``-separated CSV, plain, zipped (RP 2020 and earlier:
        ``RP2019_mobpro_csv.zip``) or gzipped, or Parquet (RP 2021 and later).
        Only ``COMMUNE``, ``ARM``, ``DCLT``, ``TRANS`` and ``IPONDI`` are read.
    vintage
        Census year; read from the file name (``RP2019...``, ``FD_MOBPRO_2016...``)
        when not given.
    blocksize
        Bytes per partition (``"64MiB"``): CSV text (blocks of whole lines,
        parsed by Arrow), or the estimated size in memory of the Parquet
        columns read (whole row groups; ~100 bytes a row, so a national file's
        row groups of 1 million rows are one partition each). Memory grows
        with ``blocksize`` times the number of threads and with the number of
        distinct triples (1.7 million for France), not with the file's size.
    scheduler
        ``None`` or ``"threads"`` (default), ``"processes"``, ``"synchronous"``;
        or a dask.distributed scheduler address (``"tcp://host:8786"``), whose
        workers must be able to import ``observatory`` and read ``path`` (and
        ``temp_dir`` for a zip) at the same location. Checked by
        :func:`observatory.core.compute.computer`.
    progress
        Show a progress bar: dask's on stderr for a local scheduler, distributed's
        on stdout; only when that stream is a terminal.
    temp_dir
        Where a zipped or gzipped CSV is extracted (the system's temporary folder
        by default); removed afterwards.

    Returns
    -------
    tuple
        The long table of :func:`~observatory.readers.fd_mobpro.frame.aggregate_fd`
        for the whole file (arrondissements kept), and a report: path, member,
        format, vintage, TRANS coding, rows read, workers total and by mode,
        triples, pairs, partitions, scheduler, seconds.

    Raises
    ------
    SourceError
        The file does not exist, or the scheduler cannot be reached.
    ConfigError
        ``scheduler`` is neither a local scheduler nor an address.
    DataError
        Unknown vintage, missing columns, no row, an unparsable file, a line
        longer than 16 MiB, or bad values: listed with their file line (CSV,
        header = line 1) or row (Parquet, from 1).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: FD_MOBPRO file not found"
        raise SourceError(msg, path=path)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        source = prepare_source(path, vintage, stack, temp_dir)
        ranges, partitions = _sum_file(source, blocksize, scheduler, progress, stack)
    table = pd.concat([piece for piece, _ in ranges], ignore_index=True)
    counts = [count for _, count in ranges]
    seconds = time.perf_counter() - start
    report = _report(source, table, counts, partitions, _label(scheduler), seconds)
    _check_rows(source, report["rows_read"])
    logger.info(
        "%s: %d rows -> %d (origin, destination, mode) triples, %.1f workers in %.1f s",
        *(source.where, report["rows_read"], report["triples"]),
        *(report["workers_total"], seconds),
    )
    return table, report


def _check_rows(source: FdSource, rows: int) -> None:
    """Refuse a file of no worker: its modal shares would all be empty."""
    if rows == 0:
        word = source.word
        msg = f"{source.where}: no data {word}s: expected one {word} per sampled worker"
        raise DataError(msg, path=source.path, line=source.first)


def _sum_file(
    source: FdSource,
    blocksize: str | int,
    scheduler: str | None,
    progress: bool,
    stack: contextlib.ExitStack,
) -> tuple[list[tuple[pd.DataFrame, RangeCounts]], int]:
    """Sum the file's partitions on ``scheduler``: the key ranges' tables and counts.

    Also returns the number of partitions. A bad value is reported with its
    line, a file that does not parse as such.
    """
    import pyarrow as pa

    ddf = read_partitions(source, blocksize)
    tasks = sum_tree(ddf.to_delayed(), source.vintage)
    compute = computer(scheduler, progress, stack)
    logger.info(
        "%s: RP%d, %s, %d partition(s), scheduler %s",
        source.where,
        source.vintage,
        source.format,
        ddf.npartitions,
        _label(scheduler),
    )
    try:
        (ranges,) = compute(tasks)
    except PartitionError as exc:
        detail, line = _locate(ddf, exc.partition, compute, source)
        msg = f"{source.where}: {detail or exc}"
        raise DataError(msg, path=source.path, line=line) from exc
    except LongLine as exc:
        raise _long_line(source, exc.args[0]) from exc
    except ObservatoryError:
        raise
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pa.ArrowException,
        OSError,
    ) as exc:
        msg = (
            f"{source.where}: cannot parse as a ';'-separated FD_MOBPRO "
            f"{source.format}: {one_line(exc)}"
        )
        raise DataError(msg, path=source.path) from exc
    return list(ranges), int(ddf.npartitions)


def _long_line(source: FdSource, limit: int) -> DataError:
    """Name the first line longer than ``limit`` (a bounded pass over the file)."""
    with source.file.open("rb") as handle:
        line = first_long_line(handle, limit)
    at = f"line {line}" if line is not None else "a line"
    msg = (
        f"{source.where}: {at} is longer than {mebibytes(limit)}: not an "
        "FD_MOBPRO file (its lines hold about 100 bytes)"
    )
    return DataError(msg, path=source.path, line=line)


def _label(scheduler: str | None) -> str:
    """Name the scheduler in the report: None is dask's default local one."""
    return scheduler or scheduler_kind(None)


def _row_count(frame: pd.DataFrame) -> pd.Series:
    return pd.Series([len(frame)], name="rows", dtype="int64")


def _locate(
    ddf: Any, number: int, compute: Callable[..., tuple], source: FdSource
) -> tuple[str | None, int | None]:
    """Describe the bad values of partition ``number`` with their file lines.

    Error path only: reads again the partitions before the bad one (their
    lengths give the offset) and the bad one. Returns the description and the
    first bad line (or row), or None for both if nothing is found.
    """
    if not 0 <= number < ddf.npartitions:
        return None, None
    before = 0
    if number > 0:
        (lengths,) = compute(
            ddf.partitions[:number].map_partitions(_row_count, meta=("rows", "int64"))
        )
        before = int(np.sum(lengths))
    (part,) = compute(ddf.partitions[number])
    problems, line = row_problems(
        part, source.vintage, first=source.first + before, word=source.word
    )
    return ("; ".join(problems) if problems else None), line


def _report(
    source: FdSource,
    table: pd.DataFrame,
    counts: list[RangeCounts],
    partitions: int,
    scheduler: str,
    seconds: float,
) -> FdReadReport:
    by_mode = np.sum([count["workers"] for count in counts], axis=0)
    found = np.any([count["found"] for count in counts], axis=0)
    # Only the modes of the vintage's coding can be found; it lists them in
    # display order (that of observatory.systems.modes.MODES).
    modes = trans_coding(source.vintage).values()
    return {
        "path": str(source.path),
        "member": source.member,
        "format": source.format,
        "vintage": source.vintage,
        "trans_coding": coding_label(source.vintage),
        "rows_read": int(counts[0]["rows"]),
        "workers_total": round(float(table["workers"].sum()), 3),
        "workers_by_mode": {
            mode: round(float(by_mode[MODE_RANK[mode]]), 3)
            for mode in modes
            if found[MODE_RANK[mode]]
        },
        "triples": len(table),
        "pairs": sum(count["pairs"] for count in counts),
        "partitions": partitions,
        "scheduler": scheduler,
        "seconds": round(seconds, 3),
    }
