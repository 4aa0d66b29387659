"""The print layout of a QGIS project: an A4 landscape atlas page per métropole.

:func:`atlas_layout` returns a ``<Layout>`` in the format QGIS 3.22 LTR writes
(later versions read it), its atlas running over an unfiltered métropoles layer
(page name: the métropole's name). Each page has:

- a title naming the métropole and a subtitle with the census and geography;
- the synthetic-data notice, in red, when it is given;
- the map, following the page's map theme (the métropole's group of layers) on
  its system's extent (its EPCI with a margin: one ``CASE`` per side, fitted to
  the frame, since QGIS resizes a map to data-defined sides of other proportions);
- the legend of what the map shows (filtered on the map's content: the page's
  layers, the classes present), the métropole's key figures, a scale bar in km,
  a north arrow (an SVG of QGIS's default set) and the sources.

What the pages say comes from :mod:`observatory.layers.qgis_project`
(:class:`PageTexts`); fonts are Arial (Liberation Sans or DejaVu Sans on Linux).
"""

from __future__ import annotations

import math
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyproj

from observatory.geography import TERRITORY_EPSG
from observatory.layers.qgis import data_defined, option

#: Layout item types (``QgsLayoutItemRegistry``).
PAGE, MAP, PICTURE, LABEL, LEGEND, SCALEBAR = 65638, 65639, 65640, 65641, 65642, 65646


#: Page size (mm): A4 landscape.
PAGE_WIDTH, PAGE_HEIGHT = 297.0, 210.0


#: Margin of the page (mm).
MARGIN = 10.0


#: The north arrow: an SVG of QGIS's default set, found on every installation.
NORTH_ARROW = "arrows/NorthArrow_02.svg"


#: Font of the layouts (Liberation Sans or DejaVu Sans stand in on Linux).
FONT = "Arial"


#: Length (mm) of a scale bar's segment at the median scale of an atlas.
SEGMENT_MM = 15.0


#: Width of the legend's column (mm), and height of the key figures under it.
LEGEND_WIDTH, FIGURES_HEIGHT = 80.0, 33.0


_UUIDS = uuid.UUID("3f0c2a4e-5b7d-4e1f-9c3a-2d4b6e8f0a1c")


