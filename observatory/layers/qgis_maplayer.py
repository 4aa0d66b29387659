"""The layers of the QGIS project: each ``<maplayer>`` reading the run's GeoPackage.

:mod:`observatory.layers.qgis_project` assembles the project; this module makes
its layers: the source of a GeoPackage table (filtered on a métropole or not),
a ``<maplayer>`` carrying the layer's QML style, and the group of the dominant
flows (issue 15), which belong to no system.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from observatory.geography import MAINLAND, TERRITORY_EPSG, TERRITORY_NAMES
from observatory.layers.qgis_layout import crs_element, tree_group, tree_layer

#: QGIS's geometry type and WKB type of each layer of the GeoPackage.
GEOMETRY = {
    "flows": ("Line", "LineString"),
    "metropoles": ("Polygon", "MultiPolygon"),
    "epci_indicators": ("Polygon", "MultiPolygon"),
    "dominant_flows": ("Line", "LineString"),
    "flow_matrix": ("No geometry", "NoGeometry"),
}


#: Name of the group of the dominant flows of each territory (all its EPCI, not
#: filtered by system: a dominant flow belongs to no métropole), hidden at first.
DOMINANT_GROUP = "Flux dominants (Nystuen et Dacey)"


#: Name of a territory's dominant flows layer.
DOMINANT_NAME = "Flux dominants entre EPCI"


def layer_stem(layer: str, territory: str) -> str:
    """Return a layer's table in the GeoPackage (``flows``, ``flows_REU``...).

    :func:`observatory.layers.files.layer_stem`, imported when called:
    ``layers/files`` may import this module.
    """
    from observatory.layers.files import layer_stem as stem

    return stem(layer, territory)


def source(gpkg_name: str, stem: str, code: str | None = None) -> str:
    """Return the relative source of a GeoPackage layer, filtered on a métropole."""
    uri = f"./{gpkg_name}|layername={stem}"
    if code is not None:
        quoted = code.replace("'", "''")
        uri += f"|subset=\"metropole_code\" = '{quoted}'"
    return uri


def qml_of(styles: Mapping[str, str], stem: str, layer: str) -> str | None:
    """Return the style of a table (``flows_REU``), else of its layer (``flows``)."""
    return styles.get(stem) or styles.get(layer)


def map_layer(
    layer_id: str,
    name: str,
    datasource: str,
    layer: str,
    epsg: int | None,
    qml: str | None,
) -> ET.Element:
    """Return a project's ``<maplayer>``: source, CRS and the layer's QML style.

    The style's renderer, labels, aliases and value maps are copied into the
    element, as QGIS stores a layer's style in a project (QGIS 3.22 does not
    load a GeoPackage's default style for a layer of a project).
    """
    geometry, wkb = GEOMETRY[layer]
    attributes = {"type": "vector", "geometry": geometry, "wkbType": wkb}
    attributes |= {"readOnly": "0", "styleCategories": "AllStyleCategories"}
    style = None if qml is None else ET.fromstring(qml)
    if style is not None:
        for key in ("labelsEnabled", "hasScaleBasedVisibilityFlag"):
            if key in style.attrib:
                attributes[key] = style.attrib[key]
    element = ET.Element("maplayer", attributes)
    ET.SubElement(element, "id").text = layer_id
    ET.SubElement(element, "datasource").text = datasource
    ET.SubElement(element, "layername").text = name
    if epsg is not None:
        element.append(crs_element(epsg))
    ET.SubElement(element, "provider", {"encoding": "UTF-8"}).text = "ogr"
    manager = ET.SubElement(element, "map-layer-style-manager", {"current": "default"})
    ET.SubElement(manager, "map-layer-style", {"name": "default"})
    flags = ET.SubElement(element, "flags")
    for flag, value in (("Identifiable", 1), ("Removable", 1), ("Searchable", 1)):
        ET.SubElement(flags, flag).text = str(value)
    if style is not None:
        element.extend(style)
    return element


def dominant_group(
    gpkg_name: str, styles: Mapping[str, str], territories: Sequence[str]
) -> tuple[list[ET.Element], ET.Element]:
    """Return each territory's ``dominant_flows`` layer and their (unchecked) group."""
    maplayers = []
    group = tree_group(DOMINANT_GROUP, checked=False, expanded=False)
    for territory in territories:
        stem = layer_stem("dominant_flows", territory)
        uri, title = source(gpkg_name, stem), DOMINANT_NAME
        if territory != MAINLAND:
            title += f" ({TERRITORY_NAMES.get(territory, territory)})"
        style = qml_of(styles, stem, "dominant_flows")
        epsg = TERRITORY_EPSG[territory]
        maplayers.append(map_layer(stem, title, uri, "dominant_flows", epsg, style))
        group.append(tree_layer(stem, title, uri, checked=True))
    return maplayers, group
