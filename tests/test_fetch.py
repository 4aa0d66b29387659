"""Downloads against a real HTTP server on 127.0.0.1 (pytest-httpserver), offline.

The served files are built in code like the published ones: INSEE's base flux
(csv in a zip), INSEE's EPCI composition (xlsx in a zip) and IGN's ADMIN EXPRESS
COG CARTO (shapefiles deep inside a 7z). Every failure test checks the message a
user sees and that the cache holds nothing partial.

Cases: catalogue loading and its errors; success for the three archives (file,
provenance, extracted members readable by ``observatory.readers``); cache hit
with no request; 404 (no retry); 500 then success; 503 until the retries run out;
timeout; truncated body; pinned sha256 / size mismatch; KeyboardInterrupt during
a download; ETag unchanged (304) and changed; redirect; HTML instead of the file;
wrong magic bytes; zip-slip; member pattern matching nothing; corrupted cached
file; offline with and without cache; extraction size bound (declared and while
writing); re-extraction skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import ssl
import threading
import time
import zipfile
from pathlib import Path

import geopandas as gpd
import py7zr
import pyogrio
import pytest
import requests
from conftest import (
    FLOW_ROWS,
    MVT_HEADER,
    flows_text,
    write_communes,
    write_composition_xlsx,
    zip_bytes,
)
from openpyxl import load_workbook
from pytest_httpserver import HTTPServer
from shapely.geometry import Point
from werkzeug import Request, Response

from observatory.core.errors import ConfigError, SourceError
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import read_communes
from observatory.readers.epci import read_epci_composition
from observatory.sources import archives
from observatory.sources.cache import cached_provenance, fetch_source
from observatory.sources.catalogue import MAGIC, Source, load_catalogue

FLOWS_ZIP = "base-flux-mobilite-domicile-lieu-travail-2021-csv.zip"
FLOWS_CSV = "base-flux-mobilite-domicile-lieu-travail-2021.csv"
EPCI_ZIP = "epci_au_01-01-2023.zip"
EPCI_XLSX = "EPCI_au_01-01-2023.xlsx"
AE_NAME = "ADMIN-EXPRESS-COG-CARTO_3-2__SHP_LAMB93_FXX_2023-05-03"
AE_7Z = f"{AE_NAME}.7z"
# The delivery number (00057 here) changes with each edition.
AE_LAYERS = (
    f"{AE_NAME}/ADMIN-EXPRESS-COG-CARTO/1_DONNEES_LIVRAISON_2023-05-00057/"
    "ADECOGC_3-2_SHP_LAMB93_FXX-ED2023-05-03"
)
SHP_EXTENSIONS = (".cpg", ".dbf", ".prj", ".shp", ".shx")
LAST_MODIFIED = "Wed, 03 May 2023 10:00:00 GMT"
FAST = {"retries": 1, "backoff": 0, "timeout": 5}


# --------------------------------------------------------------------- builders
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flows_csv(extra_workers: int = 0) -> bytes:
    rows = [(o, d, float(w) + extra_workers) for o, d, w in FLOW_ROWS]
    return flows_text(rows).encode("utf-8")


def flows_zip(extra_workers: int = 0) -> bytes:
    """INSEE's base flux: one ;-separated UTF-8 CSV at the root of the zip."""
    return zip_bytes({FLOWS_CSV: flows_csv(extra_workers)})


def deflated_zip(name: str, data: bytes) -> bytes:
    """A zip of one deflated member (``zip_bytes`` stores its members)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def epci_zip(tmp_path_factory) -> bytes:
    """INSEE's EPCI file: one xlsx (sheets EPCI, Composition_communale) in a zip."""
    folder = tmp_path_factory.mktemp("epci")
    xlsx = write_composition_xlsx(folder / EPCI_XLSX).read_bytes()
    return zip_bytes({EPCI_XLSX: xlsx})


@pytest.fixture(scope="module")
def admin_express_7z(tmp_path_factory) -> bytes:
    """IGN's ADMIN EXPRESS COG CARTO: layers four folders deep in a 7z."""
    root = tmp_path_factory.mktemp("ae")
    layers = root / AE_LAYERS
    layers.mkdir(parents=True)
    write_communes(layers / "COMMUNE.shp")
    # Layers that the pattern */COMMUNE.* must leave out.
    gpd.GeoDataFrame(
        {"INSEE_COM": ["69123"], "NOM": ["Lyon"]},
        geometry=[Point(2_500, 5_000)],
        crs="EPSG:2154",
    ).to_file(layers / "CHFLIEU_COMMUNE.shp", engine="pyogrio", encoding="UTF-8")
    (root / AE_NAME / "LISEZ-MOI.txt").write_text("ADMIN EXPRESS COG CARTO\n")
    archive = root / AE_7Z
    with py7zr.SevenZipFile(archive, "w") as out:
        out.writeall(root / AE_NAME, arcname=AE_NAME)
    return archive.read_bytes()


