"""Fixtures built in code: hand-made territories and inputs in the official formats."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import geopandas as gpd
import py7zr
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
#: What INSEE's EPCI composition writes for a commune in no EPCI (islands).
NO_EPCI_CODE, NO_EPCI_NAME = "ZZZZZZZZZ", "Sans objet"


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


def _insee_titles(geography: int | None) -> list[str]:
    """The five rows above the header of INSEE's EPCI workbook (header on row 6)."""
    if geography is None:
        return ["EPCI au 1er janvier 2023", "Source : Insee", "", "", ""]
    return [
        "Intercommunalité et Métropole",
        "France - Liste des intercommunalités",
        f"Géographie au 01/01/{geography}",
        "Source(s) : Insee, Code officiel géographique",
        "",
    ]


def write_composition_xlsx(
    path: Path,
    epci_rows=EPCI_ROWS,
    commune_rows=COMMUNE_ROWS,
    geography: int | None = None,
) -> Path:
    """INSEE's EPCI workbook: sheets ``EPCI`` and ``Composition_communale``, header
    on row 6. ``geography`` writes INSEE's own title block ("Géographie au
    01/01/YYYY"); a commune row whose EPCI is :data:`NO_EPCI_CODE` is written as
    INSEE writes the communes in no EPCI (``LIBEPCI`` "Sans objet")."""
    wb = Workbook()
    ws = wb.active
    ws.title = "EPCI"
    titles = _insee_titles(geography)
    for title in titles:
        ws.append([title])
    ws.append(["EPCI", "LIBEPCI", "NATURE_EPCI", "NB_COM"])
    for code, name, nature in epci_rows:
        ws.append([code, name, nature, sum(1 for r in commune_rows if r[2] == code)])
    comp = wb.create_sheet("Composition_communale")
    for title in titles:
        comp.append([title])
    comp.append(["CODGEO", "LIBGEO", "EPCI", "LIBEPCI", "DEP", "REG"])
    names = {code: name for code, name, _ in epci_rows} | {NO_EPCI_CODE: NO_EPCI_NAME}
    for code, name, epci, _ in commune_rows:
        dep = code[:3] if code.startswith("97") else code[:2]
        comp.append([code, name, epci, names[epci], dep, "84"])
    wb.save(path)
    return path


def events_csv(events) -> bytes:
    """INSEE's COG events (``v_mvt_commune_YYYY.csv``): comma-separated, every field
    quoted, UTF-8. ``events`` are (MOD, DATE_EFF, TYPECOM_AV, COM_AV, LIBELLE_AV,
    TYPECOM_AP, COM_AP, LIBELLE_AP); the name columns are derived from the label."""

    def names(label: str) -> list[str]:
        return ["0", label.upper(), label, label]

    lines = [MVT_HEADER.split(",")]
    for mod, when, type_av, code_av, label_av, type_ap, code_ap, label_ap in events:
        before = [mod, when, type_av, code_av, *names(label_av)]
        lines.append([*before, type_ap, code_ap, *names(label_ap)])
    text = "\n".join(",".join(f'"{field}"' for field in line) for line in lines)
    return (text + "\n").encode("utf-8")


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
    # FLOW_ROWS keep a code in no EPCI on purpose (01999: 40 of 1,920 workers,
    # 2.1 %): the gate on unmatched workers is set above it.
    body += "geography = 2023\nmax_unmatched_share = 0.05\n"
    body += "\n[territories]\ncrown_depth = 2\n"
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


def pytest_configure(config):
    """Point the download cache at a folder of this session: tests never write
    into the user's (PROJ's kept operations, downloads), and each session starts
    with none (subprocesses started by the tests inherit it)."""
    folder = tempfile.mkdtemp(prefix="observatory-tests-cache-")
    config._observatory_cache = folder
    os.environ["OBSERVATORY_CACHE"] = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_observatory_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


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
def server(local_http_server):
    """The module's loopback server, with no request expected yet nor left after."""
    local_http_server.clear()
    yield local_http_server
    local_http_server.clear()


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


