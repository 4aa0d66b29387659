"""Open a GeoPackage in a real QGIS, describe its layers, render them to a PNG.

Run by tests/test_qgis.py with the system Python that has QGIS's bindings
(``/usr/bin/python3``, Debian's ``python3-qgis``), never the venv's:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_probe.py FILE.gpkg OUT.png

It writes one JSON document on stdout: QGIS's version, then for each table of
the file (default style loaded, as when a user drags it into QGIS) its
validity, feature count, CRS, renderer type, legend labels, labels, aliases and
value maps; then the render: size and the count of pixels of each colour asked
for with ``--colours r,g,b ...`` and of every pixel that is not the background.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from osgeo import gdal, ogr
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProviderRegistry,
    QgsRectangle,
    QgsRenderContext,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

#: Layers drawn, top first: arrows over outlines over the EPCI fills.
DRAWN = ("flows", "metropoles", "epci_indicators")


def _legend(layer: QgsVectorLayer) -> list[dict[str, object]]:
    renderer = layer.renderer()
    if renderer is None:
        return []
    return [
        {
            "label": item.label(),
            "checked": renderer.legendSymbolItemChecked(item.ruleKey()),
        }
        for item in renderer.legendSymbolItems()
    ]


def _gdal_read(path: str) -> dict[str, object]:
    """Read every feature with the system's GDAL; collect its warnings and errors."""
    messages = []

    def handler(_level, _number, message):
        messages.append(message)

    gdal.PushErrorHandler(handler)
    try:
        dataset = ogr.Open(path)
        rows = {}
        for index in range(dataset.GetLayerCount()):
            layer = dataset.GetLayer(index)
            rows[layer.GetName()] = sum(1 for _ in layer)
    finally:
        gdal.PopErrorHandler()
    return {"version": gdal.__version__, "rows": rows, "messages": messages}


def _symbol_counts(layer: QgsVectorLayer) -> dict[str, int]:
    """Count features by the number of symbols drawing them (zero workers apart)."""
    context = QgsRenderContext()
    context.setExpressionContext(
        QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    )
    renderer = layer.renderer().clone()
    renderer.startRender(context, layer.fields())
    counts: dict[str, int] = {}
    for feature in layer.getFeatures():
        kind = "zero" if feature["workers"] == 0 else "positive"
        key = f"{kind}:{len(renderer.symbolsForFeature(feature, context))}"
        counts[key] = counts.get(key, 0) + 1
    renderer.stopRender(context)
    return counts


def _describe(layer: QgsVectorLayer) -> dict[str, object]:
    renderer = layer.renderer()
    fields = layer.fields()
    value_maps = {}
    for index, field in enumerate(fields):
        setup = layer.editorWidgetSetup(index)
        if setup.type() == "ValueMap":
            value_maps[field.name()] = [
                [code, label]
                for pair in setup.config().get("map", [])
                for label, code in pair.items()
            ]
    return {
        "valid": layer.isValid(),
        "features": layer.featureCount(),
        "crs": layer.crs().authid(),
        "geometry": layer.isSpatial(),
        "renderer": renderer.type() if renderer is not None else None,
        "legend": _legend(layer),
        "labels": layer.labelsEnabled() and layer.labeling() is not None,
        "aliases": {f.name(): layer.attributeAlias(i) for i, f in enumerate(fields)},
        "value_maps": value_maps,
        "order_by": bool(renderer is not None and renderer.orderByEnabled()),
        "symbols": _symbol_counts(layer)
        if "workers" in fields.names() and renderer
        else {},
    }


def _render(
    layers: list[QgsVectorLayer], png: str, colours: list[str]
) -> dict[str, object]:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    extent = QgsRectangle(layers[-1].extent())
    extent.scale(1.05)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(1600, 1200))
    settings.setOutputDpi(110)
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(png, "PNG")
    wanted = {tuple(int(v) for v in c.split(",")): 0 for c in colours}
    painted = 0
    for y in range(image.height()):
        for x in range(image.width()):
            rgb = image.pixelColor(x, y).getRgb()[:3]
            if rgb != (255, 255, 255):
                painted += 1
            if rgb in wanted:
                wanted[rgb] += 1
    return {
        "width": image.width(),
        "height": image.height(),
        "painted": painted,
        "colours": {",".join(map(str, k)): n for k, n in wanted.items()},
        "errors": [e.message for e in job.errors()],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("gpkg")
    parser.add_argument("png")
    parser.add_argument("--colours", nargs="*", default=[])
    parser.add_argument("--metropole", help="render one system (filter on its SIREN)")
    args = parser.parse_args()
    read = _gdal_read(args.gpkg)  # before QGIS opens the file (and turns it to WAL)
    app = QgsApplication([], False)
    app.initQgis()
    metadata = QgsProviderRegistry.instance().providerMetadata("ogr")
    tables = [
        d.name()
        for d in metadata.querySublayers(args.gpkg)
        if d.name() != "layer_styles"
    ]
    # A filter goes into the URI: setSubsetString on a second layer of the same
    # GeoPackage fails in QGIS 3.22 ("unable to open database file").
    subset = (
        f"|subset=\"metropole_code\" = '{args.metropole}'" if args.metropole else ""
    )
    layers = {
        name: QgsVectorLayer(
            f"{args.gpkg}|layername={name}{subset if name in DRAWN else ''}",
            name,
            "ogr",
        )
        for name in tables
    }
    drawn = [layers[name] for name in DRAWN if name in layers]
    out = {
        "qgis": Qgis.QGIS_VERSION,
        "gdal": read,
        "layers": {name: _describe(layer) for name, layer in layers.items()},
        "render": _render(drawn, args.png, args.colours) if drawn else None,
    }
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.flush()
    os._exit(0)  # QGIS may crash tearing its objects down; nothing is left to do


if __name__ == "__main__":
    sys.exit(main())