def serve_file(
    body: bytes,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    content_type: str = "application/zip",
    calls: list[Request] | None = None,
):
    """A handler serving ``body``; 304 when the client already has that ETag."""

    def handler(request: Request) -> Response:
        if calls is not None:
            calls.append(request)
        headers = {}
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        if etag and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers=headers)
        return Response(body, headers=headers, content_type=content_type)

    return handler


# --------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to 127.0.0.1 only."""


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def make_source(server: HTTPServer, path: str, fmt: str = "zip", **fields) -> Source:
    fields.setdefault("id", "base_flux_2021")
    return Source(
        title="Base flux de mobilité domicile-lieu de travail 2021",
        publisher="INSEE",
        url=server.url_for(path),
        format=fmt,
        **fields,
    )


def flows_source(server: HTTPServer, **fields) -> Source:
    defaults = {
        "members": (FLOWS_CSV,),
        "vintage": 2021,
        "geography": 2023,
        "licence": "Licence Ouverte / Etalab 2.0",
    }
    return make_source(server, f"/fichier/8201899/{FLOWS_ZIP}", **(defaults | fields))


def leftovers(cache: Path) -> list[Path]:
    """Temporary files or folders that a fetch must never leave behind."""
    if not cache.exists():
        return []
    return [
        p
        for p in cache.rglob("*")
        if p.name.endswith(".part") or p.name.startswith(".extracted-")
    ]


def requests_seen(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# --------------------------------------------------------------------- catalogue
CATALOGUE = f"""
[sources.base_flux_2021]
title = "Base flux de mobilité domicile-lieu de travail 2021"
publisher = "INSEE"
url = "https://www.insee.fr/fr/statistiques/fichier/8201899/{FLOWS_ZIP}"
format = "zip"
members = ["{FLOWS_CSV}"]
vintage = 2021
geography = 2023
licence = "Licence Ouverte / Etalab 2.0"
attribution = "Insee, RP 2021"

[sources.epci_2023]
title = "EPCI au 1er janvier 2023"
publisher = "INSEE"
url = "https://www.insee.fr/fr/statistiques/fichier/2510634/{EPCI_ZIP}"
format = "zip"
members = ["{EPCI_XLSX}"]
sha256 = "{"AB" * 32}"
size = 1234
geography = 2023

[sources.admin_express_2023]
title = "ADMIN EXPRESS COG CARTO 2023"
publisher = "IGN"
url = "https://data.geopf.fr/telechargement/download/ADMIN-EXPRESS-COG-CARTO/{AE_NAME}/{AE_7Z}"
format = "7z"
members = ["*/COMMUNE.*"]
geography = 2023
"""


def test_load_catalogue(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    catalogue = load_catalogue(path)
    assert list(catalogue) == ["base_flux_2021", "epci_2023", "admin_express_2023"]
    flux = catalogue["base_flux_2021"]
    assert flux.members == (FLOWS_CSV,)
    assert (flux.sha256, flux.size, flux.vintage, flux.geography) == (
        None,
        None,
        2021,
        2023,
    )
    assert catalogue["epci_2023"].sha256 == "ab" * 32  # normalised to lower case
    assert catalogue["admin_express_2023"].format == "7z"


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (
            'url = "https://x.fr/a.zip"\nformat = "zip"\nchecksum = "x"',
            r"unknown key\(s\) \['checksum'\]",
        ),
        ('format = "zip"', r"missing 'url'"),
        ('url = "https://x.fr/a.zip"', r"missing 'format'"),
        (
            'url = "https://x.fr/a.zip"\nformat = "zip"\nsha256 = "abc"',
            r"'sha256' must be 64 hexadecimal",
        ),
        (
            'url = "https://x.fr/a.zip"\nformat = "zip"\nsha256 = "' + "g" * 64 + '"',
            r"'sha256' must be 64 hexadecimal",
        ),
        ('url = "https://x.fr/a.rar"\nformat = "rar"', r"'format' must be one of"),
        (
            'url = "https://x.fr/a.csv"\nformat = "csv"\nmembers = ["a"]',
            r"'members' only applies to archives",
        ),
        (
            'url = "https://x.fr/a.zip"\nformat = "zip"\nsize = "12"',
            r"'size' must be an integer",
        ),
        ('url = "ftp://x.fr/a.zip"\nformat = "zip"', r"'url' must be an http\(s\) URL"),
    ],
    ids=[
        "unknown-key",
        "no-url",
        "no-format",
        "short-sha",
        "non-hex-sha",
        "bad-format",
        "members-on-csv",
        "size-type",
        "ftp",
    ],
)
def test_load_catalogue_errors(tmp_path, entry, match):
    path = tmp_path / "sources.toml"
    path.write_text(f"[sources.flux]\n{entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.toml: \[sources\.flux\] " + match):
        load_catalogue(path)