# --------------------------------------------------------------------- IGN and INSEE archives
# The official files as published, for the local-mirror tests (tests/test_mirror.py):
# commune rows are (code, name, EPCI SIREN, polygon in EPSG:2154).
#: INSEE's nature of an EPCI -> how ADMIN EXPRESS 3-2 writes it.
NATURES = {
    "METLYON": "Métropole de Lyon",
    "ME": "Métropole",
    "CU": "Communauté urbaine",
    "CA": "Communauté d'agglomération",
    "CC": "Communauté de communes",
}

# Official CRS of each zone of IGN's edition names.
ZONE_CRS = {
    "LAMB93": "EPSG:2154",
    "WGS84G": "EPSG:4326",
    "RGAF09UTM20": "EPSG:5490",
    "UTM22RGFG95": "EPSG:2972",
    "RGR92UTM40S": "EPSG:2975",
    "RGM04UTM38S": "EPSG:4471",
}


def edition(url: str) -> tuple[str, str]:
    """The archive name of an IGN catalogue URL and the CRS of its zone."""
    name = Path(urlsplit(url).path).name.removesuffix(".7z")
    zone = name.split("__", 1)[1].split("_")[1]
    return name, ZONE_CRS[zone]


def _seven_zip(folder: Path, name: str) -> bytes:
    archive = folder / f"{name}.7z"
    with py7zr.SevenZipFile(archive, "w") as out:
        out.writeall(folder / name, arcname=name)
    return archive.read_bytes()


def _frame(rows: list[tuple], crs: str, attributes: dict) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        attributes, geometry=[r[3] for r in rows], crs="EPSG:2154"
    ).to_crs(crs)


def _epci_polygons(rows: list[tuple], crs: str) -> gpd.GeoDataFrame:
    """EPCI polygons dissolved from the communes (islands in no EPCI left out)."""
    frame = _frame(rows, crs, {"epci": [r[2] for r in rows]})
    return frame[frame["epci"] != NO_EPCI_CODE].dissolve(by="epci", as_index=False)


def _lyon(rows: list[tuple]) -> list[tuple]:
    return [r for r in rows if r[0] == "69123"]


def _siren(epci: str) -> str:
    return "NR" if epci == NO_EPCI_CODE else epci


def admin_express_4_0(
    folder: Path, url: str, rows: list[tuple], epci_rows: list[tuple]
) -> bytes:
    """ADMIN EXPRESS COG CARTO 4-0 as IGN ships it: one GeoPackage four folders
    down a 7z, in the edition's CRS (``rows`` in EPSG:2154)."""
    name, crs = edition(url)
    names = {code: name for code, name, _ in epci_rows}
    inner = name.replace("ADMIN-EXPRESS-COG-CARTO_", "ADE-COG-CARTO_").replace(
        "__", "_"
    )
    inner = "-ED".join(inner.rsplit("_", 1))
    gpkg = (
        folder / name / "ADMIN-EXPRESS-COG-CARTO" / "1_DONNEES_LIVRAISON_2026-03-00184"
    )
    gpkg = gpkg / inner / f"{inner}.gpkg"
    gpkg.parent.mkdir(parents=True)
    write = {"engine": "pyogrio", "layer_options": {"GEOMETRY_NAME": "geometrie"}}
    codes = [r[0] for r in rows]
    deps = [
        "NR" if c.startswith("975") else c[:3] if c.startswith("97") else c[:2]
        for c in codes
    ]
    _frame(
        rows,
        crs,
        {
            "cleabs": [f"COMMUNE_{i:016d}" for i in range(len(rows))],
            "nom_officiel": [r[1] for r in rows],
            "code_insee": codes,
            "statut": ["Commune simple"] * len(rows),
            "population": [1_000 + i for i in range(len(rows))],
            "code_insee_du_departement": deps,
            "code_insee_de_la_region": ["84"] * len(rows),
            "codes_siren_des_epci": [_siren(r[2]) for r in rows],
            "code_postal": ["01000"] * len(rows),
            "code_siren": [f"2{c}000" for c in codes],
        },
    ).to_file(gpkg, layer="commune", promote_to_multi=True, **write)
    lyon = _lyon(rows)
    _frame(
        lyon,
        crs,
        {
            "cleabs": ["ARRONDISSEMENT_MUNICIPAL_0000000000000001"] * len(lyon),
            "nom_officiel": ["Lyon 1er Arrondissement"] * len(lyon),
            "code_insee": ["69381"] * len(lyon),
            "code_insee_de_la_commune_de_rattach": ["69123"] * len(lyon),
            "population": [30_000] * len(lyon),
        },
    ).to_file(gpkg, layer="arrondissement_municipal", promote_to_multi=True, **write)
    epci = _epci_polygons(rows, crs)
    gpd.GeoDataFrame(
        {
            "cleabs": [f"EPCI_{i:016d}" for i in range(len(epci))],
            "code_siren": epci["epci"],
            "nom_officiel": epci["epci"].map(names),
        },
        geometry=epci.geometry,
        crs=crs,
    ).to_file(gpkg, layer="epci", promote_to_multi=True, **write)
    return _seven_zip(folder, name)


