"""The corpus of malformed inputs of tests/test_malformed_inputs.py: writers, cases.

Each :class:`Case` writes one small malformed file with the test's folder, names
the reader that must refuse it, and the message (a regular expression) and line
(or feature) expected. A case may lower one of the readers' bounds
(``patch``), so that a file of a few MB stands for one of gigabytes.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
from conftest import (
    COMMUNE_ROWS,
    FLOW_HEADER,
    MVT_HEADER,
    events_csv,
    flows_text,
    write_communes,
    write_composition_xlsx,
    write_flows,
    zip_bytes,
)
from mobpro_samples import COLUMNS, synthetic_fd, write_csv
from shapely.geometry import Point, Polygon, box

from observatory.readers import base_flux, epci, workbook
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import read_communes
from observatory.readers.epci import read_epci_composition
from observatory.readers.fd_mobpro import partitions, read_fd
from observatory.readers.passage import read_commune_passage

ETALAB_HEADER = "code_ancien,code_actuel,nom_actuel,nom_ancien,source"
MiB = 1 << 20


# --------------------------------------------------------------------- writers
def flows_file(tmp: Path, body: str, name: str = "flux.csv") -> Path:
    path = tmp / name
    path.write_text(FLOW_HEADER + "\n" + body, encoding="utf-8")
    return path


def flows_bytes(tmp: Path, data: bytes, name: str = "flux.csv") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def long_line(tmp: Path, header: str, good: str, size: int, name: str) -> Path:
    """A header, a good line, then a line of ``size`` bytes, written in chunks."""
    path = tmp / name
    with path.open("wb") as out:
        out.write(f"{header}\n{good}\n".encode())
        for _ in range(size // MiB):
            out.write(b"x" * MiB)
        out.write(b"\n")
    return path


def zeros(tmp: Path, name: str, size: int, head: bytes = b"") -> Path:
    path = tmp / name
    with path.open("wb") as out:
        out.write(head)
    with path.open("r+b") as out:
        out.truncate(len(head) + size)  # sparse: a file of zero bytes
    return path


def fd_csv(tmp: Path, rows: list[tuple[str, ...]] | None = None) -> Path:
    frame = synthetic_fd(200)
    for i, row in enumerate(rows or []):
        frame.loc[i, COLUMNS] = row
    return write_csv(frame, tmp / "FD_MOBPRO_2021.csv")


def fd_parquet(tmp: Path, frame: pd.DataFrame) -> Path:
    path = tmp / "FD_MOBPRO_2021.parquet"
    frame.to_parquet(path)
    return path


def etalab(tmp: Path, body: str) -> Path:
    path = tmp / "passage.csv"
    path.write_text(ETALAB_HEADER + "\n" + body, encoding="utf-8")
    return path


def xlsx(tmp: Path, **kwargs) -> Path:
    return write_composition_xlsx(tmp / "EPCI_au_01-01-2023.xlsx", **kwargs)


def composition_csv(tmp: Path, body: str) -> Path:
    path = tmp / "composition.csv"
    header = "CODGEO;LIBGEO;EPCI;LIBEPCI;NATURE_EPCI"
    path.write_text(header + "\n" + body, encoding="utf-8")
    return path


def communes_file(tmp: Path, rows, name: str = "COMMUNE.shp", crs="EPSG:2154") -> Path:
    return write_communes(tmp / name, rows=rows, crs=crs)


def bowtie_commune(spike: float) -> Polygon:
    """Lyon's square with a self-crossing loop of about ``spike`` of its area."""
    side = (spike * 50_000_000) ** 0.5
    return Polygon(
        [
            (0, 0),
            (5_000, 0),
            (5_000, 10_000),
            (5_000 + side, 10_000 + side),
            (5_000 + side, 10_000),
            (5_000, 10_000 + side),
            (0, 10_000),
        ]
    )