def test_load_catalogue_not_toml(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text("[sources.flux\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.toml: not valid TOML"):
        load_catalogue(path)


# --------------------------------------------------------------------- success
def test_fetch_base_flux_zip(server, cache, caplog):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(
        serve_file(body, etag='"v1"', last_modified=LAST_MODIFIED)
    )
    source = flows_source(server)
    assert cached_provenance(source, cache) is None
    with caplog.at_level("INFO", logger="observatory.sources"):
        result = fetch_source(source, cache, **FAST)

    assert result.status == "downloaded"
    assert result.path == cache / "base_flux_2021" / FLOWS_ZIP
    assert result.path.read_bytes() == body
    record = json.loads((cache / "base_flux_2021" / "provenance.json").read_text())
    assert record == result.provenance.to_dict()
    assert result.provenance == cached_provenance(source, cache)
    assert record["source_id"] == "base_flux_2021"
    assert record["url"] == record["final_url"] == source.url
    assert record["etag"] == '"v1"'
    assert record["last_modified"] == LAST_MODIFIED
    assert record["size"] == len(body)
    assert record["sha256"] == sha256(body)
    assert record["pinned_sha256"] is None
    assert (record["vintage"], record["geography"]) == (2021, 2023)
    assert record["licence"] == "Licence Ouverte / Etalab 2.0"
    assert record["fetched_at"].endswith("+00:00")

    csv = cache / "base_flux_2021" / "extracted" / FLOWS_CSV
    assert result.members == {FLOWS_CSV: csv}
    assert csv.read_bytes() == flows_csv()
    flows = read_base_flux(csv)
    assert flows.vintage == 2021
    assert len(flows.table) == len(FLOW_ROWS)
    # The user is told the measured checksum and how to pin it.
    assert f'add sha256 = "{sha256(body)}"' in caplog.text
    assert f"downloaded {source.url} ({len(body):,} bytes" in caplog.text
    assert leftovers(cache) == []


def test_fetch_epci_xlsx_in_zip(server, cache, epci_zip):
    server.expect_request(f"/fichier/2510634/{EPCI_ZIP}").respond_with_data(
        epci_zip, content_type="application/zip"
    )
    source = make_source(
        server,
        f"/fichier/2510634/{EPCI_ZIP}",
        id="epci_2023",
        members=(EPCI_XLSX,),
        sha256=sha256(epci_zip),
        size=len(epci_zip),
    )
    result = fetch_source(source, cache, **FAST)
    xlsx = result.members[EPCI_XLSX]
    assert xlsx == cache / "epci_2023" / "extracted" / EPCI_XLSX
    assert load_workbook(xlsx, read_only=True).sheetnames == [
        "EPCI",
        "Composition_communale",
    ]
    composition = read_epci_composition(xlsx)
    assert "METLYON" in set(composition.epci["epci_nature"])
    assert result.provenance.pinned_sha256 == sha256(epci_zip)
    assert leftovers(cache) == []


def test_fetch_admin_express_7z_members_pattern(server, cache, admin_express_7z):
    path = f"/telechargement/download/ADMIN-EXPRESS-COG-CARTO/{AE_NAME}/{AE_7Z}"
    server.expect_request(path).respond_with_data(
        admin_express_7z, content_type="application/x-7z-compressed"
    )
    source = make_source(
        server, path, "7z", id="admin_express_2023", members=("*/COMMUNE.*",)
    )
    result = fetch_source(source, cache, **FAST)

    expected = {f"{AE_LAYERS}/COMMUNE{ext}" for ext in SHP_EXTENSIONS}
    assert set(result.members) == expected  # neither CHFLIEU_COMMUNE nor LISEZ-MOI
    extracted = cache / "admin_express_2023" / "extracted"
    on_disk = {
        p.relative_to(extracted).as_posix() for p in extracted.rglob("*") if p.is_file()
    }
    assert on_disk == expected
    shp = result.members[f"{AE_LAYERS}/COMMUNE.shp"]
    assert pyogrio.read_info(shp)["encoding"] == "UTF-8"
    communes = read_communes(shp)
    assert "L'Abergement-Clémenciat" in set(communes["commune_name"])
    assert leftovers(cache) == []


def test_pinned_cache_hit_sends_no_request(server, cache):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(body)
    source = flows_source(server, sha256=sha256(body), size=len(body))
    first = fetch_source(source, cache, **FAST)
    csv = first.members[FLOWS_CSV]
    before = csv.stat().st_ino
    assert len(server.log) == 1

    second = fetch_source(source, cache, **FAST)
    assert second.status == "up_to_date"
    assert len(server.log) == 1  # no request at all
    assert second.members == first.members
    assert csv.stat().st_ino == before  # the same file: not extracted again

    csv.unlink()  # a lost extracted file is extracted again
    third = fetch_source(source, cache, **FAST)
    assert third.members[FLOWS_CSV].read_bytes() == flows_csv()
    assert len(server.log) == 1


def test_same_content_is_not_extracted_again(server, cache):
    """A server without validators sends the file again: extraction is kept."""
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    source = flows_source(server)
    first = fetch_source(source, cache, **FAST)
    before = first.members[FLOWS_CSV].stat().st_ino
    second = fetch_source(source, cache, **FAST)
    assert second.status == "downloaded"
    assert len(server.log) == 2
    assert second.members[FLOWS_CSV].stat().st_ino == before
    assert second.provenance.extracted == first.provenance.extracted


def test_corrupted_extracted_member_is_extracted_again(server, cache, caplog):
    """Bit rot in an extracted file (same size) is caught by its recorded sha256."""
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(body)
    source = flows_source(server, sha256=sha256(body))
    first = fetch_source(source, cache, **FAST)
    csv = first.members[FLOWS_CSV]
    assert first.provenance.extracted.sha256 == {FLOWS_CSV: sha256(flows_csv())}
    csv.write_bytes(csv.read_bytes().replace(b";300", b";999"))
    second = fetch_source(source, cache, **FAST)
    assert second.status == "up_to_date"
    assert csv.read_bytes() == flows_csv()
    assert f"extracted member(s) ['{FLOWS_CSV}']" in caplog.text
    assert "are corrupted" in caplog.text
    assert len(server.log) == 1  # the archive itself was fine: no request


# --------------------------------------------------------------------- HTTP errors
def test_404_is_not_retried(server, cache):
    server.expect_request("/fichier/1/gone.zip").respond_with_data(
        "Not Found", status=404
    )
    source = make_source(server, "/fichier/1/gone.zip", id="gone")
    with pytest.raises(
        SourceError,
        match=r"^gone: HTTP 404 NOT FOUND for http://127\.0\.0\.1:\d+/fichier/1/gone\.zip",
    ):
        fetch_source(source, cache, retries=4, backoff=0, timeout=5)
    assert len(server.log) == 1
    assert not (cache / "gone" / "gone.zip").exists()
    assert leftovers(cache) == []


def test_500_then_success_is_retried(server, cache):
    body = flows_zip()
    calls: list[Request] = []
    ok = serve_file(body)

    def flaky(request: Request) -> Response:
        calls.append(request)
        return Response("boom", status=500) if len(calls) == 1 else ok(request)

    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(flaky)
    result = fetch_source(flows_source(server), cache, retries=2, backoff=0, timeout=5)
    assert result.status == "downloaded"
    assert len(calls) == 2
    assert result.path.read_bytes() == body


def test_503_until_retries_run_out(server, cache):
    server.expect_request("/busy.zip").respond_with_data("busy", status=503)
    source = make_source(server, "/busy.zip", id="busy")
    with pytest.raises(
        SourceError,
        match=r"busy: HTTP 503 SERVICE UNAVAILABLE for .*/busy\.zip; the server kept failing after the retries",
    ):
        fetch_source(source, cache, retries=2, backoff=0, timeout=5)
    assert len(server.log) == 3
    assert not (cache / "busy" / "busy.zip").exists()
    assert leftovers(cache) == []


def test_stalled_server_times_out(server, cache):
    release = threading.Event()
    calls: list[Request] = []

    def stall(request: Request) -> Response:
        calls.append(request)
        release.wait(5)
        return Response(flows_zip(), content_type="application/zip")

    server.expect_request("/slow.zip").respond_with_handler(stall)
    source = make_source(server, "/slow.zip", id="slow")
    try:
        with pytest.raises(
            SourceError, match=r"^slow: timed out after 0\.5 s waiting for .*/slow\.zip"
        ):
            fetch_source(source, cache, timeout=0.5, retries=1, backoff=0)
        assert len(calls) == 2  # the first attempt and one retry
    finally:
        release.set()
        deadline = time.monotonic() + 5
        while len(server.log) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)  # let the handlers finish before the next test
    assert not (cache / "slow" / "slow.zip").exists()
    assert leftovers(cache) == []


