"""The run report (report.html): self-contained, French, complete, and readable in a browser.

Built from the demo's published run folder read back (GeoParquet layers, flow
matrix, manifest.json), as a user's copy of the folder would give it. The last
test opens the page in headless Chromium when it is installed (``apt-get install
chromium``) and skips otherwise.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from observatory.cli import main
from observatory.config import ClassRule, configs_dir, load_classification
from observatory.geography import MAINLAND
from observatory.layers.build import TERRITORY_LAYERS
from observatory.report.html import CSP, report_html
from observatory.report.html_format import (
    esc,
    fr_count,
    fr_datetime,
    fr_percent,
    fr_points,
    rule_fr,
)
from observatory.report.html_sections import short_name

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def png(width: int = 4, height: int = 3, rgb=(200, 30, 30)) -> bytes:
    """A small opaque PNG written with zlib and struct only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def read_run(run: Path):
    """Read a run folder back: layers by territory and name, matrix, manifest."""
    layers: dict[str, dict[str, gpd.GeoDataFrame]] = {}
    for path in sorted(run.glob("*.parquet")):
        for name in TERRITORY_LAYERS:
            if path.stem == name or path.stem.startswith(f"{name}_"):
                if path.stem == "flow_matrix":
                    continue
                territory = path.stem[len(name) + 1 :] or MAINLAND
                layers.setdefault(territory, {})[name] = gpd.read_parquet(path)
    matrix = pd.read_parquet(run / "flow_matrix.parquet")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return layers, matrix, manifest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's run folder read back, and its classification rules."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", "--output", str(out), "-q"]) == 0
    layers, matrix, manifest = read_run(out / "latest")
    rules = load_classification(configs_dir() / "classification.toml")
    return layers, matrix, manifest, rules


@pytest.fixture(scope="module")
def images(demo):
    """A tiny PNG for every map and chart of the demo's métropoles."""
    codes = demo[0][MAINLAND]["metropoles"]["metropole_code"]
    keys = [
        key
        for code in codes
        for key in (
            f"maps/{code}.png",
            f"charts/{code}_dependance.png",
            f"charts/{code}_flux.png",
            f"maps/{code}_sols.png",  # the land-use panel (issue 14)
        )
    ]
    return {key: png(rgb=(40 + 5 * i, 90, 160)) for i, key in enumerate(keys)}


@pytest.fixture(scope="module")
def page(demo, images):
    layers, matrix, manifest, rules = demo
    return report_html(layers, matrix, manifest, rules, images)


