"""Maps, atlas and charts drawn by the project (matplotlib), without QGIS.

The demo's run folder is read back as the lead's wiring gives it to
:func:`observatory.report.maps.render_maps` (GeoDataFrames by territory then by
layer, the manifest as a dict); the files are decoded and looked at: not
blank, the class colours of the styles present, one PDF page per system plus
the list, the synthetic notice drawn, the same bytes twice.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import geopandas as gpd
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from conftest import (
    COMMUNE_ROWS,
    EPCI_ROWS,
    FLOW_ROWS,
    write_communes,
    write_composition_xlsx,
    write_flows,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from test_overseas import REU_COMMUNES, REU_EPCI, REU_FLOWS, P, _config

from observatory.cli import main
from observatory.config import ReliabilitySection, configs_dir, load_config
from observatory.geography import MAINLAND
from observatory.layers.build import TERRITORY_LAYERS
from observatory.layers.flow_styles import HIDDEN_CROWN_COLOUR, NOMINAL_MEMBER_COLOUR
from observatory.layers.styles import class_colours, flow_classes
from observatory.report.charts import dependence_chart, flows_chart
from observatory.report.mapdata import (
    SYNTHETIC_NOTICE,
    flow_class_index,
    flow_classes_of,
    map_systems,
    percent_fr,
    rule_text,
    short_name,
    sources_line,
)
from observatory.report.mapdraw import LABEL_GID
from observatory.report.mapflows import NOMINAL_HATCH
from observatory.report.mapframe import figure_png
from observatory.report.maps import _drawn_flows, atlas_pdf, map_figure
from observatory.report.render import render_maps
from observatory.runs.pipeline import run as run_pipeline

DEMO_SYSTEMS = ("242900314", "243500139", "244400404")  # Brest, Rennes, Nantes


def read_run(folder: Path) -> tuple[dict, dict]:
    """Read a run folder's map layers by territory then layer, and its manifest."""
    layers: dict[str, dict[str, gpd.GeoDataFrame]] = {}
    for path in sorted(folder.glob("*.parquet")):
        layer = next(
            (n for n in TERRITORY_LAYERS if path.stem.startswith(n)), None
        )  # flow_matrix is a plain table
        if layer is None:
            continue
        territory = path.stem.removeprefix(layer).lstrip("_") or MAINLAND
        layers.setdefault(territory, {})[layer] = gpd.read_parquet(path)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return layers, manifest


def run_demo(out: Path) -> tuple[dict, dict, object]:
    """Run the demo into ``out``; return its layers, manifest and config, read back."""
    assert main(["run", "--output", str(out), "-q"]) == 0
    layers, manifest = read_run(out / "latest")
    return layers, manifest, load_config(configs_dir() / "demo.toml")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's layers, manifest and config, read back from its run folder."""
    return run_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def rendered(demo):
    """Every file of the demo's pictures, and the seconds the render took."""
    layers, manifest, config = demo
    start = time.perf_counter()
    files = render_maps(layers, manifest, config.classification, config.reliability)
    return files, time.perf_counter() - start


def _pixels(png: bytes) -> np.ndarray:
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    return (image[..., :3] * 255).round().astype(np.uint8)


def _non_white_share(png: bytes) -> float:
    pixels = _pixels(png)
    return float((pixels.min(axis=2) < 245).mean())


def test_a_map_and_two_charts_per_system_and_one_atlas(rendered):
    files, seconds = rendered
    expected = {"atlas.pdf"}
    for code in DEMO_SYSTEMS:
        expected |= {
            f"maps/{code}.png",
            f"charts/{code}_dependance.png",
            f"charts/{code}_flux.png",
            f"maps/{code}_sols.png",  # the land-use panel (issue 14)
        }
    assert set(files) == expected
    assert seconds < 60  # a guard only: the render's time is reported, not tested


def test_maps_are_a4_landscape_pngs_and_not_blank(rendered):
    files, _ = rendered
    for code in DEMO_SYSTEMS:
        png = files[f"maps/{code}.png"]
        assert png.startswith(b"\x89PNG")
        assert _pixels(png).shape[:2] == (1700, 2400)
        assert _non_white_share(png) > 0.1, code
        for kind in ("dependance", "flux"):
            chart = files[f"charts/{code}_{kind}.png"]
            assert _pixels(chart).shape[1] == 1800  # 12 inches at 150 dpi
            assert _non_white_share(chart) > 0.03, (code, kind)