def test_truncated_body(server, cache):
    body = flows_zip()

    def truncate(request: Request) -> Response:
        # A streamed body keeps the announced length: the server really sends
        # fewer bytes than Content-Length, then closes the connection.
        return Response(
            iter([body[:100]]),
            headers={"Content-Length": str(len(body))},
            content_type="application/zip",
        )

    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(
        truncate
    )
    with pytest.raises(
        SourceError,
        match=rf"download of .*{FLOWS_ZIP} truncated: expected {len(body)} bytes \(Content-Length\), got 100 \(after 1 retries\); deleted the download",
    ):
        fetch_source(flows_source(server), cache, **FAST)
    assert len(server.log) == 2
    assert not (cache / "base_flux_2021" / FLOWS_ZIP).exists()
    assert leftovers(cache) == []


@pytest.mark.parametrize(
    ("pins", "match"),
    [
        (
            {"sha256": "0" * 64},
            r"SHA256 mismatch for .*: expected 0{64}, got [0-9a-f]{64}; deleted the download",
        ),
        (
            {"size": 10},
            r"size mismatch for .*: the catalogue pins 10 bytes, the server announces \d+",
        ),
    ],
    ids=["sha256", "size"],
)
def test_pinned_mismatch_keeps_nothing(server, cache, pins, match):
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    with pytest.raises(SourceError, match=r"^base_flux_2021: " + match):
        fetch_source(flows_source(server, **pins), cache, **FAST)
    assert len(server.log) == 1  # a wrong file is not worth a retry
    assert not (cache / "base_flux_2021" / FLOWS_ZIP).exists()
    assert cached_provenance(flows_source(server), cache) is None
    assert leftovers(cache) == []