def gpkg_points(tmp: Path) -> Path:
    path = tmp / "communes.gpkg"
    frame = gpd.GeoDataFrame(
        {"INSEE_COM": ["69123"], "NOM": ["Lyon"]},
        geometry=[Point(0, 0)],
        crs="EPSG:2154",
    )
    frame.to_file(path, layer="commune")
    return path


def plain_parquet(tmp: Path) -> Path:
    path = tmp / "commune.parquet"
    pd.DataFrame({"code_insee": ["69123"]}).to_parquet(path)
    return path


def no_crs(tmp: Path) -> Path:
    path = communes_file(tmp, COMMUNE_ROWS)
    path.with_suffix(".prj").unlink()
    return path


# --------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """A malformed input: how to write it, its reader, the message expected."""

    id: str
    reader: str
    write: Callable[[Path], Path]
    message: str
    line: int | None = None
    patch: tuple[object, str, int] | None = None  # (module, name, value)


def _bad_weights(tmp: Path) -> Path:
    return fd_csv(tmp, [("01001", "ZZZZZ", "01002", "1", "1e308")])


def _fd_header_only(tmp: Path) -> Path:
    path = tmp / "FD_MOBPRO_2021.csv"
    path.write_text(";".join(COLUMNS) + "\n", encoding="utf-8")
    return path


def _fd_zip_of_zeros(tmp: Path) -> Path:
    path = tmp / "RP2021_mobpro_csv.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("FD_MOBPRO_2021.csv", b"\0" * (4 * MiB))
    return path


def _fd_no_rows_parquet(tmp: Path) -> Path:
    return fd_parquet(tmp, synthetic_fd(10).iloc[:0])


def _fd_negative_parquet(tmp: Path) -> Path:
    frame = synthetic_fd(10)
    frame["IPONDI"] = frame["IPONDI"].astype(float)
    frame.loc[3, "IPONDI"] = -2.0
    return fd_parquet(tmp, frame)


def _fd_corrupt_parquet(tmp: Path) -> Path:
    path = tmp / "FD_MOBPRO_2021.parquet"
    path.write_bytes(b"PAR1" + b"\x07" * 1000 + b"PAR1")
    return path


def _zip_bomb(tmp: Path) -> Path:
    path = tmp / "flux.zip"
    text = flows_text() + "01001;A;01004;B;1\n" * 200_000  # ~3.6 MB of text
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("base-flux.csv", text)
    return path


def _xlsx_garbage(tmp: Path) -> Path:
    path = tmp / "EPCI_au_01-01-2023.xlsx"
    path.write_bytes(zip_bytes({"[Content_Types].xml": b"<nothing/>"}))
    return path


def _xlsx_missing_sheet(tmp: Path) -> Path:
    path = xlsx(tmp)
    frame = pd.DataFrame({"EPCI": ["200046977"]})
    frame.to_excel(path, sheet_name="EPCI", index=False)
    return path


def _mouvements_bad_date(tmp: Path) -> Path:
    path = tmp / "v_mvt_commune_2024.csv"
    events = [("32", "2019/01/01", "COM", "01001", "A", "COM", "01002", "B")]
    path.write_bytes(events_csv(events))
    return path


def _gzip_truncated(tmp: Path) -> Path:
    path = tmp / "flux.csv.gz"
    path.write_bytes(gzip.compress(flows_text().encode())[:60])
    return path