def test_the_class_colours_of_the_styles_fill_the_map(demo, rendered):
    layers, _, config = demo
    files, _ = rendered
    colours = class_colours(config.classification)
    epci = layers[MAINLAND]["epci_indicators"]
    for code in DEMO_SYSTEMS:
        pixels = _pixels(files[f"maps/{code}.png"]).reshape(-1, 3)
        classes = set(epci.loc[epci["metropole_code"] == code, "epci_class"])
        for class_code in classes:
            rgb = np.array([round(255 * c) for c in to_rgb(colours[class_code])])
            count = int((np.abs(pixels.astype(int) - rgb).max(axis=1) <= 1).sum())
            # a polygon's fill, not just the legend's swatch (about 1,300 px)
            assert count > 3_000, (code, class_code, count)


def test_atlas_has_one_page_per_system_and_the_list(rendered):
    files, _ = rendered
    pdf = files["atlas.pdf"]
    assert pdf.startswith(b"%PDF")
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert len(pages) == len(DEMO_SYSTEMS) + 1
    assert b"CreationDate" not in pdf


def test_atlas_text_is_french(rendered, tmp_path):
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "atlas.pdf"
    path.write_bytes(rendered[0]["atlas.pdf"])
    text = subprocess.run(
        [pdftotext, "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for words in (
        "Atlas des systèmes domicile-travail",
        "Lecture des cartes",
        "Rennes Métropole",
        "Lien des EPCI avec la métropole",
        "DONNÉES SYNTHÉTIQUES",
        "Sources : INSEE, recensement : base flux domicile-travail RP 2022",
        "IGN, ADMIN EXPRESS",
    ):
        assert words in text, words


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _real(manifest: dict) -> dict:
    # The same run as if its flows were INSEE's.
    out = json.loads(json.dumps(manifest))
    out["synthetic_flows"] = False
    out["config"]["content"]["run"]["synthetic_flows"] = False
    for record in out["inputs"]:
        record.pop("synthetic", None)
    return out


def test_synthetic_notice_on_every_picture_of_synthetic_flows(demo):
    layers, manifest, config = demo
    system = map_systems(layers, manifest)[0]
    figures = [
        map_figure(system, manifest, config.classification, config.reliability),
        dependence_chart(system, manifest, config.classification),
        flows_chart(system, manifest, config.reliability),
    ]
    for fig in figures:
        assert SYNTHETIC_NOTICE in _texts(fig)
        assert any("(données SYNTHÉTIQUES)" in t for t in _texts(fig))  # sources
    real = _real(manifest)
    fig = map_figure(system, real, config.classification, config.reliability)
    assert SYNTHETIC_NOTICE not in _texts(fig)
    assert not any("SYNTH" in t for t in _texts(fig))


def test_map_texts_title_legend_scale_and_sources(demo):
    layers, manifest, config = demo
    system = map_systems(layers, manifest)[1]
    texts = _texts(
        map_figure(system, manifest, config.classification, config.reliability)
    )
    assert "Rennes Métropole" in texts  # title
    assert any("recensement 2022" in t for t in texts)
    for label in ("Métropole", "Intégrée", "Peu liée", "Actifs par flux", "N"):
        assert label in texts, label
    assert any(t.endswith(" km") for t in texts)  # scale bar
    assert any(t.startswith("Sources : INSEE, recensement : ") for t in texts)
    assert (
        "Vitré" in texts
    )  # short names: "Communauté d'agglomération Vitré Communauté"


def test_names_inside_the_map_and_not_overlapping(demo):
    layers, manifest, config = demo
    for system in map_systems(layers, manifest):
        fig = map_figure(system, manifest, config.classification, config.reliability)
        renderer = FigureCanvasAgg(fig).get_renderer()
        ax = fig.axes[0]
        frame = ax.get_window_extent(renderer)
        labels = [t for t in ax.texts if t.get_gid() == LABEL_GID]
        # The crowns' EPCI and those placed beyond them (hidden crown) are named.
        outside = 0 if system.outside is None else len(system.outside)
        assert len(labels) == len(system.epci) + outside, system.name
        boxes = [t.get_window_extent(renderer) for t in labels]
        for text, box in zip(labels, boxes, strict=True):
            inside = frame.x0 <= box.x0 <= box.x1 <= frame.x1
            assert inside, text.get_text()
            assert frame.y0 <= box.y0 <= box.y1 <= frame.y1, text.get_text()
        overlaps = [
            (a.get_text(), b.get_text())
            for i, (a, box_a) in enumerate(zip(labels, boxes, strict=True))
            for b, box_b in zip(labels[i + 1 :], boxes[i + 1 :], strict=True)
            if box_a.overlaps(box_b)
        ]
        assert not overlaps, (system.name, overlaps)


def test_flow_classes_are_the_styles(demo):
    reliability = ReliabilitySection()
    classes = flow_classes_of(reliability)
    assert [(c.label, c.width_mm) for c in classes] == [
        (label, width) for _, label, width in flow_classes(reliability)
    ]
    assert [c.fragile for c in classes] == [True] + [False] * (len(classes) - 1)
    workers = [150, 199.9, 200, 499, 500, 999, 1_000, 2_500, 4_999, 5_000, 13_391]
    codes = ["order_of_magnitude"] * 2 + ["usable"] * 2 + ["reliable"] * 7
    index = flow_class_index(pd.Series(workers), pd.Series(codes), reliability)
    assert index.tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5]