def admin_express_3_2(
    folder: Path, url: str, rows: list[tuple], epci_rows: list[tuple]
) -> bytes:
    """ADMIN EXPRESS COG CARTO 3-2 as IGN ships it: shapefiles four folders down a
    7z, in the edition's CRS (``rows`` in EPSG:2154), upper-case fields."""
    name, crs = edition(url)
    names = {code: name for code, name, _ in epci_rows}
    natures = {code: NATURES[nature] for code, _, nature in epci_rows}
    inner = "-ED".join(
        name.replace("ADMIN-EXPRESS-COG-CARTO_", "ADECOGC_")
        .replace("__", "_")
        .rsplit("_", 1)
    )
    layers = (
        folder
        / name
        / "ADMIN-EXPRESS-COG-CARTO"
        / "1_DONNEES_LIVRAISON_2025-04-00194"
        / inner
    )
    layers.mkdir(parents=True)
    write = {"engine": "pyogrio", "encoding": "UTF-8"}
    codes = [r[0] for r in rows]
    _frame(
        rows,
        crs,
        {
            "ID": [f"COMMUNE_{i:016d}" for i in range(len(rows))],
            "NOM": [r[1] for r in rows],
            "NOM_M": [r[1].upper() for r in rows],
            "INSEE_COM": codes,
            "STATUT": ["Commune simple"] * len(rows),
            "POPULATION": [1_000 + i for i in range(len(rows))],
            "INSEE_CAN": ["NR"] * len(rows),
            "INSEE_ARR": ["1"] * len(rows),
            "INSEE_DEP": [c[:3] if c.startswith("97") else c[:2] for c in codes],
            "INSEE_REG": ["84"] * len(rows),
            "SIREN_EPCI": [_siren(r[2]) for r in rows],
        },
    ).to_file(layers / "COMMUNE.shp", **write)
    epci = _epci_polygons(rows, crs)
    gpd.GeoDataFrame(
        {
            "ID": [f"EPCI_{i:016d}" for i in range(len(epci))],
            "CODE_SIREN": epci["epci"],
            "NOM": epci["epci"].map(names),
            "NATURE": epci["epci"].map(natures),
        },
        geometry=epci.geometry,
        crs=crs,
    ).to_file(layers / "EPCI.shp", **write)
    if lyon := _lyon(rows):
        _frame(
            lyon,
            crs,
            {
                "ID": ["ARR_MUNI_0000000000000001"],
                "NOM": ["Lyon 1er Arrondissement"],
                "INSEE_ARM": ["69381"],
                "INSEE_COM": ["69123"],
                "POPULATION": [30_000],
            },
        ).to_file(layers / "ARRONDISSEMENT_MUNICIPAL.shp", **write)
    return _seven_zip(folder, name)


def epci_zip(
    folder: Path, member: str, geography: int, epci_rows, commune_rows
) -> bytes:
    """INSEE's EPCI composition: the xlsx ``member`` alone in a zip."""
    xlsx = write_composition_xlsx(folder / member, epci_rows, commune_rows, geography)
    return zip_bytes({member: xlsx.read_bytes()})


def base_flux_zip(vintage: int, rows) -> bytes:
    """INSEE's base flux: one ;-separated CSV, UTF-8 with a byte-order mark."""
    header = FLOW_HEADER.replace("C21", f"C{vintage % 100:02d}")
    lines = [header] + [f"{o};Origine;{d};Destination;{w}" for o, d, w in rows]
    text = "\ufeff" + "\n".join(lines) + "\n"
    return zip_bytes(
        {f"base-flux-mobilite-domicile-lieu-travail-{vintage}.csv": text.encode()}
    )