class InterruptedSession(requests.Session):
    """A session whose body stream ends in Ctrl-C once every byte is on disk."""

    def get(self, *args, **kwargs):
        response = super().get(*args, **kwargs)
        read1 = response.raw.read1

        def interrupted(*a, **k):
            if data := read1(*a, **k):
                return data
            raise KeyboardInterrupt

        response.raw.read1 = interrupted
        return response


def test_interrupted_download_leaves_no_part(server, cache):
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    with InterruptedSession() as session, pytest.raises(KeyboardInterrupt):
        fetch_source(flows_source(server), cache, session=session, **FAST)
    assert len(server.log) == 1  # the whole body was sent
    assert sorted(p.name for p in cache.iterdir()) == [
        "base_flux_2021"
    ]  # no staging, no lock
    assert list((cache / "base_flux_2021").iterdir()) == []


# --------------------------------------------------------------------- revalidation
def test_unchanged_etag_gets_304(server, cache):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(
        serve_file(body, etag='"v1"', last_modified=LAST_MODIFIED)
    )
    source = flows_source(server)
    first = fetch_source(source, cache, **FAST)
    inode = first.path.stat().st_ino

    second = fetch_source(source, cache, **FAST)
    assert second.status == "up_to_date"
    request, response = server.log[-1]
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == LAST_MODIFIED
    assert response.status_code == 304
    assert response.get_data() == b""
    assert second.path.stat().st_ino == inode
    assert second.provenance.sha256 == first.provenance.sha256
    assert second.provenance.fetched_at == first.provenance.fetched_at
    assert second.members == first.members
    assert leftovers(cache) == []


def test_changed_etag_replaces_file_and_provenance(server, cache):
    old, new = flows_zip(), flows_zip(extra_workers=1)
    current = {"body": old, "etag": '"v1"'}

    def handler(request: Request) -> Response:
        return serve_file(current["body"], etag=current["etag"])(request)

    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(handler)
    source = flows_source(server)
    first = fetch_source(source, cache, **FAST)
    current.update(body=new, etag='"v2"')

    second = fetch_source(source, cache, **FAST)
    assert second.status == "downloaded"
    request, response = server.log[-1]
    assert request.headers["If-None-Match"] == '"v1"'
    assert response.status_code == 200
    assert second.path == first.path
    assert second.path.read_bytes() == new
    record = cached_provenance(source, cache)
    assert (record.etag, record.sha256) == ('"v2"', sha256(new))
    assert second.members[FLOWS_CSV].read_bytes() == flows_csv(extra_workers=1)
    assert leftovers(cache) == []


def test_corrupted_cached_file_is_fetched_again(server, cache):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_handler(
        serve_file(body, etag='"v1"')
    )
    source = flows_source(server)
    first = fetch_source(source, cache, **FAST)
    first.path.write_bytes(b"PK\x03\x04" + b"\0" * (len(body) - 4))  # bit rot

    second = fetch_source(source, cache, **FAST)
    assert second.status == "downloaded"
    assert second.path.read_bytes() == body
    conditional, unconditional = requests_seen(server)[-2:]
    assert conditional.headers["If-None-Match"] == '"v1"'  # 304, then the check
    assert "If-None-Match" not in unconditional.headers
    assert leftovers(cache) == []


def test_corrupted_pinned_file_is_fetched_again(server, cache):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(body)
    source = flows_source(server, sha256=sha256(body))
    first = fetch_source(source, cache, **FAST)
    first.path.write_bytes(b"garbage")
    second = fetch_source(source, cache, **FAST)
    assert second.status == "downloaded"
    assert second.path.read_bytes() == body
    assert len(server.log) == 2


