"""The run's QGIS project: its XML, then opened, moved and printed in a real QGIS.

The project (``observatory.qgz``) is written without QGIS; the tests below the
line open it in Debian's QGIS 3.22 (tests/qgis_project_probe.py, run by
``/usr/bin/python3`` offscreen, as tests/test_qgis.py does) and skip when QGIS
is absent.
"""

import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from observatory.cli import main
from observatory.config import configs_dir, load_config
from observatory.core.errors import OutputError
from observatory.layers.files import run_files
from observatory.layers.geopackage import GEOPACKAGE_NAME, write_geopackage
from observatory.layers.land_schemas import EPCI_LAND_FIELDS, METROPOLE_LAND_FIELDS
from observatory.layers.qgis_maplayer import DOMINANT_GROUP
from observatory.layers.qgis_project import (
    OVERVIEW_GROUP,
    PROJECT_ENTRY,
    PROJECT_NAME,
    SYNTHETIC_NOTICE,
    project_document,
    qgis_project,
    sources_text,
    validate_project,
)
from observatory.layers.styles import class_colours, layer_styles

SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("qgis_project_probe.py")
ENV = os.environ | {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
LAYERS = ("epci_indicators", "flows", "metropoles", "dominant_flows")
#: A pole of La Réunion made for the tests (Brest's system moved there).
REU_CODE, REU_NAME = "249740119", "CA Test de La Réunion"


def _read_layers(run: Path) -> dict:
    return {"FXX": {name: gpd.read_parquet(run / f"{name}.parquet") for name in LAYERS}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's run folder: (folder, its layers, manifest, config)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", "--output", str(out), "-q"]) == 0
    run = (out / "latest").resolve()
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    config = load_config(configs_dir() / "demo.toml")
    return run, _read_layers(run), manifest, config


def _project(layers, manifest, config) -> bytes:
    styles = layer_styles(config.classification, config.reliability)
    return qgis_project(GEOPACKAGE_NAME, layers, styles, manifest)


def _document(data: bytes) -> ET.Element:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [PROJECT_ENTRY]
        return ET.fromstring(archive.read(PROJECT_ENTRY))


def _groups(root: ET.Element) -> list[ET.Element]:
    return root.find("layer-tree-group").findall("layer-tree-group")


def _reunion(layers: dict) -> dict:
    """Return the demo's layers plus Brest's system moved to La Réunion (EPSG:2975)."""
    brest = "242900314"
    epci = layers["FXX"]["epci_indicators"]
    origin = epci[epci["metropole_code"] == brest].total_bounds[:2]
    codes = set(epci.loc[epci["metropole_code"] == brest, "epci_code"])
    moved = {}
    for name, frame in layers["FXX"].items():
        if "metropole_code" not in frame:  # dominant_flows: between Brest's EPCI
            inside = frame["origin_code"].isin(codes)
            rows = frame[inside & frame["destination_code"].isin(codes)].copy()
        else:
            rows = frame[frame["metropole_code"] == brest].copy()
            rows["metropole_code"], rows["metropole_name"] = REU_CODE, REU_NAME
        geometries = shapely.transform(
            rows.geometry.to_numpy(), lambda xy: xy - origin + (315e3, 7630e3)
        )
        moved[name] = gpd.GeoDataFrame(rows, geometry=geometries, crs=2975)
    return {**layers, "REU": moved}


# --- The document, without QGIS ---------------------------------------------


def test_a_zip_of_one_project_reading_the_geopackage_by_a_relative_path(demo):
    _, layers, manifest, config = demo
    data = _project(layers, manifest, config)
    assert data == _project(layers, manifest, config)  # same inputs, same bytes
    root = _document(data)
    sources = [e.text for e in root.iter("datasource")]
    assert sources
    assert all(s.startswith(f"./{GEOPACKAGE_NAME}|layername=") for s in sources)
    assert root.find("properties/Paths/Absolute").text == "false"
    assert root.find("projectCrs/spatialrefsys/authid").text == "EPSG:2154"


def test_one_group_per_metropole_first_shown_its_layers_filtered(demo):
    _, layers, manifest, config = demo
    root = _document(_project(layers, manifest, config))
    metropoles = layers["FXX"]["metropoles"].sort_values("metropole_name")
    groups = _groups(root)
    names = [g.get("name") for g in groups]
    assert names == [*metropoles["metropole_name"], DOMINANT_GROUP, OVERVIEW_GROUP]
    assert [g.get("checked") for g in groups[:2]] == ["Qt::Checked", "Qt::Unchecked"]
    assert [g.get("expanded") for g in groups[:2]] == ["1", "0"]
    for group, code in zip(groups, metropoles["metropole_code"], strict=False):
        children = group.findall("layer-tree-layer")
        stems = [c.get("source").split("|")[1] for c in children]
        assert stems == [
            f"layername={n}" for n in ("flows", "metropoles", "epci_indicators")
        ]
        for child in children:
            assert child.get("source").endswith(
                f"|subset=\"metropole_code\" = '{code}'"
            )
    themes = [p.get("name") for p in root.iter("visibility-preset")]
    assert themes == list(metropoles["metropole_name"])


def test_layers_carry_their_styles(demo):
    _, layers, manifest, config = demo
    root = _document(_project(layers, manifest, config))
    renderers = {
        m.findtext("id"): m.find("renderer-v2").get("type")
        for m in root.iter("maplayer")
        if m.find("renderer-v2") is not None
    }
    assert renderers["epci_indicators_242900314"] == "categorizedSymbol"
    assert renderers["flows_242900314"] == "RuleRenderer"
    assert renderers["metropoles_all"] == "singleSymbol"
    matrix = next(m for m in root.iter("maplayer") if m.findtext("id") == "flow_matrix")
    assert matrix.find("aliases") is not None


def _canonical(element: ET.Element) -> str:
    return ET.canonicalize(ET.tostring(element, encoding="unicode"), strip_text=True)


def test_layers_carry_their_whole_style_in_place(demo):
    _, layers, manifest, config = demo
    styles = layer_styles(config.classification, config.reliability)
    with zipfile.ZipFile(io.BytesIO(_project(layers, manifest, config))) as archive:
        text = archive.read(PROJECT_ENTRY).decode("utf-8")
    assert "<!--" not in text  # every style's mark replaced by its elements
    root = ET.fromstring(text)
    for layer_id, layer in [
        ("flows_242900314", "flows"),
        ("epci_indicators_242900314", "epci_indicators"),
        ("metropoles_all", "metropoles"),
        ("dominant_flows", "dominant_flows"),
        ("flow_matrix", "flow_matrix"),
    ]:
        maplayer = next(
            m for m in root.iter("maplayer") if m.findtext("id") == layer_id
        )
        tags = [child.tag for child in maplayer]
        copied = list(maplayer)[tags.index("flags") + 1 :]
        expected = list(ET.fromstring(styles[layer]))
        assert [_canonical(e) for e in copied] == [_canonical(e) for e in expected]


def test_atlas_layout_with_its_items_and_the_notice_when_synthetic(demo):
    _, layers, manifest, config = demo
    root = _document(_project(layers, manifest, config))
    layout = root.find("Layouts/Layout")
    assert layout.get("name") == "Atlas des métropoles"
    atlas = layout.find("Atlas")
    assert (atlas.get("enabled"), atlas.get("coverageLayer")) == ("1", "metropoles_all")
    assert atlas.get("pageNameExpression") == "metropole_name"
    ids = {item.get("id") for item in layout.findall("LayoutItem")}
    assert {"Titre", "Carte", "Légende", "Échelle", "Nord", "Sources"} <= ids
    texts = {i.get("id"): i.get("labelText") for i in layout.findall("LayoutItem")}
    assert texts["Avertissement"] == SYNTHETIC_NOTICE
    assert "2022" in texts["Sous-titre"]
    real = manifest | {"synthetic_flows": False, "config": {}, "inputs": []}
    layout = _document(_project(layers, real, config)).find("Layouts/Layout")
    assert "Avertissement" not in {i.get("id") for i in layout.findall("LayoutItem")}


def test_sources_name_the_census_the_composition_and_admin_express(demo):
    _, _, manifest, _ = demo
    text = sources_text(manifest)
    assert text.startswith("Sources : INSEE, RP 2022, base flux domicile-travail")
    assert "(SYNTHÉTIQUES)" in text
    assert "composition communale des EPCI au 1er janvier 2025" in text
    assert "IGN, ADMIN EXPRESS" in text
    assert manifest["run_id"] in text


def test_overseas_poles_grouped_in_their_crs_with_their_atlas(demo):
    _, layers, manifest, config = demo
    styles = layer_styles(config.classification, config.reliability)
    root = ET.fromstring(
        project_document(GEOPACKAGE_NAME, _reunion(layers), styles, manifest)
    )
    names = [g.get("name") for g in _groups(root)]
    assert names[-3:] == [f"{REU_NAME} (La Réunion)", DOMINANT_GROUP, OVERVIEW_GROUP]
    dominant = _groups(root)[-2].findall("layer-tree-layer")
    assert [c.get("id") for c in dominant] == ["dominant_flows", "dominant_flows_REU"]
    reunion = next(
        m for m in root.iter("maplayer") if m.findtext("id") == f"flows_REU_{REU_CODE}"
    )
    assert reunion.find("srs/spatialrefsys/authid").text == "EPSG:2975"
    assert "layername=flows_REU|" in reunion.findtext("datasource")
    layouts = root.findall("Layouts/Layout")
    assert [lay.get("name") for lay in layouts] == [
        "Atlas des métropoles",
        "Atlas des pôles (La Réunion)",
    ]
    card = next(i for i in layouts[1].findall("LayoutItem") if i.get("id") == "Carte")
    assert card.find("crs/spatialrefsys/authid").text == "EPSG:2975"
    assert layouts[1].find("Atlas").get("coverageLayer") == "metropoles_REU_all"


def test_validation_names_a_table_the_geopackage_lacks(demo, tmp_path):
    _, layers, manifest, config = demo
    path = tmp_path / PROJECT_NAME
    path.write_bytes(_project(layers, manifest, config))
    tables = ["epci_indicators", "flows", "metropoles", "dominant_flows", "flow_matrix"]
    validate_project(path, GEOPACKAGE_NAME, tables)
    with pytest.raises(OutputError, match=r"layer 'flows' not in observatory\.gpkg"):
        validate_project(path, GEOPACKAGE_NAME, [t for t in tables if t != "flows"])
    path.write_bytes(b"not a zip")
    with pytest.raises(OutputError, match="unreadable QGIS project"):
        validate_project(path, GEOPACKAGE_NAME, tables)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "<qgis><datasource>./observatory.gpkg|layername=flows</qgis>",
            "unreadable QGIS project (mismatched tag",
        ),
        ("<qgis><datasource /></qgis>", "source '' is not ./observatory.gpkg"),
        (
            "<qgis><!-- a note --><datasource>./observatory.gpkg|layername=flows&amp;"
            "</datasource></qgis>",
            "layer 'flows&' not in observatory.gpkg",
        ),
    ],
)
def test_validation_reads_the_xml_of_the_project(tmp_path, document, message):
    path = tmp_path / PROJECT_NAME
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(PROJECT_ENTRY, document)
    with pytest.raises(OutputError, match=re.escape(message)):
        validate_project(path, GEOPACKAGE_NAME, ["flows"])


