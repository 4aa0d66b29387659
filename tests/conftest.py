"""Fixtures built in code: hand-made territories and inputs in the official formats."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from openpyxl import Workbook
from shapely.geometry import box

SHARED_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

# A small territory whose every figure is computed by hand in test_flows.py.
#   M  = Métropole de Lyon (METLYON), communes 69123 Lyon + 69266 Villeurbanne
#   E1 = a CC east of M (01001, 01002), E2 = a CA north of M (38001),
#   E3 = a CC east of E1 (crown 2, no flows).
M, E1, E2, E3 = "200046977", "200000002", "200000003", "200000004"
EPCI_ROWS = [
    (M, "Métropole de Lyon", "METLYON"),
    (E1, "CC de l'Est", "CC"),
    (E2, "CA du Nord", "CA"),
    (E3, "CC du Lointain", "CC"),
]
COMMUNE_ROWS = [  # code, name, epci, polygon
    ("69123", "Lyon", M, box(0, 0, 5_000, 10_000)),
    ("69266", "Villeurbanne", M, box(5_000, 0, 10_000, 10_000)),
    ("01001", "L'Abergement-Clémenciat", E1, box(10_000, 0, 20_000, 5_000)),
    ("01002", "L'Abergement-de-Varey", E1, box(10_000, 5_000, 20_000, 10_000)),
    ("38001", "Les Abrets en Dauphiné", E2, box(0, 10_000, 10_000, 20_000)),
    ("01004", "Ambérieu-en-Bugey", E3, box(20_000, 0, 30_000, 10_000)),
]
# Flows as INSEE publishes them: arrondissements of Lyon, an abroad code (99140
# Suisse), a commune code that exists in no EPCI (01999).
FLOW_ROWS = [
    ("69381", "69266", "50"),
    ("69266", "69266", "200"),
    ("01001", "69385", "300"),
    ("01002", "01001", "400"),
    ("01001", "38001", "100"),
    ("69266", "01002", "60"),
    ("38001", "38001", "500"),
    ("38001", "69123", "250"),
    ("01002", "99140", "20"),
    ("01999", "69266", "30"),
    ("38001", "01999", "10"),
]
FLOW_HEADER = "CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_C21_ACTOCC15P"
# The header of INSEE's COG mouvements file (v_mvt_commune_*.csv).
MVT_HEADER = (
    "MOD,DATE_EFF,TYPECOM_AV,COM_AV,TNCC_AV,NCC_AV,NCCENR_AV,LIBELLE_AV,"
    "TYPECOM_AP,COM_AP,TNCC_AP,NCC_AP,NCCENR_AP,LIBELLE_AP"
)


def write_communes(path: Path, rows=COMMUNE_ROWS, crs="EPSG:2154") -> Path:
    gdf = gpd.GeoDataFrame(
        {
            "INSEE_COM": [r[0] for r in rows],
            "NOM": [r[1] for r in rows],
            "SIREN_EPCI": [r[2] for r in rows],
        },
        geometry=[r[3] for r in rows],
        crs=crs,
    )
    gdf.to_file(path, engine="pyogrio", encoding="UTF-8")
    return path


def write_composition_xlsx(
    path: Path, epci_rows=EPCI_ROWS, commune_rows=COMMUNE_ROWS
) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "EPCI"
    titles = ["EPCI au 1er janvier 2023", "Source : Insee", "", "", ""]
    for title in titles:
        ws.append([title])
    ws.append(["EPCI", "LIBEPCI", "NATURE_EPCI", "NB_COM"])
    for code, name, nature in epci_rows:
        ws.append([code, name, nature, sum(1 for r in commune_rows if r[2] == code)])
    comp = wb.create_sheet("Composition_communale")
    for title in titles:
        comp.append([title])
    comp.append(["CODGEO", "LIBGEO", "EPCI", "LIBEPCI", "DEP", "REG"])
    names = {code: name for code, name, _ in epci_rows}
    for code, name, epci, _ in commune_rows:
        comp.append([code, name, epci, names[epci], code[:2], "84"])
    wb.save(path)
    return path


def flows_text(
    rows=FLOW_ROWS, header=FLOW_HEADER, labels=("Origine", "Destination")
) -> str:
    """A base flux CSV: ``header``, then one ;-separated line per (origin, destination,
    workers) row, the two name columns filled with ``labels``."""
    origin, destination = labels
    return (
        header
        + "\n"
        + "\n".join(f"{o};{origin};{d};{destination};{w}" for o, d, w in rows)
        + "\n"
    )


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` (name -> bytes), stored, every one dated 2023-05-03 10:00."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2023, 5, 3, 10, 0, 0)), data)
    return buffer.getvalue()


def write_flows(path: Path, rows=FLOW_ROWS, header=FLOW_HEADER, zipped=True) -> Path:
    text = flows_text(rows, header)
    if zipped:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("base-flux-mobilite-domicile-lieu-travail-2021.csv", text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_config(folder: Path, **inputs: str) -> Path:
    paths = {
        "communes": "COMMUNE.shp",
        "epci_composition": "EPCI_au_01-01-2023.xlsx",
        "flows": "base-flux-2021.zip",
    } | inputs
    body = "[inputs]\n" + "".join(f'{k} = "{v}"\n' for k, v in paths.items())
    body += "geography = 2023\n\n[territories]\ncrown_depth = 2\n"
    path = folder / "observatory.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> Path:
    """A folder with communes, composition, flows and a config; returns the config."""
    write_communes(tmp_path / "COMMUNE.shp")
    write_composition_xlsx(tmp_path / "EPCI_au_01-01-2023.xlsx")
    write_flows(tmp_path / "base-flux-2021.zip")
    return write_config(tmp_path)


@pytest.fixture(scope="session")
def shared_real() -> Path:
    """The real public extracts of ../shared/data/real, or skip."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is absent")
    return SHARED_REAL


@pytest.fixture(autouse=True)
def _reset_observatory_logger():
    """Undo what the CLI sets on the package logger, so tests do not leak levels.

    Module-scoped fixtures may have run the CLI before this fixture starts, so
    the logger is reset to its pristine state rather than to what it was.
    """
    import logging

    logger = logging.getLogger("observatory")

    def reset():
        logger.setLevel(logging.NOTSET)
        logger.handlers[:] = [
            h for h in logger.handlers if not getattr(h, "_observatory", False)
        ]

    reset()
    yield
    reset()


@pytest.fixture(scope="module")
def local_http_server():
    """A real HTTP server on 127.0.0.1 (pytest-httpserver), one per test module."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def no_proxy(monkeypatch):
    """Requests to 127.0.0.1 must never go through a proxy set in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture(scope="session")
def local_cluster():
    """A dask.distributed cluster of two worker processes of one thread each, on 127.0.0.1."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    try:
        yield cluster
    finally:  # workers and scheduler stop even if a test failed
        cluster.close()