def test_redirect_records_final_url(server, cache):
    body = flows_zip()
    old = f"/fichier/8201899/{FLOWS_ZIP}"
    new = f"/fichier/9999999/{FLOWS_ZIP}"
    server.expect_request(old).respond_with_response(
        Response(status=302, headers={"Location": server.url_for(new)})
    )
    server.expect_request(new).respond_with_data(body, content_type="application/zip")
    result = fetch_source(flows_source(server), cache, **FAST)
    assert result.provenance.url == server.url_for(old)
    assert result.provenance.final_url == server.url_for(new)
    assert result.path.name == FLOWS_ZIP
    assert result.path.read_bytes() == body


# --------------------------------------------------------------------- wrong content
HTML = b"<!DOCTYPE html>\n<html><head><title>Insee</title></head><body>Page introuvable</body></html>"


@pytest.mark.parametrize(
    ("fmt", "content_type", "body"),
    [
        ("zip", "text/html; charset=utf-8", HTML),
        ("zip", "application/octet-stream", b"\r\n  " + HTML.lower()),
        ("csv", "text/csv", b"<html><body>moved</body></html>"),
        ("7z", "application/x-7z-compressed", HTML),
    ],
    ids=["content-type", "sniffed", "csv", "7z"],
)
def test_html_instead_of_file(server, cache, fmt, content_type, body):
    server.expect_request(f"/moved.{fmt}").respond_with_data(
        body, content_type=content_type
    )
    source = make_source(server, f"/moved.{fmt}", fmt, id="moved")
    with pytest.raises(
        SourceError,
        match=rf"^moved: .*/moved\.{fmt} returned an HTML page instead of the expected {fmt} file, probably a moved file; check the URL in the catalogue",
    ):
        fetch_source(source, cache, **FAST)
    assert not (cache / "moved" / f"moved.{fmt}").exists()
    assert leftovers(cache) == []


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("7z", zip_bytes({"a.csv": b"x"})),
        ("parquet", b"CODGEO;LIBGEO\n01001;X\n"),
        ("xlsx", b"7z\xbc\xaf\x27\x1c" + b"\0" * 20),
    ],
    ids=["zip-as-7z", "csv-as-parquet", "7z-as-xlsx"],
)
def test_wrong_magic_bytes(server, cache, fmt, body):
    server.expect_request(f"/file.{fmt}").respond_with_data(body)
    source = make_source(server, f"/file.{fmt}", fmt, id="wrong")
    found = re.escape(repr(body[:8]))
    expected = re.escape(repr(MAGIC[fmt]))
    with pytest.raises(
        SourceError,
        match=rf"^wrong: .* did not return a {fmt} file: it starts with {found}, a {fmt} file starts with {expected}",
    ):
        fetch_source(source, cache, **FAST)
    assert not (cache / "wrong" / f"file.{fmt}").exists()
    assert leftovers(cache) == []


# --------------------------------------------------------------------- archives
@pytest.mark.parametrize(
    "evil",
    ["../evil.csv", "sub/../../evil.csv", "ABSOLUTE"],
    ids=["dotdot", "nested-dotdot", "absolute"],
)
def test_zip_slip_is_refused(server, cache, tmp_path, evil):
    outside = tmp_path / "evil.csv"
    name = str(outside) if evil == "ABSOLUTE" else evil
    body = zip_bytes({FLOWS_CSV: flows_csv(), name: b"pwned"})
    server.expect_request("/slip.zip").respond_with_data(body)
    source = make_source(server, "/slip.zip", id="slip", members=("*.csv",))
    with pytest.raises(
        SourceError,
        match=rf"refusing to extract member '{name}' of slip\.zip: its path falls outside the extraction folder",
    ):
        fetch_source(source, cache, **FAST)
    assert not outside.exists()
    assert [p.name for p in tmp_path.rglob("evil.csv")] == []
    assert not (cache / "slip" / "extracted").exists()
    assert leftovers(cache) == []


def test_member_pattern_matching_nothing_lists_the_archive(server, cache):
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    source = flows_source(server, members=("*.xlsx",))
    with pytest.raises(
        SourceError,
        match=rf"member '\*\.xlsx' matches nothing in {FLOWS_ZIP}; the archive holds 1 file\(s\): {FLOWS_CSV}",
    ):
        fetch_source(source, cache, **FAST)
    assert not (cache / "base_flux_2021" / "extracted").exists()