# --- In QGIS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def qgis():
    """Skip unless the system Python imports QGIS."""
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import qgis.core"],
            capture_output=True, text=True, env=ENV, timeout=120, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"QGIS is not available: {SYSTEM_PYTHON}: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"QGIS is not available ({SYSTEM_PYTHON}: {last})")


def _probe(project: Path, out: Path, pages: int = 1) -> dict:
    done = subprocess.run(
        [SYSTEM_PYTHON, str(PROBE), str(project), str(out), "--pages", str(pages)],
        capture_output=True, text=True, env=ENV, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def opened(qgis, demo, tmp_path_factory):
    """The demo's run folder with its project, as QGIS opens it (every page)."""
    run, layers, manifest, config = demo
    (run / PROJECT_NAME).write_bytes(_project(layers, manifest, config))
    return _probe(run / PROJECT_NAME, tmp_path_factory.mktemp("pages"), pages=99)


def test_project_opens_without_error_every_layer_valid(opened, demo):
    run = demo[0]
    assert opened["read"], opened["error"]
    assert opened["messages"] == []
    assert opened["crs"] == "EPSG:2154"
    assert opened["absolute_paths"] is False
    for layer_id, layer in opened["layers"].items():
        assert layer["valid"], layer_id
        assert Path(layer["path"]) == run / GEOPACKAGE_NAME, layer_id
    epci = opened["layers"]["epci_indicators_242900314"]
    assert (epci["renderer"], epci["labels"]) == ("categorizedSymbol", True)
    assert opened["layers"]["flows_242900314"]["renderer"] == "RuleRenderer"


def test_one_group_per_metropole_with_its_rows(opened, demo):
    _, layers, _, _ = demo
    groups = {node["group"]: node for node in opened["tree"] if "group" in node}
    metropoles = layers["FXX"]["metropoles"]
    assert set(groups) == {
        *metropoles["metropole_name"],
        DOMINANT_GROUP,
        OVERVIEW_GROUP,
    }
    for code, name in zip(
        metropoles["metropole_code"], metropoles["metropole_name"], strict=True
    ):
        for child in groups[name]["children"]:
            layer = opened["layers"][child["layer"]]
            stem = child["layer"].removesuffix(f"_{code}")
            frame = layers["FXX"][stem]
            assert layer["features"] == (frame["metropole_code"] == code).sum(), child
        assert opened["themes"][name] == [c["layer"] for c in groups[name]["children"]]
    first = opened["tree"][0]
    assert first["checked"]
    assert first["expanded"]
    assert not any(g["checked"] or g["expanded"] for g in list(groups.values())[1:])


def test_themes_keep_pairs_without_workers_hidden(opened, demo):
    _, layers, _, config = demo
    flows = ET.fromstring(
        layer_styles(config.classification, config.reliability)["flows"]
    )
    keys = {r.get("key"): r.get("checkstate") for r in flows.iter("rule")}
    (zero,) = [key for key, state in keys.items() if state == "0"]
    metropoles = layers["FXX"]["metropoles"]
    for code, name in metropoles[["metropole_code", "metropole_name"]].itertuples(
        index=False
    ):
        checked = opened["theme_rules"][name][f"flows_{code}"]
        assert set(checked) == set(keys) - {zero}, name


def test_canvas_opens_on_the_first_system(opened, demo):
    _, layers, _, _ = demo
    first = layers["FXX"]["metropoles"].sort_values("metropole_name").iloc[0]
    xmin, ymin, xmax, ymax = opened["canvas"]["extent"]
    bounds = first.geometry.bounds
    assert xmin < bounds[0] < bounds[2] < xmax
    assert ymin < bounds[1] < bounds[3] < ymax
    assert xmax - xmin < 400_000  # the system, not France


def test_atlas_pages_follow_their_metropole_and_are_not_blank(opened, demo):
    _, layers, _, config = demo
    (layout,) = opened["layouts"]
    assert layout["atlas"]
    assert layout["coverage"] == "metropoles_all"
    metropoles = layers["FXX"]["metropoles"].sort_values("metropole_name")
    assert layout["count"] == len(metropoles)
    colours = class_colours(config.classification)
    epci = layers["FXX"]["epci_indicators"]
    for page, (code, name) in zip(
        layout["pages"],
        zip(metropoles["metropole_code"], metropoles["metropole_name"], strict=True),
        strict=True,
    ):
        assert page["name"] == name
        assert page["result"] == 0  # QgsLayoutExporter.Success
        assert all(layer.endswith(code) for layer in page["layers"]), page["layers"]
        image = page["image"]
        assert (image["width"], image["height"]) == (1286, 909)  # A4 at 110 dpi
        assert image["painted_share"] > 0.15
        present = set(epci.loc[epci["metropole_code"] == code, "epci_class"])
        for klass in present - {"sans_donnees"}:
            fill = colours[klass].lstrip("#")
            assert image["colours"].get(fill, 0) > 50, (name, klass)  # sampled pixels
        xmin, ymin, xmax, ymax = page["extent"]
        system = epci[epci["metropole_code"] == code].total_bounds
        assert min(system[0] - xmin, system[1] - ymin) >= 0, name  # the whole system
        assert min(xmax - system[2], ymax - system[3]) >= 0, name
        legend = page["legend"]
        assert "layer:EPCI selon leur lien à la métropole" in legend
        assert legend.count("layer:Contour de la métropole") == 1  # this page's only
        assert not any("Aucun actif" in entry for entry in legend)  # not drawn


def test_moved_folder_still_opens(opened, demo, tmp_path):
    run, _, _, _ = demo
    moved = tmp_path / "partagé" / "observatoire"
    shutil.copytree(run, moved)
    hidden = run.with_name(run.name + ".away")
    run.rename(hidden)  # absolute paths to the original would now fail
    try:
        seen = _probe(moved / PROJECT_NAME, tmp_path / "pages")
    finally:
        hidden.rename(run)
    assert seen["read"]
    for layer_id, layer in seen["layers"].items():
        assert layer["valid"], layer_id
        assert Path(layer["path"]) == moved / GEOPACKAGE_NAME, layer_id
    assert seen["layouts"][0]["pages"][0]["image"]["painted_share"] > 0.15


def test_overseas_poles_open_in_their_crs(qgis, demo, tmp_path):
    run, layers, manifest, config = demo
    both = _reunion(layers)
    matrix = pd.read_parquet(run / "flow_matrix.parquet")
    files = run_files(both, matrix, config.classification, config.reliability, {})
    write_geopackage(tmp_path, files.tables, files.styles)
    (tmp_path / PROJECT_NAME).write_bytes(_project(both, manifest, config))
    seen = _probe(tmp_path / PROJECT_NAME, tmp_path / "pages")
    assert seen["read"]
    assert all(layer["valid"] for layer in seen["layers"].values())
    reunion = seen["layers"][f"epci_indicators_REU_{REU_CODE}"]
    rows = len(both["REU"]["epci_indicators"])  # Brest's crowns and hidden crown
    assert (reunion["crs"], reunion["features"]) == ("EPSG:2975", rows)
    dominant = seen["layers"]["dominant_flows_REU"]
    assert dominant["crs"] == "EPSG:2975"
    assert dominant["features"] == len(both["REU"]["dominant_flows"]) > 0
    layout = seen["layouts"][1]
    assert layout["name"] == "Atlas des pôles (La Réunion)"
    assert layout["count"] == 1
    page = layout["pages"][0]
    assert page["name"] == REU_NAME
    assert page["image"]["painted_share"] > 0.15


def test_the_dominant_flows_open_valid_in_their_own_hidden_group(opened, demo):
    _, layers, _, _ = demo
    layer = opened["layers"]["dominant_flows"]
    assert layer["valid"]
    assert layer["features"] == len(layers["FXX"]["dominant_flows"]) > 0
    assert (layer["crs"], layer["renderer"], layer["subset"]) == (
        "EPSG:2154",
        "RuleRenderer",
        "",
    )
    assert layer["aliases"] == len(layers["FXX"]["dominant_flows"].columns) - 1
    (group,) = [n for n in opened["tree"] if n.get("group") == DOMINANT_GROUP]
    assert not group["checked"]
    assert [c["layer"] for c in group["children"]] == ["dominant_flows"]
    # No system's theme shows it: the atlas pages stay as they were.
    assert not any("dominant_flows" in ids for ids in opened["themes"].values())


def test_the_land_columns_open_with_their_french_aliases(opened, demo):
    # Issue 14: the demo's land columns on both layers, each with its alias.
    _, layers, _, _ = demo
    for stem, fields in (
        ("epci_indicators", EPCI_LAND_FIELDS),
        ("metropoles", METROPOLE_LAND_FIELDS),
    ):
        frame = layers["FXX"][stem]
        assert {f.name for f in fields} <= set(frame.columns)
        assert (
            frame[
                "agricultural_ha"
                if stem == "epci_indicators"
                else "agricultural_ha_own"
            ]
            .notna()
            .all()
        )
        layer = opened["layers"][f"{stem}_242900314"]
        assert layer["valid"]
        assert layer["aliases"] == len(frame.columns) - 1, stem  # all but geometry
