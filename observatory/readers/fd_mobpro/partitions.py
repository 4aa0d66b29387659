"""Split a plain FD_MOBPRO file into dask partitions: CSV blocks, Parquet row groups.

A CSV is cut in blocks of whole lines parsed by Arrow; a Parquet file in runs
of consecutive row groups. Either way the five columns read come with their
codes dictionary-encoded (Arrow dictionaries, no strings per row) and the header
is checked first, naming the file and the columns expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from observatory.core.errors import DataError
from observatory.readers.fd_mobpro.coding import FD_COLUMNS, plausible_weights
from observatory.readers.fd_mobpro.source import FdSource
from observatory.readers.text import one_line

#: Estimated bytes in memory per FD_MOBPRO row read (5 columns), for partitions.
_BYTES_PER_ROW = 100

#: Bytes of CSV text Arrow parses at a time. A line up to this long is always
#: read; one that does not fit in two such blocks, or that crosses a partition's
#: edge and is longer, is refused, naming it (an FD_MOBPRO line holds ~100 bytes).
LONGEST_LINE = 16 << 20

#: Most bytes a Parquet row group may take in memory (its five columns, as
#: estimated): INSEE's national file has row groups of a million rows, ~100 MB.
MAX_ROW_GROUP = 1 << 30


class LongLine(Exception):
    """A CSV line longer than :data:`LONGEST_LINE` (its one argument): the reader names it."""


class RowGroupTooLarge(Exception):
    """A Parquet row group larger in memory than :data:`MAX_ROW_GROUP`."""


def read_partitions(source: FdSource, blocksize: str | int) -> Any:
    """Return a dask DataFrame of the five columns, in about ``blocksize`` partitions.

    Raises
    ------
    DataError
        Missing columns (naming the file and the columns expected), a header
        too long for a CSV, or a file that is not Parquet after all.
    """
    if source.format == "parquet":
        return _read_parquet(source, blocksize)
    return _read_csv(source, blocksize)


def dictionaries_as_arrow(arrow_type: Any) -> pd.ArrowDtype | None:
    """``types_mapper`` of ``to_pandas``: dictionaries stay Arrow (no categorical).

    A pandas categorical validates its categories: ~20 ms for a million rows'
    codes; wrapping the Arrow dictionary array costs nothing, and the
    aggregation takes its integer codes as they are.
    """
    import pyarrow as pa

    return pd.ArrowDtype(arrow_type) if pa.types.is_dictionary(arrow_type) else None


# --------------------------------------------------------------------- CSV
def _csv_header(source: FdSource) -> tuple[list[str], int, bool]:
    """Columns of the header, the offset of the body, and whether it is UTF-8."""
    file, where = source.file, source.where
    with file.open("rb") as handle:
        first = handle.readline(1 << 16)
        body = handle.tell()
    if not first.endswith(b"\n") and body < file.stat().st_size:
        msg = (
            f"{where}: line 1 (the header) is longer than 64 KiB: not an FD_MOBPRO file"
        )
        raise DataError(msg, path=source.path, line=1)
    bom = first.startswith(b"\xef\xbb\xbf")
    try:
        first.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    else:
        utf8 = True
    header = first.decode("utf-8-sig" if bom else "latin-1").strip()
    columns = [c.strip().strip('"') for c in header.split(";")]
    missing = [c for c in FD_COLUMNS if c not in columns]
    if missing:
        shown = columns[:15] + (["..."] if len(columns) > 15 else [])
        msg = (
            f"{where}: line 1: missing column(s) {missing}; expected a ';'-separated "
            f"FD_MOBPRO file with columns {', '.join(FD_COLUMNS)}; found {shown}"
        )
        raise DataError(msg, path=source.path, line=1)
    return columns, body, utf8


def _read_csv(source: FdSource, blocksize: str | int) -> Any:
    import dask.dataframe as dd
    from dask.utils import parse_bytes

    file = source.file
    columns, body, utf8 = _csv_header(source)
    # Blocks of `blocksize` bytes after the header; a line belongs to the block
    # it starts in (dask's read_bytes rule), found by the reader itself.
    size = file.stat().st_size
    step = max(1, parse_bytes(blocksize))
    spans = [(s, min(s + step, size)) for s in range(body, size, step)] or [
        (body, body)
    ]
    # Codes are ASCII. Arrow checks UTF-8 and decodes it natively (latin-1 goes
    # through Python's codec, with the GIL): UTF-8 unless the header is not.
    options = {"columns": columns, "encoding": "utf8" if utf8 else "latin1"}
    return dd.from_map(
        _read_csv_block,
        spans,
        args=[str(file), options],
        meta=_csv_meta(),
        label="read-fd-csv",
        enforce_metadata=False,
    )


def _csv_meta() -> pd.DataFrame:
    import pyarrow as pa

    codes = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema(
        [(c, codes) for c in FD_COLUMNS if c != "IPONDI"] + [("IPONDI", pa.float64())]
    )
    return schema.empty_table().to_pandas(types_mapper=dictionaries_as_arrow)


def _line_end(handle: Any) -> int:
    """Read to the end of the current line (at most :data:`LONGEST_LINE` bytes)."""
    rest = handle.readline(LONGEST_LINE + 1)
    if len(rest) > LONGEST_LINE:
        raise LongLine(LONGEST_LINE)
    return int(handle.tell())


def _block_lines(file: str, span: tuple[int, int]) -> tuple[int, int]:
    """Byte range of the lines that start within ``span``."""
    start, end = span
    with Path(file).open("rb") as handle:
        if start > 0:  # skip the end of a line begun in the block before
            handle.seek(start - 1)
            start = _line_end(handle)
        if start >= end:
            return start, start
        handle.seek(end - 1)
        return start, _line_end(handle)  # the line holding the block's last byte


def _parse_lines(
    file: str, start: int, stop: int, options: dict[str, Any], weights: Any
) -> Any:
    """Parse the lines in bytes ``start:stop`` with Arrow; ``IPONDI`` as ``weights``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    codes = pa.dictionary(pa.int32(), pa.string())
    types = {c: codes for c in FD_COLUMNS if c != "IPONDI"} | {"IPONDI": weights}
    if start == stop:
        return pa.schema([(c, types[c]) for c in FD_COLUMNS]).empty_table()
    # Parsed in place from the page cache: a memory map, not a copy.
    with pa.memory_map(file) as mapped:
        mapped.seek(start)
        data = mapped.read_buffer(stop - start)
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=options["columns"],
                encoding=options["encoding"],
                use_threads=False,  # dask's threads read the blocks in parallel
                block_size=LONGEST_LINE,
            ),
            parse_options=pacsv.ParseOptions(delimiter=";"),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(FD_COLUMNS),
                column_types=types,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )


