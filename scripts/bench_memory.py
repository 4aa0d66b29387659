"""Record the peak memory of every reader, on adversarial files and national inputs.

What runs
---------
Each reader of ``observatory.readers`` (base flux, FD_MOBPRO, commune passage,
EPCI composition, communes) in a fresh Python process (``--worker``), on:

- adversarial files written to a temporary folder: a CSV with one 300 MB line,
  a 2 GiB file of zero bytes (sparse), the same after a valid header, a zip
  holding 1 GiB of zeros (a zip bomb of ~1 MB), each named as the reader
  expects it; and a valid base flux of 10 million distinct pairs, the most
  its reader takes (``MAX_ROWS``);
- the national inputs of ``scripts/make_national_inputs.py`` when they are in
  ``--national`` (default ``/tmp/natinputs``): both base-flux zips, the EPCI
  workbook, ``COMMUNE.shp``, the commune passage.

What is measured
----------------
Per file: the outcome (read, or the one-line error), wall seconds of the read,
and the peak RSS (the larger of the child's ``VmHWM`` and its process tree's RSS
sampled every 20 ms), with the bound each reader keeps within
(:data:`BUDGETS`: 1 GB for the base flux) as pass/fail, never asserted. The
results go to ``benchmarks/memory.json`` (key ``readers``), with the machine,
the command and the git commit. Not a timed test: a record.

Usage::

    python scripts/bench_memory.py                       # adversarial + national
    python scripts/bench_memory.py --national ''         # adversarial files only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from scriptlib.bench import (
    REPO_ROOT,
    code_identity,
    describe_run,
    merge_results,
    own_peak_rss,
    run_worker,
    source_sha256,
    versions,
)
from scriptlib.console import show, start_logging

RESULTS = REPO_ROOT / "benchmarks" / "memory.json"

MiB, GiB = 1 << 20, 1 << 30

#: The peak RSS each reader should stay under, whatever its file holds.
BUDGETS = {
    "base_flux": 1_000_000_000,
    "fd_mobpro": 1_200_000_000,
    "passage": 1_000_000_000,
    "epci": 1_000_000_000,
    "communes": 1_000_000_000,
}

FLUX_HEADER = b"CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_C21_ACTOCC15P\n"
FD_HEADER = b"COMMUNE;ARM;DCLT;TRANS;IPONDI\n"
PASSAGE_HEADER = b"code_ancien,code_actuel,nom_actuel,nom_ancien,source\n"
COMPOSITION_HEADER = b"CODGEO;LIBGEO;EPCI;LIBEPCI;NATURE_EPCI\n"


# ------------------------------------------------------------------ worker side


def _read(reader: str, path: Path) -> Any:
    """Call one reader on ``path`` (imports inside: the worker measures them)."""
    if reader == "base_flux":
        from observatory.readers.base_flux import read_base_flux

        return read_base_flux(path)
    if reader == "fd_mobpro":
        from observatory.readers.fd_mobpro import read_fd

        return read_fd(path, 2021, progress=False)
    if reader == "passage":
        from observatory.readers.passage import read_commune_passage

        return read_commune_passage(path)
    if reader == "epci":
        from observatory.readers.epci import read_epci_composition

        return read_epci_composition(path)
    from observatory.readers.communes import read_communes

    return read_communes(path, target_crs=None)


def worker(spec: dict[str, Any]) -> int:
    """Read one file with one reader in this fresh process; write its facts."""
    from observatory.core.errors import ObservatoryError

    start = time.perf_counter()
    try:
        _read(spec["reader"], Path(spec["path"]))
        outcome, message = "read", None
    except ObservatoryError as exc:
        outcome, message = "refused", str(exc)[:300]
    facts = {
        "outcome": outcome,
        "message": message,
        "seconds": round(time.perf_counter() - start, 3),
        "vmhwm_bytes": own_peak_rss(),
    }
    Path(spec["facts"]).write_text(json.dumps(facts), encoding="utf-8")
    return 0


# ------------------------------------------------------------------ adversarial files


def _long_line(path: Path, head: bytes, size: int) -> Path:
    with path.open("wb") as out:
        out.write(head)
        block = b"x" * MiB
        for _ in range(size // MiB):
            out.write(block)
        out.write(b"\n")
    return path


def _zeros(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as out:
        out.write(head)
        out.truncate(len(head) + size)  # sparse: no disk used for the zeros
    return path


def _distinct_pairs(path: Path, head: bytes, rows: int) -> Path:
    """Write a valid base flux of ``rows`` distinct pairs: the most the reader takes."""
    import numpy as np

    origins = np.char.zfill(np.arange(1001, 6001).astype(str), 5)  # 5,000 codes
    per_origin = rows // len(origins)
    destinations = np.char.zfill(np.arange(1001, 1001 + per_origin).astype(str), 5)
    tail = np.char.add(destinations, ";B;1.5\n")
    with path.open("wb") as out:
        out.write(head)
        for origin in origins:
            out.write("".join(np.char.add(f"{origin};A;", tail)).encode())
    return path


def _zip_of_zeros(path: Path, member: str, size: int) -> Path:
    block = b"\0" * (16 * MiB)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(member, "w", force_zip64=True) as out,
    ):
        for _ in range(size // len(block)):
            out.write(block)
    return path


#: The adversarial files: label, reader, file name, how it is made (a 300 MB
#: line after a header and a good line; zeros, after a header or not; a zip of
#: zeros) and the header or member name it takes.
ADVERSARIAL: list[tuple[str, str, str, str, bytes | str]] = [
    (
        "300 MB line",
        "base_flux",
        "flux-line.csv",
        "line",
        FLUX_HEADER + b"01001;A;01002;B;1\n",
    ),
    ("2 GiB of zeros", "base_flux", "flux-zeros.csv", "zeros", b""),
    ("header + 2 GiB of zeros", "base_flux", "flux-head.csv", "zeros", FLUX_HEADER),
    ("zip of 1 GiB of zeros", "base_flux", "flux-bomb.zip", "zip", "flux.csv"),
    (
        "300 MB line",
        "fd_mobpro",
        "FD_MOBPRO_2021-line.csv",
        "line",
        FD_HEADER + b"01001;ZZZZZ;01002;1;1.5\n",
    ),
    ("2 GiB of zeros", "fd_mobpro", "FD_MOBPRO_2021-zeros.csv", "zeros", b""),
    (
        "header + 2 GiB of zeros",
        "fd_mobpro",
        "FD_MOBPRO_2021-head.csv",
        "zeros",
        FD_HEADER,
    ),
    (
        "zip of 1 GiB of zeros",
        "fd_mobpro",
        "RP2021_mobpro-bomb.zip",
        "zip",
        "FD_MOBPRO_2021.csv",
    ),
    (
        "300 MB line",
        "passage",
        "passage-line.csv",
        "line",
        PASSAGE_HEADER + b"01039,01138,A,B,x\n",
    ),
    (
        "header + 2 GiB of zeros",
        "passage",
        "passage-zeros.csv",
        "zeros",
        PASSAGE_HEADER,
    ),
    (
        "300 MB line",
        "epci",
        "composition-line.csv",
        "line",
        COMPOSITION_HEADER + b"69123;Lyon;200046977;M;METLYON\n",
    ),
    ("2 GiB of zeros (.xlsx)", "epci", "EPCI-zeros.xlsx", "zeros", b""),
    ("zip of 1 GiB of zeros (.xlsx)", "epci", "epci-bomb.zip", "zip", "EPCI.xlsx"),
    ("2 GiB of zeros (.shp)", "communes", "COMMUNE.shp", "zeros", b""),
    ("10 million distinct pairs", "base_flux", "flux-rows.csv", "rows", FLUX_HEADER),
]


def adversarial_file(folder: Path, name: str, kind: str, head: bytes | str) -> Path:
    """Write one adversarial file (see :data:`ADVERSARIAL`)."""
    path = folder / name
    if kind == "line":
        return _long_line(path, bytes(head), 300 * MiB)
    if kind == "zeros":
        return _zeros(path, 2 * GiB, bytes(head))
    if kind == "rows":
        return _distinct_pairs(path, bytes(head), 10_000_000)
    return _zip_of_zeros(path, str(head), GiB)


def national(folder: Path) -> list[tuple[str, str, Path]]:
    """Return the national inputs found in ``folder``: (label, reader, path) of each."""
    files = [
        (
            "national RP 2023",
            "base_flux",
            "base-flux-mobilite-domicile-lieu-travail-2023-csv.zip",
        ),
        (
            "national RP 2018",
            "base_flux",
            "base-flux-mobilite-domicile-lieu-travail-2018-csv.zip",
        ),
        ("national EPCI workbook", "epci", "EPCI_au_01-01-2025.xlsx"),
        ("national communes", "communes", "COMMUNE.shp"),
        ("national commune passage", "passage", "commune_passage_2025.csv"),
    ]
    return [
        (label, reader, folder / name)
        for label, reader, name in files
        if (folder / name).exists()
    ]


# ------------------------------------------------------------------ parent side


def measure(label: str, reader: str, path: Path, folder: Path) -> dict[str, Any]:
    """Read ``path`` with ``reader`` in a fresh process: outcome, time, peak RSS."""
    spec = {"reader": reader, "path": str(path), "facts": str(folder / "facts.json")}
    child, facts = run_worker(Path(__file__), spec, interval=0.02)
    peak = child.peak_rss_bytes(facts["vmhwm_bytes"] if facts else None)
    record = {
        "file": label,
        "reader": reader,
        "size_bytes": path.stat().st_size,
        "outcome": facts["outcome"] if facts else f"crashed (exit {child.returncode})",
        "message": facts["message"] if facts else None,
        "read_seconds": facts["seconds"] if facts else None,
        "peak_rss_bytes": peak,
        "budget_bytes": BUDGETS[reader],
        "within_budget": peak <= BUDGETS[reader],
    }
    show(
        f"{reader:10s} {label:32s} {record['outcome']:8s} "
        f"{peak / MiB:7.0f} MiB  {record['read_seconds']} s"
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Measure every reader; write ``benchmarks/memory.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--national",
        default="/tmp/natinputs",
        help="folder of the national inputs ('' for none)",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="JSON file written"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    start_logging()
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        for label, reader, name, kind, head in ADVERSARIAL:
            path = adversarial_file(folder, name, kind, head)
            records.append(measure(label, reader, path, folder))
            path.unlink()  # the next file may need the room
        if args.national:
            for label, reader, path in national(Path(args.national)):
                records.append(measure(label, reader, path, folder))
    shown = sys.argv[1:] if argv is None else argv
    result = {
        **describe_run(
            "scripts/bench_memory.py",
            shown,
            versions(["pyarrow", "pandas", "pyogrio", "python-calamine"]),
        ),
        "code": code_identity(
            "readers_sha256", source_sha256(REPO_ROOT / "observatory" / "readers")
        ),
        "readers": records,
        "all_within_budget": all(r["within_budget"] for r in records),
        "none_crashed": all(r["outcome"] in {"read", "refused"} for r in records),
    }
    merge_results(args.results, "readers", result)
    show(f"written {args.results}: all within budget: {result['all_within_budget']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