# fmt: off
CASES = [
    # ---- base flux
    Case("flux-header-only", "flows", lambda t: flows_file(t, ""), r"no data lines under the header", 2),
    Case("flux-empty-file", "flows", lambda t: flows_bytes(t, b""), r"line 1 is empty: expected the header", 1),
    Case("flux-no-flow-column", "flows", lambda t: flows_bytes(t, b"CODGEO;DCLT;X\n01001;01002;1\n"), r"line 1: expected columns CODGEO;LIBGEO;DCLT", 1),
    Case("flux-1e308", "flows", lambda t: flows_file(t, "01001;A;01002;B;5\n01001;A;01004;B;1e308\n"), r"must be at most 35,000,000 workers .*; line 3: '1e308'", 3),
    Case("flux-above-france", "flows", lambda t: flows_file(t, "01001;A;01002;B;40000000\n"), r"must be at most 35,000,000 workers", 2),
    Case("flux-negative", "flows", lambda t: flows_file(t, "01001;A;01002;B;-3\n"), r"must be >= 0; line 2: '-3'", 2),
    Case("flux-text", "flows", lambda t: flows_file(t, "01001;A;01002;B;n/a\n"), r"must be a number; line 2: 'n/a'", 2),
    Case("flux-infinite", "flows", lambda t: flows_file(t, "01001;A;01002;B;inf\n"), r"must be a number; line 2: 'inf'", 2),
    Case("flux-nan", "flows", lambda t: flows_file(t, "01001;A;01002;B;NaN\n"), r"must be a number; line 2: 'NaN'", 2),
    Case("flux-empty-value", "flows", lambda t: flows_file(t, "01001;A;01002;B;\n"), r"must be a number; line 2: ''", 2),
    Case("flux-duplicated-pair", "flows", lambda t: flows_file(t, "01001;A;01002;B;1\n01001;A;01004;B;2\n01001;A;01002;B;3\n"), r"1 \(CODGEO, DCLT\) pair\(s\) on more than one line; line 4: '01001 -> 01002 \(as line 2\)'.*allow_duplicate_pairs", 4),
    Case("flux-duplicated-after-strip", "flows", lambda t: flows_file(t, "01001;A;01002;B;1\n 01001 ;A;01002;B;3\n"), r"pair\(s\) on more than one line; line 3", 3),
    Case("flux-bad-origin", "flows", lambda t: flows_file(t, "01001;A;01002;B;1\n1001;A;01002;B;1\n"), r"CODGEO must be a 5-character commune code; line 3: '1001'", 3),
    Case("flux-bad-destination", "flows", lambda t: flows_file(t, "01001;A;XYZ12;B;1\n"), r"DCLT must be a 5-character commune code or an abroad code \(99xxx\); line 2: 'XYZ12'", 2),
    Case("flux-not-utf8-code", "flows", lambda t: flows_bytes(t, (FLOW_HEADER + "\n0100\xe9;A;01002;B;1\n").encode("cp1252")), r"CODGEO must be .*; line 2: '0100é'", 2),
    Case("flux-missing-fields", "flows", lambda t: flows_file(t, "01001;A;01002;B;1\n01001;A;01003\n"), r"line 3: expected 5 fields separated by ';' as in the header, found 3", 3),
    Case("flux-extra-fields", "flows", lambda t: flows_file(t, "01001;A;01002;B;1;9\n"), r"line 2: expected 5 fields .* found 6", 2),
    Case("flux-blank-line-inside", "flows", lambda t: flows_file(t, "01001;A;01002;B;1\n\n01001;A;01004;B;1\n"), r"CODGEO must be a 5-character commune code; line 3: ''", 3),
    Case("flux-long-line", "flows", lambda t: long_line(t, FLOW_HEADER, "01001;A;01002;B;1", 9 * MiB, "flux.csv"), r"line 3 is longer than 4 MiB: not a base flux CSV", 3),
    Case("flux-zeros", "flows", lambda t: zeros(t, "flux.csv", 8 * MiB), r"line 1 \(the header\) is longer than 64 KiB", 1),
    Case("flux-header-then-zeros", "flows", lambda t: zeros(t, "flux.csv", 9 * MiB, (FLOW_HEADER + "\n").encode()), r"line 2 is longer than 4 MiB", 2),
    Case("flux-zip-without-csv", "flows", lambda t: flows_bytes(t, zip_bytes({"notice.txt": b"x"}), "flux.zip"), r"expected one CSV file in the archive, found \['notice.txt'\]"),
    Case("flux-not-a-zip", "flows", lambda t: flows_bytes(t, b"PK\x03\x04 not a zip", "flux.zip"), r"not a valid zip archive"),
    Case("flux-truncated-gzip", "flows", _gzip_truncated, r"not a valid gzip file"),
    Case("flux-zip-beyond-bound", "flows", _zip_bomb, r"more than 1 MiB of data once decompressed", None, (base_flux, "MAX_BYTES", MiB)),
    Case("flux-too-many-lines", "flows", lambda t: write_flows(t / "flux.zip"), r"more than 3 lines of commune pairs", None, (base_flux, "MAX_ROWS", 3)),
    # ---- FD_MOBPRO
    Case("fd-header-only", "fd", _fd_header_only, r"FD_MOBPRO_2021\.csv: no data lines", 2),
    Case("fd-weight-1e308", "fd", _bad_weights, r"IPONDI must be a number >= 0 and <= 35,000,000 .*: line 2: '1e308'", 2),
    Case("fd-missing-column", "fd", lambda t: write_csv(synthetic_fd(20).drop(columns="TRANS"), t / "FD_MOBPRO_2021.csv"), r"line 1: missing column\(s\) \['TRANS'\]", 1),
    Case("fd-zip-of-zeros", "fd", _fd_zip_of_zeros, r"line 1 \(the header\) is longer than 64 KiB", 1),
    Case("fd-long-line", "fd", lambda t: long_line(t, ";".join(COLUMNS), "01001;ZZZZZ;01002;1;1.5", 3 * MiB, "FD_MOBPRO_2021.csv"), r"line 3 is longer than 1 MiB", 3, (partitions, "LONGEST_LINE", MiB)),
    Case("fd-parquet-no-rows", "fd", _fd_no_rows_parquet, r"FD_MOBPRO_2021\.parquet: no data rows", 1),
    Case("fd-parquet-negative", "fd", _fd_negative_parquet, r"IPONDI must be a number >= 0 .*: row 4: -2\.0", 4),
    Case("fd-parquet-corrupt", "fd", _fd_corrupt_parquet, r"FD_MOBPRO_2021\.parquet: cannot read as Parquet"),
    # ---- commune passage
    Case("passage-header-only", "passage", lambda t: etalab(t, ""), r"passage\.csv: no data lines under the header", 2),
    Case("passage-bad-code", "passage", lambda t: etalab(t, "01039,01138,A,B,x\n0105,01453,A,B,x\n"), r"code_ancien must be a 5-character commune code; line 3: '0105'", 3),
    Case("passage-bad-date", "passage", _mouvements_bad_date, r"DATE_EFF must be a date like 2019-01-01; line 2: '2019/01/01'", 2),
    Case("passage-unknown-layout", "passage", lambda t: flows_bytes(t, b"a,b\n1,2\n", "passage.csv"), r"not a commune passage file", 1),
    Case("passage-extra-fields", "passage", lambda t: etalab(t, "01039,01138,A,B,x,y\n"), r"line 2: expected 5 fields separated by ',' .* found 6", 2),
    Case("passage-long-line", "passage", lambda t: long_line(t, ETALAB_HEADER, "01039,01138,A,B,x", 9 * MiB, "passage.csv"), r"line 3 is longer than 4 MiB: not a commune passage CSV", 3),
    Case("passage-zeros", "passage", lambda t: zeros(t, "passage.csv", 2 * MiB), r"line 1 \(the header\) is longer than 64 KiB", 1),
    Case("passage-mouvements-header-only", "passage", lambda t: flows_bytes(t, (MVT_HEADER + "\n").encode(), "mvt.csv"), r"mvt\.csv: no data lines under the header", 2),
    # ---- EPCI composition
    Case("epci-not-a-workbook", "epci", _xlsx_garbage, r"EPCI_au_01-01-2023\.xlsx: cannot read as an xlsx workbook"),
    Case("epci-random-bytes", "epci", lambda t: flows_bytes(t, b"\x00\x01garbage" * 50, "EPCI_au_01-01-2023.xlsx"), r"cannot read as an xlsx workbook: not a zip archive"),
    Case("epci-missing-sheet", "epci", _xlsx_missing_sheet, r"missing sheet\(s\) \['Composition_communale'\]; found \['EPCI'\]"),
    Case("epci-no-commune", "epci", lambda t: xlsx(t, commune_rows=[]), r"no commune in an EPCI under the header"),
    Case("epci-repeated-commune", "epci", lambda t: xlsx(t, commune_rows=[*COMMUNE_ROWS, COMMUNE_ROWS[0]]), r"each commune must appear once; row 7: '69123'", 7),
    Case("epci-bad-siren", "epci", lambda t: composition_csv(t, "69123;Lyon;20004697;M;METLYON\n"), r"EPCI must be a 9-digit SIREN .*; line 2: '20004697'", 2),
    Case("epci-csv-header-only", "epci", lambda t: composition_csv(t, ""), r"no commune in an EPCI under the header"),
    Case("epci-zip-without-composition", "epci", lambda t: flows_bytes(t, zip_bytes({"notice.pdf": b"x"}), "epci.zip"), r"expected one EPCI composition .* in the archive"),
    Case("epci-workbook-beyond-bound", "epci", xlsx, r"the workbook's parts inflate to [\d,]+ bytes, more than the 1,000 bytes", None, (workbook, "MAX_UNPACKED", 1000)),
    Case("epci-zip-beyond-bound", "epci", lambda t: flows_bytes(t, zip_bytes({"EPCI.xlsx": b"\0" * 3000}), "epci.zip"), r"epci\.zip \[EPCI\.xlsx\]: more than 1,000 bytes of data once decompressed", None, (epci, "MAX_BYTES", 1000)),
    # ---- communes
    Case("communes-no-feature", "communes", lambda t: communes_file(t, COMMUNE_ROWS[:0]), r"COMMUNE\.shp: no feature in the layer"),
    Case("communes-repeated-code", "communes", lambda t: communes_file(t, [*COMMUNE_ROWS, ("69123", "Bis", "x", box(0, 0, 1, 1))]), r"commune codes must be unique; feature 0: '69123'", 0),
    Case("communes-bad-code", "communes", lambda t: communes_file(t, [("6912", "Lyon", "x", box(0, 0, 1, 1))]), r"field INSEE_COM must hold 5-character INSEE commune codes; feature 0: '6912'", 0),
    Case("communes-repair-changes-area", "communes", lambda t: communes_file(t, [("69123", "Lyon", "x", bowtie_commune(0.03))]), r"1 invalid polygon\(s\) whose repair changes the area by more than 1%; feature 0: '69123 Lyon, area \+\d\.\d\d%'.*repair_geometry = true", 0),
    Case("communes-points", "communes", gpkg_points, r"communes\.gpkg: expected Polygon or MultiPolygon geometries, found other types; feature 0: 'Point'", 0),
    Case("communes-parquet-without-geo", "communes", plain_parquet, r"a Parquet file without GeoParquet metadata"),
    Case("communes-random-bytes", "communes", lambda t: flows_bytes(t, b"\x00" * 100, "COMMUNE.shp"), r"COMMUNE\.shp: cannot read as a geometry file"),
    Case("communes-no-crs", "communes", no_crs, r"COMMUNE\.shp: the layer has no CRS"),
]
# fmt: on


READERS: dict[str, Callable[[Path], object]] = {
    "flows": read_base_flux,
    "fd": lambda path: read_fd(path, progress=False, scheduler="synchronous"),
    "passage": read_commune_passage,
    "epci": read_epci_composition,
    "communes": read_communes,
}