def _read_csv_block(
    span: tuple[int, int], file: str, options: dict[str, Any]
) -> pd.DataFrame:
    """Read one block of lines: codes dictionary-encoded, weights as floats.

    Arrow's CSV parser, called directly (no pandas conversion): codes come as
    Arrow dictionaries of strings, ``IPONDI`` as float64. Where a weight does not
    parse or is not a number >= 0, the block is read again with ``IPONDI`` as
    text, for the aggregation to check and quote. Nothing is a missing value:
    an empty field is an empty string, as in the file.
    """
    import pyarrow as pa

    start, stop = _block_lines(file, span)
    try:
        table = _parse_lines(file, start, stop, options, pa.float64())
        weights = table.column("IPONDI").to_numpy()
        checked = bool(plausible_weights(weights).all())
    except pa.ArrowInvalid as exc:
        if "straddl" in str(exc):  # Arrow: a line longer than a block
            raise LongLine(LONGEST_LINE) from exc
        checked = False
    if not checked:
        table = _parse_lines(file, start, stop, options, pa.string())
    return table.to_pandas(types_mapper=dictionaries_as_arrow)


# --------------------------------------------------------------------- Parquet
def _read_row_groups(
    groups: tuple[int, ...], file: str, dictionary: list[str]
) -> pd.DataFrame:
    import pyarrow.parquet as pq

    # Text codes read dictionary-encoded, as the file stores them: integer
    # codes the aggregation uses directly, no strings per row.
    parquet = pq.ParquetFile(file, read_dictionary=dictionary)
    table = parquet.read_row_groups(list(groups), columns=list(FD_COLUMNS))
    return table.to_pandas(types_mapper=dictionaries_as_arrow)


def _row_group_runs(metadata: Any, limit: int) -> list[tuple[int, ...]]:
    """Consecutive row groups holding about ``limit`` bytes of the columns read."""
    # dd.read_parquet would fuse partitions by the share of columns read (5 of
    # ~30): partitions several times larger than asked, numbered otherwise.
    # Sizes are estimated in memory, not on disk: dictionary-encoded codes are
    # a few bytes a row in the file, ~100 in pandas (the five columns and the
    # groupby's keys). On disk sizes merged a national file's 8 row groups of 1
    # million rows into one partition: no parallelism.
    runs: list[tuple[int, ...]] = []
    run: list[int] = []
    size = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        group_size = max(
            _BYTES_PER_ROW * group.num_rows,
            sum(
                group.column(j).total_uncompressed_size
                for j in range(group.num_columns)
                if group.column(j).path_in_schema in FD_COLUMNS
            ),
        )
        if group_size > MAX_ROW_GROUP:
            raise RowGroupTooLarge(i, group_size)
        if run and size + group_size > limit:
            runs.append(tuple(run))
            run, size = [], 0
        run.append(i)
        size += group_size
    if run or not runs:
        runs.append(tuple(run))
    return runs


def _read_parquet(source: FdSource, blocksize: str | int) -> Any:
    import dask.dataframe as dd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.utils import parse_bytes

    file, where = source.file, source.where
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as exc:
        msg = f"{where}: cannot read as Parquet: {one_line(exc)}"
        raise DataError(msg, path=source.path) from exc
    schema = parquet.schema_arrow
    missing = [c for c in FD_COLUMNS if c not in schema.names]
    if missing:
        msg = (
            f"{where}: missing column(s) {missing}; expected FD_MOBPRO columns "
            f"{', '.join(FD_COLUMNS)}; found {schema.names[:15]}"
        )
        raise DataError(msg, path=source.path)
    dictionary = [
        c
        for c in FD_COLUMNS
        if c != "IPONDI"
        and (
            pa.types.is_string(schema.field(c).type)
            or pa.types.is_large_string(schema.field(c).type)
        )
    ]
    try:
        runs = _row_group_runs(parquet.metadata, parse_bytes(blocksize))
    except RowGroupTooLarge as exc:
        number, size = exc.args
        msg = (
            f"{where}: row group {number} takes ~{size >> 20} MiB in memory, more "
            f"than the {MAX_ROW_GROUP >> 20} MiB a row group may (INSEE's hold a "
            "million rows, ~100 MB): refused"
        )
        raise DataError(msg, path=source.path) from exc
    return dd.from_map(
        _read_row_groups,
        runs,
        args=[str(file), dictionary],
        meta=schema.empty_table().select(list(FD_COLUMNS)).to_pandas(),
        label="read-fd-parquet",
        enforce_metadata=False,
    )
