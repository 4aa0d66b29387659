"""The shipped national configs, run from a local mirror of every file they name.

``configs/france.toml`` (RP 2023, geography 2026), ``configs/france-rp2022.toml``
(RP 2022, geography 2025) and ``configs/overseas.toml`` run with
``configs/sources.toml`` as shipped: only the host of every URL changes, and the
pins of the real files are dropped. A loopback HTTP server serves each source at
its catalogue path, built in the real layout of the file:

- ADMIN EXPRESS COG CARTO 4-0 (2026): a GeoPackage deep inside a 7z, lower-case
  layers ``commune``, ``arrondissement_municipal``, ``epci`` and fields
  (``code_insee``, ``nom_officiel``, ``codes_siren_des_epci`` with ``NR`` for no
  EPCI), geometry column ``geometrie``;
- ADMIN EXPRESS COG CARTO 3-2 (2025): shapefiles ``COMMUNE``, ``EPCI``
  (``ARRONDISSEMENT_MUNICIPAL`` for mainland France) deep inside a 7z, upper-case
  fields;
- INSEE's EPCI composition: an xlsx in a zip, sheets ``EPCI`` and
  ``Composition_communale``, header on row 6 under INSEE's title block, an island
  in no EPCI written ``ZZZZZZZZZ`` / "Sans objet";
- INSEE's base flux: one ``;``-separated CSV (UTF-8 with a byte-order mark,
  decimal counts) in a zip, column ``NBFLUX_Cyy_ACTOCC15P``;
- INSEE's COG events ``v_mvt_commune_YYYY.csv``: every field quoted, commas.

Every file is in the geography its catalogue entry states: the fixture's communes
change twice (01999 joins 01001 on 1 January 2022, 01003 joins 01002 on 1 January
2026), so a flows file in the geography of 2021 uses both old codes, one in 2025
only 01003, one in 2026 neither; the events files hold the events up to 1 January
of their year. The archive names, folders and edition of each IGN file are read
from its catalogue URL, so the mirror follows the catalogue; the builders of the
files are in conftest.py.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import geopandas as gpd
import pytest
from conftest import (
    COMMUNE_ROWS,
    EPCI_ROWS,
    NO_EPCI_CODE,
    admin_express_3_2,
    admin_express_4_0,
    base_flux_zip,
    edition,
    epci_zip,
    events_csv,
)
from pytest_httpserver import HTTPServer
from shapely import affinity
from shapely.geometry import box
from werkzeug import Request, Response

from observatory.cli import main
from observatory.config import configs_dir
from observatory.geography import TERRITORY_CRS

M, E1 = EPCI_ROWS[0][0], EPCI_ROWS[1][0]
#: Lambert-93 offset that moves the fixture's communes to Lyon.
LYON = (840_000.0, 6_510_000.0)
#: The fixture's two communes nouvelles: (1 January of, old code, new code).
MERGERS = ((2022, "01999", "01001"), (2026, "01003", "01002"))
#: An island in no EPCI (INSEE: ZZZZZZZZZ "Sans objet"; ADMIN EXPRESS: NR).
ISLAND = (
    "29083",
    "Île-de-Sein",
    NO_EPCI_CODE,
    box(148_000, 6_800_000, 150_000, 6_802_000),
)
#: La Réunion in the France-wide editions: two communes, one EPCI, no pole.
REU_EPCI = ("249740119", "CA Intercommunale du Nord de la Réunion", "CA")
REU_LONLAT = (55.45, -20.88)
#: Saint-Pierre-et-Miquelon: in the France-wide ADMIN EXPRESS (department NR),
#: outside the territories of the composition and the census.
SAINT_PIERRE = (
    "97502",
    "Saint-Pierre",
    NO_EPCI_CODE,
    box(-500_000, 0, -499_000, 1_000),
)


# --------------------------------------------------------------------- the fixture's France
def _lonlat_squares(lon: float, lat: float) -> list:
    """Two side-by-side squares of 0.05° at (lon, lat), given in EPSG:2154 like
    every polygon here (the builders project them to each edition's CRS)."""
    return list(
        gpd.GeoSeries(
            [
                box(lon, lat, lon + 0.05, lat + 0.05),
                box(lon + 0.05, lat, lon + 0.1, lat + 0.05),
            ],
            crs="EPSG:4326",
        ).to_crs("EPSG:2154")
    )


def mainland(geography: int) -> list[tuple]:
    """The mainland communes of 1 January ``geography`` (code, name, EPCI, polygon
    in EPSG:2154): conftest's Lyon territory, with 01003 beside 01002 before 2026,
    and an island in no EPCI."""
    assert geography >= 2022, "01999 has no polygon: it merged in 2022"
    rows = []
    for code, name, epci, polygon in COMMUNE_ROWS:
        polygon = affinity.translate(polygon, *LYON)
        if code == "01002" and geography < 2026:
            west, south, east, north = polygon.bounds
            middle = (west + east) / 2
            rows.append((code, name, epci, box(west, south, middle, north)))
            rows.append(
                ("01003", "Ancienne-Commune", E1, box(middle, south, east, north))
            )
            continue
        rows.append((code, name, epci, polygon))
    return [*rows, ISLAND]


def reunion() -> list[tuple]:
    """Two communes of La Réunion in one EPCI, as the France-wide editions hold them."""
    west, east = _lonlat_squares(*REU_LONLAT)
    return [
        ("97411", "Saint-Denis", REU_EPCI[0], west),
        ("97418", "Sainte-Marie", REU_EPCI[0], east),
    ]


def alive(code: str, geography: int) -> bool:
    """Whether commune ``code`` exists on 1 January ``geography``."""
    return all(not (old == code and geography >= year) for year, old, _ in MERGERS)


def flow_rows(geography: int) -> list[tuple[str, str, str]]:
    """Base-flux rows in the codes of ``geography``: Lyon by arrondissement, one
    flow abroad, decimal counts; the merged communes' flows under their old codes
    while they exist."""
    rows = [
        ("69381", "69266", "50.4"),
        ("69266", "69266", "200"),
        ("01001", "69385", "300.25"),
        ("01002", "01001", "400"),
        ("01001", "38001", "100"),
        ("69266", "01002", "60"),
        ("38001", "38001", "500"),
        ("38001", "69123", "250.7"),
        ("01002", "99140", "20"),  # Suisse
        ("97411", "97411", "80"),
        ("97418", "97411", "40.5"),
        ("01999", "69266", "30"),
        ("38001", "01999", "10"),
        ("01003", "69266", "35.1"),
        ("69266", "01003", "5"),
    ]
    return [r for r in rows if alive(r[0], geography) and alive(r[1], geography)]


def events(geography: int) -> list[tuple]:
    """INSEE's events up to 1 January ``geography``: each commune nouvelle as INSEE
    writes it (the absorbed commune becomes déléguée and joins the new one, whose
    chef-lieu keeps its code)."""
    rows = []
    for year, old, new in MERGERS:
        if year > geography:
            continue
        when = f"{year}-01-01"
        rows += [
            ("32", when, "COM", old, "Ancienne", "COMD", old, "Ancienne"),
            ("32", when, "COM", old, "Ancienne", "COM", new, "Nouvelle"),
            ("32", when, "COM", new, "Nouvelle", "COMD", new, "Nouvelle"),
            ("32", when, "COM", new, "Nouvelle", "COM", new, "Nouvelle"),
        ]
    return rows


# --------------------------------------------------------------------- the mirror
@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to 127.0.0.1 only."""


def catalogue() -> dict[str, dict]:
    """The shipped catalogue's entries, by source id."""
    return tomllib.loads((configs_dir() / "sources.toml").read_text("utf-8"))["sources"]


def shipped_inputs(config_name: str) -> dict[str, list[dict]]:
    """The catalogue references of a shipped config, by role (a list for each)."""
    inputs = tomllib.loads((configs_dir() / config_name).read_text("utf-8"))["inputs"]
    return {
        role: value if isinstance(value, list) else [value]
        for role, value in inputs.items()
        if isinstance(value, (dict, list))
    }


def _serve(body: bytes | None, tag: str):
    def handler(request: Request) -> Response:
        if body is None:
            return Response("Not Found", status=404, content_type="text/html")
        return Response(
            body, headers={"ETag": f'"{tag}"'}, content_type="application/octet-stream"
        )

    return handler


def mirror(server: HTTPServer, folder: Path, config_name: str, bodies: dict) -> Path:
    """Serve ``bodies`` (source id -> bytes, None for a 404) at the shipped
    catalogue's paths; return the shipped config pointed at a copy of the catalogue
    whose only changes are the host and the pins of the real files."""
    lines = []
    for source_id, entry in catalogue().items():
        path = urlsplit(entry["url"]).path
        if source_id in bodies:
            server.expect_request(path).respond_with_handler(
                _serve(bodies[source_id], source_id)
            )
        fields = {k: v for k, v in entry.items() if k not in ("sha256", "size", "md5")}
        fields["url"] = server.url_for(path)
        lines.append(f"[sources.{source_id}]")
        lines += [
            f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items()
        ]
    (folder / "mirror.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = folder / config_name
    config.write_text(
        (configs_dir() / config_name)
        .read_text("utf-8")
        .replace(
            "[run]",
            '[sources]\ncatalogue = "mirror.toml"\ncache_dir = "cache"\n\n[run]',
        ),
        encoding="utf-8",
    )
    return config


def fetch_and_run(config: Path, out: Path) -> dict:
    """``observatory fetch`` then ``observatory run --offline``; the manifest."""
    assert main(["fetch", "--config", str(config), "-q"]) == 0
    assert (
        main(["run", "--config", str(config), "--offline", "--output", str(out), "-q"])
        == 0
    )
    return json.loads((out / "latest" / "manifest.json").read_text("utf-8"))


def assert_input_geographies(manifest: dict) -> None:
    """Every input of the manifest states the geography of its catalogue entry."""
    entries = catalogue()
    found = {(i["role"], i["source"], i.get("geography")) for i in manifest["inputs"]}
    assert found == {
        (role, source, entries[source]["geography"]) for role, source, _ in found
    }


def national_bodies(folder: Path, config_name: str) -> dict[str, bytes]:
    """Every source a national config names, in its real layout and geography.

    Composition and flows are national (La Réunion included); a France-wide
    edition of ADMIN EXPRESS holds La Réunion and Saint-Pierre (outside every
    territory) beside the mainland, a mainland one the mainland only."""
    entries, bodies = catalogue(), {}
    epci_rows = [*EPCI_ROWS, REU_EPCI]
    for role, refs in shipped_inputs(config_name).items():
        for ref in refs:
            source_id = ref["source"]
            entry = entries[source_id]
            geography, url = entry["geography"], entry["url"]
            where = folder / source_id
            where.mkdir()
            if role == "communes":
                rows = mainland(geography)
                if "_FRA_" in url:
                    rows += [*reunion(), SAINT_PIERRE]
                build = admin_express_4_0 if "_4-0__" in url else admin_express_3_2
                bodies[source_id] = build(where, url, rows, epci_rows)
            elif role == "epci_composition":
                member, communes = entry["members"][0], mainland(geography) + reunion()
                bodies[source_id] = epci_zip(
                    where, member, geography, epci_rows, communes
                )
            elif role in ("flows", "flows_previous"):
                rows = flow_rows(geography)
                bodies[source_id] = base_flux_zip(entry["vintage"], rows)
            elif role == "commune_passage":
                bodies[source_id] = events_csv(events(geography))
    return bodies


# --------------------------------------------------------------------- the tests
@pytest.mark.parametrize(
    ("config_name", "geography", "vintages", "mapped"),
    [
        ("france.toml", 2026, (2023, 2018), {"01999": "01001", "01003": "01002"}),
        ("france-rp2022.toml", 2025, (2022, 2017), {"01999": "01001"}),
    ],
    ids=["france-rp2023", "france-rp2022"],
)
def test_shipped_national_config_runs_from_a_local_mirror(
    server, tmp_path, capsys, config_name, geography, vintages, mapped
):
    """A national config and the catalogue as shipped, the hosts aside.

    Every source the config names is served in its real layout and in the
    geography its catalogue entry states; fetch then run offline succeed, every
    code is matched (the older census through the events file), and the manifest
    records each input's source and geography.
    """
    bodies = national_bodies(tmp_path, config_name)
    config = mirror(server, tmp_path, config_name, bodies)
    manifest = fetch_and_run(config, tmp_path / "out")
    assert capsys.readouterr().out.count("downloaded") == len(bodies)

    assert manifest["geography"] == geography
    assert (manifest["flows_vintage"], manifest["previous_vintage"]) == vintages
    assert {i["source"] for i in manifest["inputs"]} == set(bodies)
    harmonisation = manifest["harmonisation"]
    assert harmonisation["flows"]["codes_mapped"] == {}  # already in `geography`
    assert harmonisation["flows_previous"]["codes_mapped"] == mapped
    assert manifest["flows"]["unmatched_workers"] == 0
    assert [s["metropole_code"] for s in manifest["systems"]] == [M]
    epci = gpd.read_parquet(tmp_path / "out" / "latest" / "epci_indicators.parquet")
    communes_of_e1 = 2 if geography >= 2026 else 3  # 01003 merged on 1 January 2026
    assert epci.set_index("epci_code").at[E1, "n_communes"] == communes_of_e1
    assert_input_geographies(manifest)


# The five overseas departments of configs/overseas.toml: a point (lon, lat), the
# pole's SIREN and the department's code.
DROM = {
    "GLP": ((-61.53, 16.24), "200018653", "971"),
    "MTQ": ((-61.07, 14.61), "249720061", "972"),
    "GUF": ((-52.33, 4.93), "249730045", "973"),
    "REU": ((55.45, -20.88), "249740119", "974"),
    "MYT": ((45.23, -12.78), "200060457", "976"),
}


def overseas() -> tuple[dict[str, list[tuple]], list[tuple], list[tuple]]:
    """Each department's two communes (a pole and its neighbour, each in its own
    EPCI), the EPCI rows, and the flows (40 of the neighbour's 40 workers go to
    the pole)."""
    communes, epci_rows, flows = {}, [], []
    for i, (territory, (lonlat, pole, dep)) in enumerate(DROM.items()):
        other = f"20009990{i}"
        squares = _lonlat_squares(*lonlat)
        communes[territory] = [
            (f"{dep}01", "Pôle", pole, squares[0]),
            (f"{dep}02", "Voisine", other, squares[1]),
        ]
        epci_rows += [
            (pole, f"CA pôle {territory}", "CA"),
            (other, f"CC {territory}", "CC"),
        ]
        flows += [(f"{dep}01", f"{dep}01", "100"), (f"{dep}02", f"{dep}01", "40")]
    return communes, epci_rows, flows


def overseas_bodies(folder: Path, unreachable: str | None) -> dict[str, bytes | None]:
    """Every source configs/overseas.toml names: one archive per department in its
    CRS (``unreachable``'s answers 404), the France-wide WGS84 fallback with every
    commune (mainland ones too), and national composition and flows."""
    entries, bodies = catalogue(), {}
    communes, epci_rows, drom_flows = overseas()
    inputs = shipped_inputs("overseas.toml")
    geography = entries[inputs["epci_composition"][0]["source"]]["geography"]
    national = mainland(geography) + [r for rows in communes.values() for r in rows]
    epci_rows = [*EPCI_ROWS, *epci_rows]
    for ref in inputs["communes"]:
        source_id, fallback = ref["source"], ref["fallback"]
        territory = edition(entries[source_id]["url"])[0].split("__")[1].split("_")[2]
        where = folder / source_id
        where.mkdir()
        primary = admin_express_3_2(
            where, entries[source_id]["url"], communes[territory], epci_rows
        )
        bodies[source_id] = None if territory == unreachable else primary
        if fallback not in bodies:
            (folder / fallback).mkdir()
            url = entries[fallback]["url"]
            bodies[fallback] = admin_express_3_2(
                folder / fallback, url, national, epci_rows
            )
    composition = inputs["epci_composition"][0]["source"]
    (folder / composition).mkdir()
    member = entries[composition]["members"][0]
    bodies[composition] = epci_zip(
        folder / composition, member, geography, epci_rows, national
    )
    for role in ("flows", "flows_previous"):
        entry = entries[inputs[role][0]["source"]]
        rows = [r for r in flow_rows(entry["geography"]) if not r[0].startswith("97")]
        bodies[inputs[role][0]["source"]] = base_flux_zip(
            entry["vintage"], rows + drom_flows
        )
    passage = inputs["commune_passage"][0]["source"]
    bodies[passage] = events_csv(events(entries[passage]["geography"]))
    return bodies


@pytest.mark.parametrize("unreachable", [None, "MYT"], ids=["own-archives", "fallback"])
def test_shipped_overseas_config_runs_from_a_local_mirror(
    server, tmp_path, unreachable
):
    """configs/overseas.toml: each department in its own CRS, from its own archive,
    or from the France-wide WGS84 archive when one of the five answers 404.

    With the five archives, only the overseas systems are built; with the
    fallback, the France-wide archive replaces the five and the mainland
    métropole comes too. Either way every department's layers are written in its
    official CRS.
    """
    bodies = overseas_bodies(tmp_path, unreachable)
    config = mirror(server, tmp_path, "overseas.toml", bodies)
    out = tmp_path / "out"
    manifest = fetch_and_run(config, out)

    read = {i["source"] for i in manifest["inputs"] if i["role"].startswith("communes")}
    refs = shipped_inputs("overseas.toml")["communes"]
    used = "fallback" if unreachable else "source"
    assert read == {ref[used] for ref in refs}
    systems = {s["territory"]: s["metropole_code"] for s in manifest["systems"]}
    expected = {territory: pole for territory, (_, pole, _) in DROM.items()}
    if unreachable:
        expected["FXX"] = M
    assert systems == expected
    assert manifest["flows"]["unmatched_workers"] == 0
    for territory, (_, pole, _) in DROM.items():
        layer = gpd.read_parquet(
            out / "latest" / f"epci_indicators_{territory}.parquet"
        )
        assert layer.crs == TERRITORY_CRS[territory], territory
        crowns = layer.set_index("epci_code")["crown"]
        assert crowns[pole] == 0
        assert sorted(crowns) == [0, 1]
        assert layer.loc[layer["crown"] == 1, "dependence_share"].iloc[0] == 1.0
    assert (out / "latest" / "epci_indicators.parquet").exists() == bool(unreachable)
    assert_input_geographies(manifest)