@pytest.mark.parametrize("fmt", ["zip", "7z"])
def test_declared_size_over_bound(server, cache, admin_express_7z, fmt):
    body = (
        deflated_zip(FLOWS_CSV, flows_csv() * 20) if fmt == "zip" else admin_express_7z
    )
    members = (FLOWS_CSV,) if fmt == "zip" else ("*/COMMUNE.*",)
    server.expect_request(f"/big.{fmt}").respond_with_data(body)
    source = make_source(server, f"/big.{fmt}", fmt, id="big", members=members)
    bound = len(body)  # the download itself fits
    with pytest.raises(
        SourceError,
        match=rf"declare [\d,]+ bytes uncompressed, more than max_extracted_size \(.*, {bound:,} bytes\); .*; nothing extracted, the cache is unchanged",
    ):
        fetch_source(source, cache, max_extracted_bytes=bound, **FAST)
    assert not (cache / "big" / "extracted").exists()
    assert leftovers(cache) == []


@pytest.mark.parametrize("fmt", ["zip", "7z"])
def test_bytes_counted_while_writing(server, cache, admin_express_7z, monkeypatch, fmt):
    """An archive that understates its sizes is stopped by the bytes counted."""
    body = flows_zip() if fmt == "zip" else admin_express_7z
    members = (FLOWS_CSV,) if fmt == "zip" else ("*/COMMUNE.*",)
    listing = archives.list_archive
    monkeypatch.setattr(
        archives,
        "list_archive",
        lambda *a: {
            n: archives.Listed(1, m.compressed) for n, m in listing(*a).items()
        },
    )
    server.expect_request(f"/liar.{fmt}").respond_with_data(body)
    source = make_source(server, f"/liar.{fmt}", fmt, id="liar", members=members)
    with pytest.raises(
        SourceError,
        match=rf"member '.+' of liar\.{fmt} writes more than the 1 bytes it declares: the archive is corrupted or forged; nothing extracted, the cache is unchanged",
    ):
        fetch_source(source, cache, **FAST)
    assert not (cache / "liar" / "extracted").exists()
    assert leftovers(cache) == []


# --------------------------------------------------------------------- offline
def test_offline_uses_verified_cache(server, cache):
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(body)
    source = flows_source(server)
    online = fetch_source(source, cache, **FAST)
    server.clear()

    result = fetch_source(source, cache, offline=True)
    assert result.status == "offline"
    assert result.path.read_bytes() == body
    assert result.members == online.members
    assert server.log == []


def test_offline_without_cache(server, cache):
    source = flows_source(server)
    with pytest.raises(
        SourceError,
        match=r"^base_flux_2021: not in the cache .* run `observatory fetch` with network first",
    ):
        fetch_source(source, cache, offline=True)
    assert server.log == []
    assert not cache.exists()


def test_offline_corrupted_cache(server, cache):
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    source = flows_source(server)
    fetch_source(source, cache, **FAST)
    (cache / "base_flux_2021" / FLOWS_ZIP).write_bytes(b"PK\x03\x04 truncated")
    server.clear()
    with pytest.raises(
        SourceError,
        match=r"^base_flux_2021: cached .* is corrupted: sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}",
    ):
        fetch_source(source, cache, offline=True)
    assert server.log == []


def test_stale_part_from_a_killed_run_is_removed(server, cache):
    folder = cache / "base_flux_2021"
    folder.mkdir(parents=True)
    stale = folder / f".{FLOWS_ZIP}.abcd1234.part"
    stale.write_bytes(b"PK\x03\x04half")
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(
        flows_zip()
    )
    fetch_source(flows_source(server), cache, **FAST)
    assert not stale.exists()


# --------------------------------------------------------------------- network
def test_connection_refused(cache):
    with socket.socket() as probe:  # a port on which nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = Source(
        id="nobody",
        title="",
        publisher="",
        url=f"http://127.0.0.1:{port}/a.zip",
        format="zip",
    )
    with pytest.raises(
        SourceError,
        match=r"^nobody: cannot download http://127\.0\.0\.1:\d+/a\.zip \(retries exhausted\): .*[Cc]onnection refused",
    ):
        fetch_source(source, cache, **FAST)
    assert leftovers(cache) == []