@dataclass(frozen=True, slots=True)
class Extent:
    """A rectangle in a territory's CRS (map units: metres)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def bounds(self) -> dict[str, float]:
        """Return the rectangle as QGIS writes it (``xmin``, ``ymin``...)."""
        return {"xmin": self.xmin, "ymin": self.ymin} | {
            "xmax": self.xmax,
            "ymax": self.ymax,
        }

    def fitted(self, ratio: float) -> Extent:
        """Return the rectangle widened or heightened to ``ratio`` (width/height).

        Its centre stays; QGIS resizes a map whose four sides are data-defined
        to their proportions unless they are the frame's.
        """
        width, height = self.xmax - self.xmin, self.ymax - self.ymin
        if width < ratio * height:
            width = ratio * height
        else:
            height = width / ratio
        x, y = (self.xmin + self.xmax) / 2, (self.ymin + self.ymax) / 2
        return Extent(x - width / 2, y - height / 2, x + width / 2, y + height / 2)


@dataclass(frozen=True, slots=True)
class PrintedSystem:
    """A system as its atlas page shows it.

    Attributes
    ----------
    territory
        Territory code; the page's map is in its CRS.
    code
        SIREN of the métropole (``metropole_code`` of the coverage layer).
    theme
        Name of the map theme showing its layers.
    extent
        What the map shows, in the territory's CRS.
    layers
        ``(layer id, title)`` of the system's layers, top first (the legend's).
    legend_nodes
        By layer id, the legend entries the legend shows (their indexes), when
        not all: the map draws no feature of a rule unticked in the style, but
        QGIS 3.22's legend filtered on the map's content still lists it.
    """

    territory: str
    code: str
    theme: str
    extent: Extent
    layers: tuple[tuple[str, str], ...]
    legend_nodes: Mapping[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class PageTexts:
    """What an atlas layout writes; ``[% expression %]`` evaluated on each page.

    Attributes
    ----------
    layout
        Name of the layout (QGIS's layout manager).
    title, subtitle
        The page's title (the métropole's name) and what the map shows.
    notice
        The synthetic-data notice, None for census figures.
    figures
        The key figures of the page's métropole (expressions on its attributes).
    sources
        Sources and provenance of the data.
    theme
        Expression giving the name of the page's map theme.
    """

    layout: str
    title: str
    subtitle: str
    notice: str | None
    figures: str
    sources: str
    theme: str


def _uuid(*parts: str) -> str:
    return "{" + str(uuid.uuid5(_UUIDS, "/".join(parts))) + "}"


def _colour(tag: str, rgba: tuple[int, int, int, int]) -> ET.Element:
    red, green, blue, alpha = rgba
    return ET.Element(
        tag,
        {"red": str(red), "green": str(green), "blue": str(blue), "alpha": str(alpha)},
    )


def font(size: float, *, bold: bool = False, italic: bool = False) -> str:
    """Return a Qt font description (``QFont::toString``) of :data:`FONT`."""
    weight = 75 if bold else 50
    return f"{FONT},{size:g},-1,5,{weight},{int(italic)},0,0,0,0"


def layout_item(
    kind: int,
    name: str,
    box: tuple[float, float, float, float],
    z: int,
    attributes: Mapping[str, str] | None = None,
    *,
    frame: tuple[int, int, int, int] | None = None,
    background: tuple[int, int, int, int] | None = None,
    data_defined_properties: Mapping[str, str] | None = None,
) -> ET.Element:
    """Return a ``<LayoutItem>``: its type, id, place and size (mm), frame, fill.

    ``box`` is (x, y, width, height) on the page; ``frame`` and ``background``
    are colours (``None``: none drawn); ``data_defined_properties`` maps a
    property (``dataDefinedMapXMin``...) to an expression.
    """
    x, y, width, height = box
    element = ET.Element(
        "LayoutItem",
        {
            "type": str(kind),
            "uuid": _uuid(name),
            "id": name,
            "position": f"{x:g},{y:g},mm",
            "positionOnPage": f"{x:g},{y:g},mm",
            "size": f"{width:g},{height:g},mm",
            "referencePoint": "0",
            "zValue": str(z),
            "frame": "true" if frame else "false",
            "outlineWidthM": "0.3,mm",
            "frameJoinStyle": "miter",
            "background": "true" if background else "false",
            "visibility": "1",
            "opacity": "1",
            "itemRotation": "0",
            "blendMode": "0",
            "excludeFromExports": "0",
            "positionLock": "false",
            **(attributes or {}),
        },
    )
    element.append(_colour("FrameColor", frame or (0, 0, 0, 255)))
    element.append(_colour("BackgroundColor", background or (255, 255, 255, 255)))
    layout_object = ET.SubElement(element, "LayoutObject")
    layout_object.append(
        data_defined("dataDefinedProperties", data_defined_properties or {})
    )
    ET.SubElement(layout_object, "customproperties")
    return element


def label(
    name: str,
    box: tuple[float, float, float, float],
    text: str,
    description: str,
    colour: tuple[int, int, int, int] = (38, 38, 38, 255),
    **item: Any,
) -> ET.Element:
    """Return a label item: ``text`` (``[% expression %]`` evaluated) in a font.

    ``description`` is :func:`font`'s; ``item`` goes to :func:`layout_item`.
    """
    attributes = {
        "labelText": text,
        "htmlState": "0",
        "marginX": "1" if item.get("frame") else "0",
        "marginY": "0.6" if item.get("frame") else "0",
        "halign": "1",  # Qt::AlignLeft
        "valign": "32" if "\n" in text else "128",  # Qt::AlignTop, AlignVCenter
    }
    element = layout_item(LABEL, name, box, 10, attributes, **item)
    bold = description.split(",")[4] == "75"
    ET.SubElement(
        element, "LabelFont", {"description": description, "style": "Bold" * bold}
    )
    element.append(_colour("FontColor", colour))
    return element


def _case(systems: Sequence[PrintedSystem], side: str, ratio: float) -> str:
    """Return the expression giving one side of the atlas feature's map extent."""
    branches = " ".join(
        f"WHEN \"metropole_code\" = '{s.code}' "
        f"THEN {s.extent.fitted(ratio).bounds()[side]:.1f}"
        for s in systems
    )
    return f"CASE {branches} END"