def test_zero_worker_flows_are_not_drawn_and_crowns_keep_robust_ones(demo):
    layers, manifest, config = demo
    flows = layers[MAINLAND]["flows"].copy()
    zeroed = flows.index[:5]
    flows.loc[zeroed, "workers"] = 0.0
    altered = {MAINLAND: dict(layers[MAINLAND], flows=flows)}
    systems = map_systems(altered, manifest)
    kept = {i for s in systems for i in s.flows.index}
    assert kept.isdisjoint(zeroed)
    for system in systems:
        drawn = _drawn_flows(system, config.reliability)
        central = drawn["flow_type"] != "between_crowns"
        assert (drawn["workers"] > 0).all()
        assert (drawn.loc[~central, "workers"] >= config.reliability.reliable_min).all()
        assert central.sum() == (system.flows["flow_type"] != "between_crowns").sum()
        # flows with the métropole are drawn last (on top), each group by workers
        assert not central.iloc[: (~central).sum()].any()
        for part in (drawn[central], drawn[~central]):
            assert part["workers"].is_monotonic_increasing


def test_same_bytes_twice(demo):
    layers, manifest, config = demo
    system = map_systems(layers, manifest)[0]
    first, second = (
        map_figure(system, manifest, config.classification, config.reliability)
        for _ in range(2)
    )
    assert figure_png(first) == figure_png(second)
    assert atlas_pdf([first]) == atlas_pdf([second])


def test_french_words_and_numbers(demo):
    _, manifest, config = demo
    assert percent_fr(0.125) == "12,5\u00a0%"
    assert percent_fr(float("nan")) == "n.d."
    names = {
        "Communauté de communes du Pays de Craon": "Pays de Craon",
        "Communauté de communes Communauté Lesneven Côte des Légendes": (
            "Lesneven Côte des Légendes"
        ),
        "Communauté d'agglomération Pornic Agglo Pays de Retz": "Pornic Agglo Pays de Retz",
        "Communauté d'agglomération de la Région Nazairienne et de l'Estuaire (CARENE)": (
            "CARENE"
        ),
        "Brest Métropole": "Brest Métropole",
    }
    for name, short in names.items():
        assert short_name(name) == short
    rules = {r.class_code: rule_text(r) for r in config.classification.rules}
    assert rules["integree"] == "dépendance ≥ 40\u00a0%"
    assert rules["interdependante"] == "dépendance ≥ 15\u00a0% et réciprocité ≥ 0,25"
    assert rules["peu_liee"] == "aucune des règles précédentes"
    line = sources_line(manifest)
    assert line.startswith(
        "Sources : INSEE, recensement : base flux domicile-travail RP 2022"
    )
    if manifest.get("previous_vintage"):
        assert f"RP {manifest['previous_vintage']} (comparaison)" in line
    assert "IGN, ADMIN EXPRESS (communes au 1er janvier 2025)" in line
    assert "composition communale des EPCI au 1er janvier 2025" in line