@pytest.fixture(scope="module")
def tls_server():
    """An HTTPS server on 127.0.0.1 whose certificate comes from a private CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    yield server, ca
    server.clear()
    server.stop()


def test_tls_certificate_is_verified(tls_server, cache, tmp_path, monkeypatch):
    server, ca = tls_server
    server.clear()
    body = flows_zip()
    server.expect_request(f"/fichier/8201899/{FLOWS_ZIP}").respond_with_data(body)
    source = flows_source(server)
    assert source.url.startswith("https://127.0.0.1:")
    with pytest.raises(
        SourceError, match=r"^base_flux_2021: TLS verification failed for https://"
    ):
        fetch_source(source, cache, **FAST)
    assert server.log == []  # refused during the handshake, and not retried
    assert not (cache / "base_flux_2021" / FLOWS_ZIP).exists()

    # An agency behind its own CA trusts it through the environment, never verify=False.
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    result = fetch_source(source, cache, **FAST)
    assert result.status == "downloaded"
    assert result.path.read_bytes() == body


# --------------------------------------------------------------------- the CLI
def test_cli_fetch_then_run_offline(
    server, tmp_path, epci_zip, admin_express_7z, capsys
):
    """The user's path: list the catalogue, fetch, fetch again, run offline."""
    import json

    from observatory.cli import main

    # 01999 (a code the flows use) merged into 01001 in 2022: harmonisation maps it.
    mvt = (
        MVT_HEADER
        + "\n32,2022-01-01,COM,01999,1,ANCIENNE,Ancienne,Ancienne,COMD,01999,1,ANCIENNE,Ancienne,Ancienne"
        + "\n32,2022-01-01,COM,01999,1,ANCIENNE,Ancienne,Ancienne,COM,01001,1,NOUVELLE,Nouvelle,Nouvelle\n"
    ).encode()
    previous = zip_bytes(
        {FLOWS_CSV.replace("2021", "2016"): flows_csv().replace(b"C21", b"C16")}
    )
    files = {
        "/ae.7z": (
            admin_express_7z,
            "application/x-7z-compressed",
            "7z",
            ["*/COMMUNE.*"],
        ),
        "/epci.zip": (epci_zip, "application/zip", "zip", [EPCI_XLSX]),
        "/flux2021.zip": (flows_zip(), "application/zip", "zip", [FLOWS_CSV]),
        "/flux2016.zip": (previous, "application/zip", "zip", ["*.csv"]),
        "/mvt.csv": (mvt, "text/csv", "csv", []),
    }
    catalogue = []
    for path, (body, content_type, fmt, members) in files.items():
        server.expect_request(path).respond_with_handler(
            serve_file(body, etag=f'"{sha256(body)[:12]}"', content_type=content_type)
        )
        name = path.strip("/").replace(".", "_")
        members_line = f"members = {json.dumps(members)}\n" if members else ""
        catalogue.append(
            f'[sources.{name}]\ntitle = "{name}"\npublisher = "test"\nurl = "{server.url_for(path)}"\n'
            f'format = "{fmt}"\n{members_line}licence = "Licence Ouverte"\n'
        )
    (tmp_path / "catalogue.toml").write_text("\n".join(catalogue), encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        '[sources]\ncatalogue = "catalogue.toml"\ncache_dir = "cache"\n'
        "[inputs]\n"
        'communes = { source = "ae_7z", member = "COMMUNE.shp" }\n'
        'epci_composition = { source = "epci_zip" }\n'
        'flows = { source = "flux2021_zip" }\n'
        'flows_previous = { source = "flux2016_zip" }\n'
        'commune_passage = { source = "mvt_csv" }\n'
        "geography = 2023\n",
        encoding="utf-8",
    )
    assert main(["sources", "--config", str(config), "-q"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("not cached") == 5
    assert server.url_for("/ae.7z") in listing

    assert main(["fetch", "--config", str(config), "-q"]) == 0
    first = capsys.readouterr().out
    assert first.count("downloaded") == 5
    assert "COMMUNE.shp ->" in first
    assert main(["fetch", "--config", str(config), "-q"]) == 0
    assert capsys.readouterr().out.count("up_to_date") == 5

    server.clear()  # from now on any request would fail
    out = tmp_path / "out"
    assert (
        main(["run", "--config", str(config), "--offline", "--output", str(out), "-q"])
        == 0
    )
    assert server.log == []
    manifest = json.loads(
        (out / "latest" / "manifest.json").read_text(encoding="utf-8")
    )
    flows_input = next(i for i in manifest["inputs"] if i["role"] == "flows")
    assert flows_input["source"] == "flux2021_zip"
    assert flows_input["provenance"]["url"] == server.url_for("/flux2021.zip")
    assert flows_input["provenance"]["sha256"] == sha256(flows_zip())
    assert (
        manifest["flows"]["unmatched_origin_workers"] == 0
    )  # 01999 harmonised to 01001
    assert manifest["harmonisation"]["flows"]["codes_mapped"] == {"01999": "01001"}
    assert (manifest["flows_vintage"], manifest["previous_vintage"]) == (2021, 2016)
    assert main(["sources", "--config", str(config), "-q"]) == 0
    assert capsys.readouterr().out.count("; cached ") == 5

    for part in (tmp_path / "cache" / "flux2021_zip").glob("*.zip"):
        part.unlink()
    assert (
        main(
            [
                "run",
                "--config",
                str(config),
                "--offline",
                "--output",
                str(tmp_path / "o2"),
                "-q",
            ]
        )
        == 1
    )
    assert (
        "observatory run failed at stage 'fetch' (source flux2021_zip): not in the cache"
        in capsys.readouterr().err
    )