def map_item(
    name: str,
    box: tuple[float, float, float, float],
    systems: Sequence[PrintedSystem],
    theme_expression: str,
    epsg: int,
) -> ET.Element:
    """Return the atlas map: the page's map theme on its system's extent.

    The extent of each system is data-defined (one ``CASE`` per side), so the
    map holds the métropole and its crowns; QGIS keeps the frame's proportions.
    """
    sides = {
        f"dataDefinedMap{key}": _case(systems, side, box[2] / box[3])
        for key, side in (
            ("XMin", "xmin"),
            ("YMin", "ymin"),
            ("XMax", "xmax"),
            ("YMax", "ymax"),
        )
    }
    attributes = {
        "keepLayerSet": "false",
        "followPreset": "true",  # the data-defined theme applies only then
        "followPresetName": systems[0].theme,
        "drawCanvasItems": "true",
        "mapRotation": "0",
        "labelMargin": "0,mm",
        "mapFlags": "0",
        "isTemporal": "0",
    }
    element = layout_item(
        MAP, name, box, 1, attributes,
        frame=(90, 90, 90, 255), background=(255, 255, 255, 255),
        data_defined_properties={"dataDefinedMapStylePreset": theme_expression}
        | sides,
    )  # fmt: skip
    first = systems[0].extent.fitted(box[2] / box[3])
    ET.SubElement(element, "Extent", {k: repr(v) for k, v in first.bounds().items()})
    element.append(crs_element(epsg, "crs"))
    ET.SubElement(element, "LayerSet")
    ET.SubElement(
        element, "AtlasMap", {"atlasDriven": "1", "scalingMode": "2", "margin": "0.05"}
    )
    ET.SubElement(element, "labelBlockingItems")
    return element


def crs_element(epsg: int, tag: str = "srs") -> ET.Element:
    """Return a CRS as QGIS writes it: ``<tag><spatialrefsys>`` with its EPSG code.

    The definition is PROJ's WKT: QGIS 3.22 ignores a project CRS given by its
    code only.
    """
    crs = pyproj.CRS.from_epsg(epsg)
    element = ET.Element(tag)
    srs = ET.SubElement(element, "spatialrefsys")
    ET.SubElement(srs, "wkt").text = crs.to_wkt()
    ET.SubElement(srs, "srid").text = str(epsg)
    ET.SubElement(srs, "authid").text = f"EPSG:{epsg}"
    ET.SubElement(srs, "description").text = crs.name
    return element


def _legend_style(name: str, description: str, **margins: float) -> ET.Element:
    style = ET.Element(
        "style",
        {"name": name, "alignment": "1", **{k: f"{v:g}" for k, v in margins.items()}},
    )
    bold = description.split(",")[4] == "75"
    ET.SubElement(
        style, "styleFont", {"description": description, "style": "Bold" * bold}
    )
    return style


