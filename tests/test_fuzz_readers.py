"""Random and mutated bytes given to every reader: an ObservatoryError, never a crash.

For each format a reader takes (base flux CSV, zip and gzip; FD_MOBPRO CSV, zip
and Parquet; commune passage CSV; EPCI composition xlsx, zip and CSV; AAV CSV and zip; communes
shapefile, GeoPackage and GeoParquet), hypothesis feeds random bytes and a
valid sample with bytes flipped, cut, inserted or repeated. The reader either
reads the file or raises an :class:`ObservatoryError` of one line; any other
exception is a bug. Examples stay small so the test stays fast.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from conftest import (
    COMMUNE_ROWS,
    events_csv,
    flows_text,
    write_communes,
    write_composition_xlsx,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mobpro_samples import synthetic_fd

from observatory.core.errors import ObservatoryError
from observatory.readers.aav import read_aav
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import read_communes
from observatory.readers.epci import read_epci_composition
from observatory.readers.fd_mobpro import read_fd
from observatory.readers.passage import read_commune_passage

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: a failure reproduces
)


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _fd_csv() -> bytes:
    return synthetic_fd(40).to_csv(sep=";", index=False).encode()


def _fd_parquet() -> bytes:
    buffer = io.BytesIO()
    synthetic_fd(40).to_parquet(buffer)
    return buffer.getvalue()


def _xlsx() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = write_composition_xlsx(Path(folder) / "EPCI.xlsx")
        return path.read_bytes()


def _shapefile_part(suffix: str) -> Callable[[], bytes]:
    def make() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            path = write_communes(Path(folder) / "COMMUNE.shp")
            return path.with_suffix(suffix).read_bytes()

    return make


def _geo(driver: str) -> Callable[[], bytes]:
    def make() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            path = write_communes(Path(folder) / "COMMUNE.shp")
            frame = gpd.read_file(path)
            target = Path(folder) / (
                "commune.gpkg" if driver == "GPKG" else "commune.parquet"
            )
            if driver == "GPKG":
                frame.to_file(target, layer="commune")
            else:
                frame.to_parquet(target)
            return target.read_bytes()

    return make


def _fd(path: Path) -> object:
    return read_fd(path, 2021, progress=False, scheduler="synchronous")


def _aav_csv() -> bytes:
    lines = ["CODGEO;LIBGEO;AAV2020;LIBAAV2020;CATEAAV2020"]
    lines += [f"{code};{name};001;Pole;11" for code, name, _, _ in COMMUNE_ROWS]
    return ("\n".join(lines) + "\n").encode()


def _composition_csv() -> bytes:
    lines = ["CODGEO;LIBGEO;EPCI;LIBEPCI;NATURE_EPCI"]
    lines += [f"{code};{name};{epci};X;CC" for code, name, epci, _ in COMMUNE_ROWS]
    return ("\n".join(lines) + "\n").encode()


def _etalab() -> bytes:
    return b"code_ancien,code_actuel,nom_actuel,nom_ancien,source\n01039,01138,A,B,x\n"


def _mouvements() -> bytes:
    return events_csv([("32", "2019-01-01", "COM", "01001", "A", "COM", "01002", "B")])


def _shapefile(name: str) -> Callable[[Path], object]:
    """Read a shapefile whose ``name`` part is fuzzed; the other parts are valid."""

    def read(path: Path) -> object:
        for suffix in (".shp", ".shx", ".dbf", ".prj"):
            part = path.with_name("COMMUNE" + suffix)
            if part != path:
                part.write_bytes(SAMPLES[f"shapefile{suffix}"][1]())
        return read_communes(path.with_name("COMMUNE.shp"))

    return read


#: Each format: the name of the file written, a valid sample, the reader.
SAMPLES: dict[str, tuple[str, Callable[[], bytes], Callable[[Path], object]]] = {
    "flux-csv": ("flux.csv", lambda: flows_text().encode(), read_base_flux),
    "flux-zip": (
        "flux.zip",
        lambda: _zip("flux.csv", flows_text().encode()),
        read_base_flux,
    ),
    "flux-gzip": (
        "flux.csv.gz",
        lambda: gzip.compress(flows_text().encode()),
        read_base_flux,
    ),
    "fd-csv": ("FD_MOBPRO_2021.csv", _fd_csv, _fd),
    "fd-zip": ("RP2021_mobpro.zip", lambda: _zip("FD_MOBPRO_2021.csv", _fd_csv()), _fd),
    "fd-parquet": ("FD_MOBPRO_2021.parquet", _fd_parquet, _fd),
    "passage-etalab": ("passage.csv", _etalab, read_commune_passage),
    "passage-mouvements": ("mvt.csv", _mouvements, read_commune_passage),
    "epci-xlsx": ("EPCI.xlsx", _xlsx, read_epci_composition),
    "epci-zip": ("epci.zip", lambda: _zip("EPCI.xlsx", _xlsx()), read_epci_composition),
    "epci-csv": ("composition.csv", _composition_csv, read_epci_composition),
    "aav-csv": ("aav.csv", _aav_csv, read_aav),
    "aav-zip": ("aav.zip", lambda: _zip("aav.csv", _aav_csv()), read_aav),
    "shapefile.shp": ("COMMUNE.shp", _shapefile_part(".shp"), _shapefile(".shp")),
    "shapefile.shx": ("COMMUNE.shx", _shapefile_part(".shx"), _shapefile(".shx")),
    "shapefile.dbf": ("COMMUNE.dbf", _shapefile_part(".dbf"), _shapefile(".dbf")),
    "shapefile.prj": ("COMMUNE.prj", _shapefile_part(".prj"), _shapefile(".prj")),
    "communes-gpkg": ("commune.gpkg", _geo("GPKG"), read_communes),
    "communes-geoparquet": ("commune.parquet", _geo("Parquet"), read_communes),
}

_SAMPLE_BYTES: dict[str, bytes] = {}


def sample(kind: str) -> bytes:
    if kind not in _SAMPLE_BYTES:
        _SAMPLE_BYTES[kind] = SAMPLES[kind][1]()
    return _SAMPLE_BYTES[kind]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, a part cut, inserted or repeated."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif action == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * 2
        else:
            del data[at:]
    return bytes(data)


def _read(kind: str, data: bytes) -> None:
    name, _, reader = SAMPLES[kind]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        message = ""
        try:
            reader(path)
        except ObservatoryError as exc:  # any other exception fails the test
            message = str(exc)
        assert "\n" not in message, message


@pytest.mark.parametrize("kind", list(SAMPLES))
@FUZZ
@given(data=st.data())
def test_mutated_bytes_give_an_observatory_error_or_a_table(kind, data):
    _read(kind, data.draw(mutated(sample(kind))))


@pytest.mark.parametrize("kind", list(SAMPLES))
@FUZZ
@given(raw=st.binary(max_size=2048))
def test_random_bytes_give_an_observatory_error_or_a_table(kind, raw):
    _read(kind, raw)