@pytest.fixture
def reunion(tmp_path: Path) -> Path:
    """Inputs of La Réunion's pole (and of mainland France, not configured)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_communes(folder / "COMMUNE.shp")
    write_communes(folder / "COMMUNE_REU.shp", REU_COMMUNES, crs="EPSG:2975")
    write_composition_xlsx(
        folder / "EPCI.xlsx", EPCI_ROWS + REU_EPCI, COMMUNE_ROWS + REU_COMMUNES
    )
    write_flows(folder / "flows.zip", FLOW_ROWS + REU_FLOWS)
    return folder


def test_an_overseas_pole_is_drawn_in_its_territory_crs(reunion, tmp_path):
    config = load_config(_config(reunion, '"COMMUNE_REU.shp"'))
    report = run_pipeline(config, tmp_path / "out")
    layers, manifest = read_run(report.output_dir)
    assert list(layers) == ["REU"]
    files = render_maps(layers, manifest, config.classification, config.reliability)
    assert {f"maps/{P}.png", "atlas.pdf"} <= set(files)
    assert _non_white_share(files[f"maps/{P}.png"]) > 0.1
    (system,) = map_systems(layers, manifest)
    fig = map_figure(system, manifest, config.classification, config.reliability)
    assert any("(La Réunion)" in t for t in _texts(fig))
    x0, x1 = fig.axes[0].get_xlim()
    y0, y1 = fig.axes[0].get_ylim()
    # RGR92 / UTM 40S metres around Saint-Denis, not Lambert-93 nor degrees
    assert 300_000 < x0 < x1 < 400_000
    assert 7_600_000 < y0 < y1 < 7_700_000


def test_a_pole_without_crowns_still_gets_its_pictures(demo):
    layers, manifest, config = demo
    full = map_systems(layers, manifest)[0]
    alone = dataclasses.replace(
        full,
        epci=full.epci[full.epci["crown"] == 0],
        flows=full.flows.iloc[:0],
    )
    fig = map_figure(alone, manifest, config.classification, config.reliability)
    assert _non_white_share(figure_png(fig)) > 0.05
    for chart in (
        dependence_chart(alone, manifest, config.classification),
        flows_chart(alone, manifest, config.reliability),
    ):
        assert figure_png(chart).startswith(b"\x89PNG")


def _marked(fig, colour: str) -> list:
    """Return the map's polygon collections outlined (or hatched) in ``colour``."""
    ax = fig.axes[0]
    found = []
    for collection in ax.collections:
        edges = collection.get_edgecolor()
        if len(edges) and np.allclose(edges[0][:3], to_rgb(colour)):
            found.append(collection)
    return found


def test_hidden_crown_and_nominal_members_have_their_own_marks(demo, rendered):
    layers, manifest, config = demo
    files, _ = rendered
    systems = {s.code: s for s in map_systems(layers, manifest)}
    brest, rennes = systems["242900314"], systems["243500139"]
    # The hidden crown: rows of the system beyond its crowns, on the map.
    hidden = brest.outside[brest.outside["placed_by"] == "flows"]
    assert len(hidden) == 2
    assert hidden["crown"].isna().all()
    fig = map_figure(brest, manifest, config.classification, config.reliability)
    dashed = _marked(fig, HIDDEN_CROWN_COLOUR)
    assert len(dashed) == 1
    assert len(dashed[0].get_paths()) == len(hidden)
    assert dashed[0].get_linestyle()[0][1] is not None  # a dash pattern
    texts = [t.get_text() for t in fig.texts]
    assert any(t.startswith("Couronne cachée") and "≥ 1\u00a0%" in t for t in texts)
    assert not any(t.startswith("Membre nominal") for t in texts)  # none in Brest
    # Nominal members hatched, in the legend with the demo's threshold.
    nominal = rennes.epci[rennes.epci["nominal_member"].astype(bool)]
    assert len(nominal) > 0
    assert (nominal["crown"] > 0).all()
    fig = map_figure(rennes, manifest, config.classification, config.reliability)
    hatched = _marked(fig, NOMINAL_MEMBER_COLOUR)
    assert len(hatched) == 1
    assert hatched[0].get_hatch() == NOMINAL_HATCH
    assert len(hatched[0].get_paths()) == len(nominal)
    texts = [t.get_text() for t in fig.texts]
    assert any(t.startswith("Membre nominal") and "0,5\u00a0%" in t for t in texts)
    # On the page: magenta dashes around Brest's hidden crown, none around Rennes.
    magenta = np.array([int(HIDDEN_CROWN_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])

    def magenta_pixels(png: bytes) -> int:
        pixels = _pixels(png).astype(int)
        return int((np.abs(pixels - magenta).max(axis=2) < 12).sum())

    assert magenta_pixels(files["maps/242900314.png"]) > 2000
    assert magenta_pixels(files["maps/243500139.png"]) < 50
