"""Open a run's QGIS project in a real QGIS; describe it; export its atlas pages.

Run by tests/test_qgis_project.py with the system Python that has QGIS's bindings
(``/usr/bin/python3``, Debian's ``python3-qgis``), never the venv's:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_project_probe.py \
        observatory.qgz OUT_DIR [--pages N]

It writes one JSON document on stdout: whether the project read, its CRS, every
layer (validity, source as resolved, features, renderer, labels), the layer tree
(groups, their layers, checked and expanded), the map themes, the map canvas's
extent as QGIS desktop would restore it, and each print layout (atlas, coverage,
items, and for the first ``N`` atlas pages: the PNG exported into OUT_DIR, its
painted pixels, the map's extent and the legend's entries).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsLayerTree,
    QgsLayoutExporter,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtGui import QImage

MESSAGES: list[str] = []


def _log(message, tag, level):
    if level >= Qgis.Warning:
        MESSAGES.append(f"{tag}: {message}")


def _layer(layer: QgsVectorLayer) -> dict[str, object]:
    renderer = layer.renderer()
    return {
        "name": layer.name(),
        "valid": layer.isValid(),
        "source": layer.source(),
        "path": layer.dataProvider().dataSourceUri().split("|")[0]
        if layer.dataProvider()
        else "",
        "subset": layer.subsetString(),
        "features": layer.featureCount(),
        "crs": layer.crs().authid(),
        "renderer": renderer.type() if renderer is not None else None,
        "labels": layer.labelsEnabled() and layer.labeling() is not None,
        "aliases": sum(
            1 for i in range(layer.fields().count()) if layer.attributeAlias(i)
        ),
    }


def _tree(group) -> list[dict[str, object]]:
    out = []
    for node in group.children():
        if QgsLayerTree.isGroup(node):
            out.append(
                {
                    "group": node.name(),
                    "checked": node.itemVisibilityChecked(),
                    "expanded": node.isExpanded(),
                    "children": _tree(node),
                }
            )
        else:
            out.append(
                {
                    "layer": node.layerId(),
                    "name": node.name(),
                    "checked": node.itemVisibilityChecked(),
                }
            )
    return out


def _painted(path: Path) -> dict[str, object]:
    image = QImage(str(path))
    step = 2
    painted = total = 0
    colours: dict[str, int] = {}
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            rgb = image.pixelColor(x, y).getRgb()[:3]
            total += 1
            if rgb != (255, 255, 255):
                painted += 1
            key = "{:02x}{:02x}{:02x}".format(*rgb)
            colours[key] = colours.get(key, 0) + 1
    return {
        "width": image.width(),
        "height": image.height(),
        "painted_share": painted / total if total else 0.0,
        "colours": colours,
    }


def _legend_entries(legend: QgsLayoutItemLegend) -> list[str]:
    """Return the legend's visible entries, as the filtered model lists them."""
    model = legend.model()
    entries = []

    def walk(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            node = model.index2node(index)
            if node is not None and QgsLayerTree.isLayer(node):
                nodes = model.layerLegendNodes(node)
                if not nodes:
                    continue
                entries.append(f"layer:{node.name()}")
                entries.extend(
                    "item:" + str(n.data(0)) for n in nodes if n.data(0) is not None
                )
            else:
                walk(index)

    walk(model.index(0, 0).parent())
    return entries


def _layout(layout, out: Path, pages: int) -> dict[str, object]:
    atlas = layout.atlas()
    items = sorted(
        f"{type(item).__name__}:{item.id()}"
        for item in layout.items()
        if hasattr(item, "id") and item.id()
    )
    maps = [i for i in layout.items() if isinstance(i, QgsLayoutItemMap)]
    legends = [i for i in layout.items() if isinstance(i, QgsLayoutItemLegend)]
    described: dict[str, object] = {
        "name": layout.name(),
        "atlas": atlas.enabled(),
        "coverage": atlas.coverageLayer().id() if atlas.coverageLayer() else None,
        "page_name": atlas.pageNameExpression(),
        "items": items,
        "pages": [],
    }
    if not atlas.enabled():
        return described
    atlas.beginRender()
    described["count"] = atlas.count()
    exporter = QgsLayoutExporter(layout)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    settings.generateWorldFile = False
    settings.exportMetadata = False
    for page in range(min(pages, atlas.count())):
        atlas.seekTo(page)
        layout.refresh()
        name = atlas.currentFilename() or f"page_{page}"
        png = out / f"{layout.name()}_{page}.png".replace(" ", "_")
        result = exporter.exportToImage(str(png), settings)
        extent = maps[0].extent() if maps else None
        entry: dict[str, object] = {
            "name": atlas.nameForPage(page),
            "file": name,
            "png": str(png),
            "result": int(result),
            "layers": [lyr.id() for lyr in maps[0].layersToRender()] if maps else [],
            "extent": [
                extent.xMinimum(),
                extent.yMinimum(),
                extent.xMaximum(),
                extent.yMaximum(),
            ]
            if extent
            else None,
            "legend": _legend_entries(legends[0]) if legends else [],
        }
        if png.exists():
            entry["image"] = _painted(png)
        described["pages"].append(entry)
    atlas.endRender()
    return described


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("out")
    parser.add_argument("--pages", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], True)
    app.initQgis()
    QgsApplication.messageLog().messageReceived.connect(_log)
    canvas = QgsMapCanvas()
    canvas.setObjectName("theMapCanvas")
    project = QgsProject.instance()
    read = project.read(args.project)
    layers = project.mapLayers()
    extent = canvas.extent()
    described = {
        "qgis": Qgis.QGIS_VERSION,
        "read": read,
        "error": project.error(),
        "crs": project.crs().authid(),
        "absolute_paths": project.readBoolEntry("Paths", "/Absolute", True)[0],
        "layers": {layer_id: _layer(layer) for layer_id, layer in layers.items()},
        "tree": _tree(project.layerTreeRoot()),
        "themes": {
            name: project.mapThemeCollection().mapThemeVisibleLayerIds(name)
            for name in project.mapThemeCollection().mapThemes()
        },
        "theme_rules": {
            name: {
                record.layer().id(): sorted(record.checkedLegendItems)
                for record in project.mapThemeCollection()
                .mapThemeState(name)
                .layerRecords()
                if record.usingLegendItems
            }
            for name in project.mapThemeCollection().mapThemes()
        },
        "canvas": {
            "crs": canvas.mapSettings().destinationCrs().authid(),
            "extent": [
                extent.xMinimum(),
                extent.yMinimum(),
                extent.xMaximum(),
                extent.yMaximum(),
            ],
        },
        "view": project.viewSettings().defaultViewExtent().toString(),
        "layouts": [
            _layout(layout, out, args.pages)
            for layout in project.layoutManager().printLayouts()
        ],
    }
    described["messages"] = MESSAGES
    json.dump(described, sys.stdout, ensure_ascii=False)
    sys.stdout.flush()
    os._exit(0)  # QGIS may crash tearing its objects down; nothing is left to do


if __name__ == "__main__":
    sys.exit(main())