class Rows(HTMLParser):
    """Collect the cells of the EPCI tables, by métropole section id."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.in_table = self.in_body = False
        self.rows: dict[str, list[list[str]]] = {}
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id")
        elif tag == "table":
            self.in_table = attrs.get("class") == "epci"
        elif tag == "tbody" and self.in_table:
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.setdefault(self.section, []).append([])
        elif tag == "td" and self.in_body:
            self.cell = []
        elif tag in {"br", "small"} and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_table = self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.rows[self.section][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def epci_rows(page: str) -> dict[str, list[list[str]]]:
    parser = Rows()
    parser.feed(page)
    return parser.rows


def test_the_page_needs_nothing_but_itself(page):
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in page
    for external in ('src="http', "@import", "url(", "<script", "<link", "<iframe"):
        assert external not in page, external
    # Every image is inline; links to the web are plain anchors (sources), never assets.
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert sources, "the maps and charts are embedded"
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert set(re.findall(r'<(\w+)[^>]*\bhref="https?:', page)) <= {"a"}
    assert f'content="{CSP}"' in page
    assert "default-src 'none'" in CSP


def test_every_metropole_has_a_section_and_an_index_entry(demo, page):
    metropoles = demo[0][MAINLAND]["metropoles"]
    for code, name in zip(
        metropoles["metropole_code"], metropoles["metropole_name"], strict=True
    ):
        assert page.count(f'id="m-{code}"') == 1
        assert f'href="#m-{code}"' in page
        assert name in page
    sections = re.findall(r'<section id="m-(\d{9})"', page)
    assert sorted(sections) == sorted(metropoles["metropole_code"])
    # Index order: by place name (Brest, Nantes, Rennes).
    names = re.findall(r'<a href="#m-\d{9}">\d+\. ([^<]+)</a>', page)
    assert names == ["Brest Métropole", "Nantes Métropole", "Rennes Métropole"]


def test_the_epci_tables_match_the_layer(demo, page):
    epci = demo[0][MAINLAND]["epci_indicators"]
    rows = epci_rows(page)
    crowns = {0: "Métropole", 1: "1re couronne", 2: "2e couronne"}
    # The EPCI of the contiguity crowns; the hidden crown (crown null) is listed
    # where the rules disagree (test_the_flow_systems_are_reported).
    epci = epci[epci["crown"].notna()].astype({"crown": int})
    for code, part in epci.groupby("metropole_code"):
        table = rows[f"m-{code}"]
        assert len(table) == len(part)
        by_siren = {re.search(r"SIREN (\d{9})", r[0])[1]: r for r in table}
        assert set(by_siren) == set(part["epci_code"])
        for row in part.itertuples():
            cells = by_siren[row.epci_code]
            assert cells[1] == crowns[row.crown]
            assert cells[2] == row.epci_class_label
            assert cells[6] == fr_percent(row.dependence_share).replace("\u00a0", " ")
            if row.crown > 0:
                assert cells[4] == fr_count(row.employed_residents).replace(
                    "\u202f", " "
                )
        # Crown by crown, the métropole first.
        order = {label: k for k, label in crowns.items()}
        shown = [order[r[1]] for r in table]
        assert shown == sorted(shown)
        assert shown[0] == 0


def test_rules_are_said_in_french_with_the_values_they_tested(demo, page):
    epci = demo[0][MAINLAND]["epci_indicators"]
    rules = set(epci["class_rule"])
    assert "dependence_share >= 0.15 and reciprocity >= 0.25" in rules
    row = epci[epci["class_rule"].str.contains("reciprocity")].iloc[0]
    said = rule_fr(row["class_rule"], row.to_dict())
    value = fr_percent(row["dependence_share"])
    assert said.startswith(f"dépendance\u00a0{value}\u00a0≥\u00a015\u00a0%")
    assert " et réciprocité\u00a0" in said
    # The rule as the table says it: one condition a line.
    assert "<br>et réciprocité" in page
    assert "dependence_share" not in page.split("<footer>")[0].split('id="sources"')[0]


def test_french_labels_and_numbers(demo, page):
    for label in (
        "Intégrée",
        "Interdépendante",
        "Polarisée",
        "Attirée par un autre pôle",
        "Autonome",
        "Peu liée",
        "Sans données",
        "1re\u00a0couronne",
        "Dépendance",
        "Autocontention",
        "Sommaire",
        "Sources et provenance",
        "Fiabilité",
    ):
        assert label in page, label
    brest = demo[0][MAINLAND]["metropoles"].iloc[0]
    assert fr_percent(brest["dependence_share_crown1"]) in page
    assert fr_percent(0.125) == "12,5\u00a0%"
    assert fr_count(1234567.4) == "1\u202f234\u202f567"
    assert fr_count(-1500) == "\u22121\u202f500"
    assert fr_points(0.0234) == "+2,3\u00a0pt"
    assert (
        fr_datetime("2026-11-01T08:05:00+00:00") == "1er novembre 2026 à 08 h 05 (UTC)"
    )
    assert rule_fr("otherwise").startswith("aucune des règles")
    assert rule_fr("crown == 0") == "la métropole elle-même"


def test_the_synthetic_notice_follows_the_manifest(demo, images, page):
    assert 'class="banner"' in page
    assert "DONNÉES SYNTHÉTIQUES" in page
    # Each métropole's flows, the land overview and each métropole's land block.
    assert page.count('class="synthetic-note"') == 3 + 1 + 3
    layers, matrix, manifest, rules = demo
    real = copy.deepcopy(manifest)
    real["synthetic_flows"] = False
    real["config"]["content"]["run"]["synthetic_flows"] = False
    for record in real["inputs"]:
        record.pop("synthetic", None)
        record["path"] = record["path"].replace("synthetic", "insee")
    # The demo's attraction areas are synthetic too: a real run reads INSEE's.
    real["flow_systems"]["aav"]["path"] = "AAV2020_au_01-01-2025.zip"
    # ... and its land rasters (GeoTIFF tag SYNTHETIC): a real run reads OSO, GHSL.
    for raster in real["land"]["rasters"]:
        raster["synthetic"] = False
    metropoles = layers[MAINLAND]["metropoles"]
    named = metropoles.assign(
        aav_name=metropoles["aav_name"].str.replace("Aire synthétique de ", "")
    )
    layers = {MAINLAND: {**layers[MAINLAND], "metropoles": named}}
    other = report_html(layers, matrix, real, rules, images)
    assert 'class="banner"' not in other
    assert "synthétique" not in other.lower()
    # Any one place saying so is enough.
    real["inputs"][-1]["synthetic"] = True
    assert "DONNÉES SYNTHÉTIQUES" in report_html(layers, matrix, real, rules, images)


def test_images_are_embedded_or_said_missing(demo, images, page):
    import base64

    for key, content in images.items():
        assert base64.b64encode(content).decode() in page, key
    assert "image non produite" not in page
    layers, matrix, manifest, rules = demo
    bare = report_html(layers, matrix, manifest, rules, {})
    assert "<img" not in bare
    assert bare.count("image non produite pour ce run") == 3 * 4


def test_change_between_vintages(demo, images, page):
    layers, matrix, manifest, rules = demo
    if manifest.get("previous_vintage") is None:
        assert page.count("Pas de millésime précédent") == 3
        assert "aucun millésime précédent" in page
    else:
        then, now = manifest["previous_vintage"], manifest["flows_vintage"]
        assert page.count(f"Évolution entre {then} et {now}") == 3
        assert "Pas de millésime précédent" not in page
    epci = layers[MAINLAND]["epci_indicators"].copy()
    epci["previous_vintage"] = 2016.0
    for name in (
        "employed_residents",
        "jobs",
        "flow_to_metropole",
        "flow_from_metropole",
    ):
        epci[f"{name}_previous"] = epci[name] * 0.9
        epci[f"{name}_change"] = epci[name] - epci[f"{name}_previous"]
    for name in ("dependence_share", "attraction_share", "self_containment_share"):
        epci[f"{name}_previous"] = epci[name] - 0.02
        epci[f"{name}_change"] = 0.02
    changed = dict(layers[MAINLAND], epci_indicators=epci)
    other = report_html({MAINLAND: changed}, matrix, manifest, rules, images)
    assert "Pas de millésime précédent" not in other
    assert other.count("Évolution entre 2016 et 2022") == 3
    assert "+2,0\u00a0pt" in other


def test_caveats_and_provenance(demo, page):
    layers, _, manifest, _ = demo
    assert "L&#x27;INSEE les tient pour fiables à partir de 500 actifs" in page
    metropoles = layers[MAINLAND]["metropoles"]
    for row in metropoles.itertuples():
        assert f"{row.n_flows_order_of_magnitude} sur {row.n_flows}" in page
        assert f"{row.n_flows_order_of_magnitude} à ne lire que comme" in page
    for record in manifest["inputs"]:
        assert record["sha256"][:12] in page
    for name in (
        "COMMUNE.shp",
        "EPCI_au_01-01-2025.xlsx",
        "demo-synthetic-base-flux-2022.zip",
    ):
        assert name in page
    assert manifest["run_id"] in page
    assert manifest["config"]["sha256"][:12] in page
    assert (
        "observatory 0.1.0" in page
        or f"observatory {manifest['package']['version']}" in page
    )
    for warning in manifest["warnings"]:
        assert warning.replace("'", "&#x27;") in page
    assert "au 1er janvier 2025" in page


def test_catalogue_inputs_say_where_and_when_they_were_fetched(demo, images):
    layers, matrix, manifest, rules = demo
    fetched = copy.deepcopy(manifest)
    fetched["inputs"][-1].update(
        source="insee_base_flux_2022",
        provenance={
            "url": "https://www.insee.fr/fr/statistiques/fichier/8589945/base-flux.zip",
            "fetched_at": "2026-03-02T09:15:00+00:00",
            "licence": "Licence Ouverte 2.0",
        },
    )
    other = report_html(layers, matrix, fetched, rules, images)
    assert (
        '<a href="https://www.insee.fr/fr/statistiques/fichier/8589945/base-flux.zip">'
        in other
    )
    assert "téléchargé le 2 mars 2026 à 09 h 15 (UTC)" in other
    assert "Licence Ouverte 2.0" in other


def test_every_value_is_escaped(demo, images):
    layers, matrix, manifest, rules = demo
    hostile = "<script>alert('x')</script> & Cie"
    epci = layers[MAINLAND]["epci_indicators"].copy()
    epci.loc[epci.index[1], "epci_name"] = f"Communauté de communes {hostile}"
    evil = copy.deepcopy(manifest)
    evil["warnings"] = [*evil["warnings"], hostile]
    evil["config"]["content"]["run"]["name"] = hostile
    evil["files"] = [*evil["files"], "javascript:alert(1)", "/etc/passwd"]
    other = report_html(
        {MAINLAND: dict(layers[MAINLAND], epci_indicators=epci)},
        matrix,
        evil,
        rules,
        images,
    )
    assert "<script" not in other
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Cie" in other
    assert 'href="javascript' not in other
    assert "/etc/passwd" not in other


def test_a_custom_classification_gets_its_labels(demo, images):
    layers, matrix, manifest, rules = demo
    custom = type(rules)(
        rules=(*rules.rules[:-1], ClassRule("a_part", "À part <custom>", ())),
        source=rules.source,
    )
    epci = layers[MAINLAND]["epci_indicators"].copy()
    fallback = epci["epci_class"] == rules.rules[-1].class_code
    epci.loc[fallback, "epci_class"] = "a_part"
    epci.loc[fallback, "epci_class_label"] = "À part <custom>"
    other = report_html(
        {MAINLAND: dict(layers[MAINLAND], epci_indicators=epci)},
        matrix,
        manifest,
        custom,
        images,
    )
    assert "À part &lt;custom&gt;" in other
    assert "Peu liée" not in other


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_chromium_renders_the_report(page, tmp_path):
    """Headless Chromium draws a page that is not blank, with no console message."""
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Offline: no name resolves, so nothing the page asked for could load.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    done = subprocess.run(
        [
            CHROMIUM,
            *flags,
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    for bad in ("Uncaught", "Failed to load resource", "Content Security Policy"):
        assert bad not in done.stderr
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    ink = (pixels < 0.9).any(axis=2)
    assert ink.mean() > 0.03, "the screenshot is almost blank"
    # The banner's yellow is drawn (the notice is visible, not only in the DOM).
    yellow = (np.abs(pixels - np.array([1.0, 0.953, 0.804])) < 0.02).all(axis=2)
    assert yellow.sum() > 10_000
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 'id="sommaire"' in dom.stdout
    assert dom.stdout.count('class="metropole"') == 3


def test_overseas_systems_come_after_the_mainland(demo, images):
    layers, matrix, manifest, rules = demo
    brest = "242900314"
    reunion = "249740119"
    copied = {}
    for name, frame in layers[MAINLAND].items():
        if "metropole_code" not in frame:
            continue  # dominant_flows: the territory's, no system's
        part = frame[frame["metropole_code"] == brest].copy()
        part["metropole_code"] = reunion
        if "metropole_name" in part:
            part["metropole_name"] = "CINOR"
        copied[name] = part
    rows = matrix[matrix["metropole_code"] == brest].assign(metropole_code=reunion)
    both = {"REU": copied, MAINLAND: layers[MAINLAND]}
    other = report_html(both, pd.concat([matrix, rows]), manifest, rules, images)
    names = re.findall(r'<a href="#m-\d{9}">\d+\. ([^<]+)</a>', other)
    assert names[-1] == "CINOR"
    assert len(names) == 4
    assert "<th>Territoire</th>" in other
    assert "La Réunion" in other
    assert f'id="m-{reunion}"' in other


def test_the_header_and_the_files_of_the_run(demo, images, page):
    layers, matrix, manifest, rules = demo
    assert "RP 2022 (flux domicile-travail)" in page
    assert "communes et EPCI au 1er janvier 2025" in page
    assert fr_datetime(manifest["started"]) in page
    # The files of the folder are linked relatively (the folder can be moved).
    for name in manifest["files"]:
        if name.endswith(".qml") or name.startswith(("maps/", "charts/")):
            assert f'href="{name}"' not in page  # styles; images shown in place
        elif name == "report.html":
            continue  # the page itself
        else:
            assert f'<a href="{name}"><code>{name}</code></a>' in page
    with_atlas = report_html(
        layers, matrix, manifest, rules, {**images, "atlas.pdf": b"%PDF-1.4"}
    )
    assert '<a href="atlas.pdf"><code>atlas.pdf</code></a>' in with_atlas
    assert "JVBERi0xLjQ" not in with_atlas  # the PDF is linked, never embedded
    detailed = copy.deepcopy(manifest)
    detailed["fd_mobpro"] = {"read": {"vintage": 2021}}
    other = report_html(layers, matrix, detailed, rules, images)
    assert "RP 2021 (modes de transport et distances)" in other


def test_modal_split_when_the_detailed_file_was_read(demo, page):
    layers = demo[0]
    epci = layers[MAINLAND]["epci_indicators"]
    if epci["to_metropole_car_share"].notna().any():
        assert page.count('<th>Couronne</th><th class="num">') >= 3
        assert "Voiture, camion, fourgonnette" in page
        assert "n'est pas lu dans ce run" not in page
    else:
        assert page.count("le fichier détail MOBPRO n&#x27;est pas lu") == 3


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_the_flow_systems_are_reported(demo, page):
    layers = demo[0][MAINLAND]
    epci, metropoles = layers["epci_indicators"], layers["metropoles"]
    # "Lire ce rapport" says what the new words mean.
    guide = _section(page, "lire")
    for term in (
        "Couronne cachée",
        "Membre nominal",
        "Flux dominant",
        "Aire d'attraction",
    ):
        assert f"<dt>{esc(term)}</dt>" in guide, term
    # One table of every métropole: contiguity, flows and the AAV side by side.
    overview = _section(page, "flux-et-contiguite")
    assert overview.count('href="#m-') == len(metropoles)
    assert "Recouvrement contiguïté / aire" in overview
    assert "crown_rule = « contiguity »" in overview
    assert esc("Aires d'attraction SYNTHÉTIQUES") in overview
    # Each section lists where the rules disagree: hidden crown and nominal members.
    for code, part in epci.groupby("metropole_code"):
        section = _section(page, f"m-{code}")
        block = section[section.index("Contiguïté, flux dominants") :]
        table = block[block.index('class="divergences"') : block.index("</table>")]
        flagged = part[part["hidden_crown"] | part["nominal_member"]]
        assert table.count("<tr>") - 1 == len(flagged), code  # header row
        for row in flagged.itertuples():
            assert esc(short_name(row.epci_name)) in table, row.epci_name
        hidden = part[part["hidden_crown"]]
        assert table.count("Flux seuls (couronne cachée)") == len(hidden)
        assert "Flux dominants (la métropole : pôle dominant" in block
        name = metropoles.loc[metropoles["metropole_code"] == code, "aav_name"].iloc[0]
        assert esc(f"Aire d'attraction de la métropole : {name}") in block
