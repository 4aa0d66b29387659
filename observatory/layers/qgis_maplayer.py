"""The layers of the QGIS project: each ``<maplayer>`` reading the run's GeoPackage.

:mod:`observatory.layers.qgis_project` assembles the project; this module makes
its layers: the source of a GeoPackage table (filtered on a métropole or not),
a ``<maplayer>`` carrying the layer's QML style (:class:`LayerStyles`), and the
group of the dominant flows (issue 15), which belong to no system.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


#: The comment standing for a style's elements in a serialised project.
STYLE_MARK = re.compile(r"<!--(observatory-style-\d+)-->")


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


@dataclass(frozen=True, slots=True)
class LayerStyle:
    """A QML style as a project's layers carry it.

    Attributes
    ----------
    root
        The parsed QML document (``<qgis>``): its attributes and elements.
    mark
        Text of the comment standing for its elements in a ``<maplayer>`` until
        :meth:`LayerStyles.embed` puts them there.
    """

    root: ET.Element
    mark: str


class LayerStyles:
    """The QML styles of one project's layers, each distinct document parsed once.

    A project copies a layer's style into its ``<maplayer>`` (:func:`map_layer`):
    on the national run 69 layers share 5 styles, 97 % of the project's bytes.
    Each layer holds a comment instead (:attr:`LayerStyle.mark`) and
    :meth:`embed` replaces it, in the serialised project, by the style's
    elements serialised once: the bytes of serialising every copy, without
    parsing and serialising each style once per layer.

    Parameters
    ----------
    styles
        QML text by layer name or by file stem (:func:`qml_of`).
    """

    def __init__(self, styles: Mapping[str, str]) -> None:
        self._texts = styles
        self._parsed: dict[str, LayerStyle] = {}  # by QML text

    def style(self, stem: str, layer: str) -> LayerStyle | None:
        """Return the parsed style of a table (``flows_REU``), else of its layer."""
        qml = qml_of(self._texts, stem, layer)
        if qml is None:
            return None
        if qml not in self._parsed:
            mark = f"observatory-style-{len(self._parsed)}"
            self._parsed[qml] = LayerStyle(ET.fromstring(qml), mark)
        return self._parsed[qml]

    def embed(self, project: str, depth: int) -> str:
        """Return a serialised project with each style's elements in its layers.

        ``project`` was indented by ``ET.indent(root, space=" ")``; ``depth`` is
        the depth of its ``<maplayer>`` elements (2: ``qgis/projectlayers``).
        Indented at the children's depth, a style's elements serialise as they
        would inside each layer; the mark's own tail closes the layer.
        """
        elements = {}
        for style in self._parsed.values():
            holder = ET.Element("maplayer")
            holder.extend(style.root)
            ET.indent(holder, space=" ", level=depth)
            if len(holder):  # else map_layer put no mark
                holder[-1].tail = None
            texts = (ET.tostring(e, encoding="unicode") for e in holder)
            elements[style.mark] = "".join(texts)
        return STYLE_MARK.sub(lambda mark: elements[mark[1]], project)


def map_layer(
    layer_id: str,
    name: str,
    datasource: str,
    layer: str,
    epsg: int | None,
    style: LayerStyle | None,
) -> ET.Element:
    """Return a project's ``<maplayer>``: source, CRS and the layer's QML style.

    The style's renderer, labels, aliases and value maps are copied into the
    element, as QGIS stores a layer's style in a project (QGIS 3.22 does not
    load a GeoPackage's default style for a layer of a project): here as the
    style's mark, which :meth:`LayerStyles.embed` replaces once serialised.
    """
    geometry, wkb = GEOMETRY[layer]
    attributes = {"type": "vector", "geometry": geometry, "wkbType": wkb}
    attributes |= {"readOnly": "0", "styleCategories": "AllStyleCategories"}
    if style is not None:
        for key in ("labelsEnabled", "hasScaleBasedVisibilityFlag"):
            if key in style.root.attrib:
                attributes[key] = style.root.attrib[key]
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
    if style is not None and len(style.root):
        element.append(ET.Comment(style.mark))
    return element


def dominant_group(
    gpkg_name: str, styles: LayerStyles, territories: Sequence[str]
) -> tuple[list[ET.Element], ET.Element]:
    """Return each territory's ``dominant_flows`` layer and their (unchecked) group."""
    maplayers = []
    group = tree_group(DOMINANT_GROUP, checked=False, expanded=False)
    for territory in territories:
        stem = layer_stem("dominant_flows", territory)
        uri, title = source(gpkg_name, stem), DOMINANT_NAME
        if territory != MAINLAND:
            title += f" ({TERRITORY_NAMES.get(territory, territory)})"
        style = styles.style(stem, "dominant_flows")
        epsg = TERRITORY_EPSG[territory]
        maplayers.append(map_layer(stem, title, uri, "dominant_flows", epsg, style))
        group.append(tree_layer(stem, title, uri, checked=True))
    return maplayers, group