def legend_item(
    name: str,
    box: tuple[float, float, float, float],
    map_name: str,
    systems: Sequence[PrintedSystem],
) -> ET.Element:
    """Return the legend: each system's layers, filtered on the map's content.

    Only the layers the page's map draws, and their classes present on it, are
    listed; the systems' groups have no title.
    """
    attributes = {
        "title": "Légende",
        "titleAlignment": "1",
        "columnCount": "1",
        "splitLayer": "0",
        "equalColumnWidth": "0",
        "symbolWidth": "8",
        "symbolHeight": "3.6",
        "wrapChar": "",
        "boxSpace": "2.5",
        "columnSpace": "2",
        "lineSpacing": "0.8",
        "fontColor": "#262626",
        "rasterBorder": "0",
        "resizeToContents": "0",
        "legendFilterByMap": "1",
        "legendFilterByAtlas": "0",
        "symbolAlignment": "1",
        "map_uuid": _uuid(map_name),
    }
    element = layout_item(
        LEGEND, name, box, 5, attributes,
        frame=(200, 200, 200, 255), background=(255, 255, 255, 235),
    )  # fmt: skip
    styles = ET.SubElement(element, "styles")
    styles.extend(
        [
            _legend_style("title", font(11, bold=True), marginBottom=2.5),
            _legend_style("group", font(9, bold=True), marginTop=2.5),
            _legend_style("subgroup", font(8.5, bold=True), marginTop=2.5),
            _legend_style("symbol", font(7.5), marginTop=0.9),
            _legend_style("symbolLabel", font(7.5), marginTop=0.9, marginLeft=2),
        ]
    )
    tree = ET.SubElement(element, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    for system in systems:
        group = tree_group(system.theme, checked=True, expanded=True)
        for layer_id, title in system.layers:
            node = tree_layer(layer_id, title, None, checked=True)
            if layer_id in system.legend_nodes:
                properties = node.find("customproperties")
                assert properties is not None
                properties.append(_node_order(system.legend_nodes[layer_id]))
            group.append(node)
        tree.append(group)
    return element


def _node_order(nodes: Sequence[int]) -> ET.Element:
    """Return the legend entries a legend's layer shows, in QGIS's ``0,1,3`` form."""
    return option({"legend/node-order": ",".join(str(n) for n in nodes) or "empty"})


def tree_layer(
    layer_id: str, name: str, datasource: str | None, *, checked: bool
) -> ET.Element:
    """Return a ``<layer-tree-layer>``: a layer (its id) in a layer tree or legend."""
    state = "Qt::Checked" if checked else "Qt::Unchecked"
    attributes = {"id": layer_id, "name": name, "providerKey": "ogr"}
    attributes |= {"checked": state, "expanded": "1"}
    if datasource is not None:
        attributes["source"] = datasource
    element = ET.Element("layer-tree-layer", attributes)
    ET.SubElement(element, "customproperties")
    return element


def tree_group(name: str, *, checked: bool, expanded: bool) -> ET.Element:
    """Return a ``<layer-tree-group>`` whose title layout legends hide."""
    state = "Qt::Checked" if checked else "Qt::Unchecked"
    attributes = {"name": name, "checked": state, "expanded": str(int(expanded))}
    element = ET.Element("layer-tree-group", attributes)
    properties = ET.SubElement(element, "customproperties")
    properties.append(option({"legend/title-style": "hidden"}))
    return element


def segment_km(
    systems: Sequence[PrintedSystem], map_size: tuple[float, float]
) -> float:
    """Return a round length (1, 2 or 5 times a power of ten, km) for a scale bar.

    A segment is about :data:`SEGMENT_MM` long at the median scale of the maps
    (QGIS's own fitting picks lengths such as 7 km).
    """
    width, height = map_size
    km_per_mm = sorted(
        (s.extent.fitted(width / height).xmax - s.extent.fitted(width / height).xmin)
        / width
        / 1000
        for s in systems
    )[len(systems) // 2]
    wanted = max(km_per_mm * SEGMENT_MM, 0.001)
    candidates = [m * 10.0**k for k in range(-3, 5) for m in (1, 2, 5)]
    return min(candidates, key=lambda c: abs(math.log(c / wanted)))


def scalebar_item(
    name: str, box: tuple[float, float, float, float], map_name: str, km: float
) -> ET.Element:
    """Return a scale bar of two segments of ``km`` kilometres."""
    attributes = {
        "style": "Single Box",
        "unitType": "km",
        "unitLabel": "km",
        "numSegments": "2",
        "numSegmentsLeft": "0",
        "numSubdivisions": "1",
        "subdivisionsHeight": "1.5",
        "numUnitsPerSegment": f"{km:g}",
        "numMapUnitsPerScaleBarUnit": "1",  # QGIS converts to km itself
        "segmentSizeMode": "0",  # fixed segments
        "height": "1.8",
        "labelBarSpace": "1.2",
        "boxContentSpace": "1.5",
        "alignment": "0",
        "labelVerticalPlacement": "0",
        "labelHorizontalPlacement": "0",
        "mapUuid": _uuid(map_name),
    }
    element = layout_item(
        SCALEBAR, name, box, 6, attributes, background=(255, 255, 255, 215)
    )
    style = ET.SubElement(
        element,
        "text-style",
        {
            "fontFamily": FONT,
            "fontSize": "7",
            "fontSizeUnit": "Point",
            "fontWeight": "50",
            "namedStyle": "Regular",
            "textColor": "38,38,38,255",
            "textOpacity": "1",
        },
    )
    families = ET.SubElement(style, "families")
    for family in (FONT, "Liberation Sans", "Helvetica", "DejaVu Sans"):
        ET.SubElement(families, "family", {"name": family})
    ET.SubElement(style, "text-buffer", {"bufferDraw": "0"})
    return element


def north_arrow(
    name: str, box: tuple[float, float, float, float], map_name: str
) -> ET.Element:
    """Return the north arrow: QGIS's SVG, turned with the map."""
    attributes = {
        "file": NORTH_ARROW,
        "mode": "2",  # format found from the file
        "resizeMode": "0",  # zoom: the arrow keeps its proportions
        "anchorPoint": "0",
        "pictureRotation": "0",
        "northMode": "0",
        "northOffset": "0",
        "svgFillColor": "38,38,38,255",
        "svgBorderColor": "255,255,255,255",
        "svgBorderWidth": "0.2",
        "mapUuid": _uuid(map_name),
    }
    return layout_item(PICTURE, name, box, 7, attributes)


def atlas_element(coverage: str, title: str, gpkg_source: str) -> ET.Element:
    """Return the atlas: one page per feature of ``coverage``, sorted by name."""
    return ET.Element(
        "Atlas",
        {
            "enabled": "1",
            "coverageLayer": coverage,
            "coverageLayerName": title,
            "coverageLayerSource": gpkg_source,
            "coverageLayerProvider": "ogr",
            "hideCoverage": "1",
            "pageNameExpression": "metropole_name",
            "sortFeatures": "1",
            "sortKey": "metropole_name",
            "sortAscending": "1",
            "filterFeatures": "0",
            "filenamePattern": "'carte_' || \"metropole_code\"",
        },
    )


def atlas_layout(
    texts: PageTexts,
    systems: Sequence[PrintedSystem],
    coverage: tuple[str, str, str],
) -> ET.Element:
    """Return an A4 landscape layout with its atlas over a territory's systems.

    ``coverage`` is the unfiltered métropoles layer: (layer id, name, source).
    """
    epsg = TERRITORY_EPSG[systems[0].territory]
    layout = ET.Element(
        "Layout",
        {"name": texts.layout, "units": "mm", "printResolution": "300"},
    )
    pages = ET.SubElement(layout, "PageCollection")
    page = (0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)
    pages.append(layout_item(PAGE, f"{texts.layout}/page", page, 0))
    ET.SubElement(pages, "GuideCollection", {"visible": "1"})
    width, grey = PAGE_WIDTH - 2 * MARGIN, (90, 90, 90, 255)
    items = [
        label("Titre", (MARGIN, 6, width, 10), texts.title, font(17, bold=True)),
        label("Sous-titre", (MARGIN, 16, width, 6), texts.subtitle, font(9), grey),
    ]
    top = 25.0
    if texts.notice is not None:
        red = (176, 0, 32, 255)
        items.append(
            label(
                "Avertissement", (MARGIN, 24, width, 7), texts.notice,
                font(9, bold=True), red, frame=red, background=(255, 236, 236, 255),
            )
        )  # fmt: skip
        top = 33.0
    bottom = 194.0
    map_width = width - LEGEND_WIDTH - 4
    right = PAGE_WIDTH - MARGIN - LEGEND_WIDTH
    legend_box = (right, top, LEGEND_WIDTH, bottom - top - FIGURES_HEIGHT - 2)
    figures_box = (right, bottom - FIGURES_HEIGHT, LEGEND_WIDTH, FIGURES_HEIGHT)
    heading_box = (right + 2.5, bottom - FIGURES_HEIGHT + 2, LEGEND_WIDTH - 5, 6)
    body_box = (right + 2.5, bottom - FIGURES_HEIGHT + 9, LEGEND_WIDTH - 5, 23)
    light = (200, 200, 200, 255)
    km = segment_km(systems, (map_width, bottom - top))
    items += [
        map_item("Carte", (MARGIN, top, map_width, bottom - top), systems, texts.theme, epsg),
        legend_item("Légende", legend_box, "Carte", systems),
        label("Cadre des chiffres", figures_box, "", font(7.5), frame=light),
        label("Chiffres clés", heading_box, "Chiffres clés", font(11, bold=True)),
        label("Chiffres", body_box, texts.figures, font(7.5)),
        scalebar_item("Échelle", (MARGIN + 3, bottom - 13, 48, 10), "Carte", km),
        north_arrow("Nord", (MARGIN + map_width - 12, top + 3, 9, 12), "Carte"),
        label("Sources", (MARGIN, 196, width, 10), texts.sources, font(7), grey),
    ]  # fmt: skip
    layout.extend(items)
    layout.append(atlas_element(*coverage))
    for element in layout.iter("LayoutItem"):  # uuids unique to the layout
        for key in ("uuid", "mapUuid", "map_uuid"):
            if key in element.attrib:
                element.set(key, _uuid(texts.layout, element.attrib[key]))
    return layout
