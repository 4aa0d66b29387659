"""QGIS style files (``.qml``): the XML pieces of a layer style, built without QGIS.

The documents follow the format QGIS 3.22 LTR writes, the oldest version the
styles are tested with (:data:`QGIS_MIN_VERSION`, ``tests/test_qgis.py``); later
versions read it as they read any older style. Symbol layer properties are written
as ``<Option>`` maps, as QGIS has done since 3.22. The styles of the layers
themselves are :mod:`observatory.layers.styles`'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from observatory.layers.schemas import Field

#: The oldest QGIS the styles are tested with (Debian 12's LTR).
QGIS_MIN_VERSION = "3.22"


#: Version written in the documents: QGIS upgrades older styles as it loads them.
QML_VERSION = "3.22.0-Białowieża"


#: A value of a QGIS ``<Option>`` element: text, flag, number, map or list.
OptionValue: TypeAlias = (
    str | bool | int | float | Mapping[str, "OptionValue"] | list["OptionValue"]
)


#: Geometry type of a layer in a QML document (``layerGeometryType``).
GEOMETRY_TYPES = {"point": 0, "line": 1, "polygon": 2, "none": 4}


def option(value: OptionValue, name: str | None = None) -> ET.Element:
    """Return a QGIS ``<Option>`` element holding ``value`` (maps and lists nest)."""
    element = ET.Element("Option")
    if name is not None:
        element.set("name", name)
    if isinstance(value, Mapping):
        element.set("type", "Map")
        element.extend(option(v, k) for k, v in value.items())
    elif isinstance(value, list):
        element.set("type", "List")
        element.extend(option(v) for v in value)
    elif isinstance(value, bool):
        element.set("type", "bool")
        element.set("value", "true" if value else "false")
    elif isinstance(value, int):
        element.set("type", "int")
        element.set("value", str(value))
    elif isinstance(value, float):
        element.set("type", "double")
        element.set("value", repr(value))
    else:
        element.set("type", "QString")
        element.set("value", value)
    return element


def rgba(hex_colour: str, alpha: int = 255) -> str:
    """Return a QGIS colour (``"r,g,b,a"``) from ``#rrggbb`` and an alpha in 0-255."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"{red},{green},{blue},{alpha}"


def data_defined(tag: str, expressions: Mapping[str, str]) -> ET.Element:
    """Return a collection of data-defined properties, each an expression.

    ``tag`` is ``data_defined_properties`` for symbols and ``dd_properties`` for
    labels; ``expressions`` maps a property name (``Show``, ``outlineColor``...) to
    its QGIS expression.
    """
    properties: dict[str, OptionValue] = {
        key: {"active": True, "expression": expression, "type": 3}
        for key, expression in expressions.items()
    }
    element = ET.Element(tag)
    element.append(option({"name": "", "properties": properties, "type": "collection"}))
    return element


def symbol_layer(
    kind: str, props: Mapping[str, str], subsymbol: ET.Element | None = None
) -> ET.Element:
    """Return one symbol layer (``SimpleFill``, ``SimpleLine``, ``ArrowLine``...)."""
    layer = ET.Element(
        "layer", {"class": kind, "enabled": "1", "locked": "0", "pass": "0"}
    )
    layer.append(option(dict(props)))
    layer.append(data_defined("data_defined_properties", {}))
    if subsymbol is not None:
        layer.append(subsymbol)
    return layer


def symbol(
    kind: str, name: str, layers: Sequence[ET.Element], alpha: float = 1.0
) -> ET.Element:
    """Return a symbol (``fill``, ``line`` or ``marker``) made of symbol layers."""
    element = ET.Element(
        "symbol",
        {
            "alpha": f"{alpha:g}",
            "clip_to_extent": "1",
            "force_rhr": "0",
            "name": name,
            "type": kind,
        },
    )
    element.append(data_defined("data_defined_properties", {}))
    element.extend(layers)
    return element


def simple_fill(
    fill: str, outline: str, width: float, style: str = "solid"
) -> ET.Element:
    """Return a ``SimpleFill`` layer: colours as ``r,g,b,a``, outline width in mm.

    ``style`` is Qt's brush: ``solid``, ``no`` (outline only), ``b_diagonal``...
    """
    return symbol_layer(
        "SimpleFill",
        {
            "color": fill,
            "joinstyle": "round",
            "outline_color": outline,
            "outline_style": "solid" if width > 0 else "no",
            "outline_width": f"{width:g}",
            "outline_width_unit": "MM",
            "style": style,
        },
    )


def simple_line(colour: str, width: float, style: str = "solid") -> ET.Element:
    """Return a ``SimpleLine`` layer: colour as ``r,g,b,a``, width in mm."""
    return symbol_layer(
        "SimpleLine",
        {
            "capstyle": "round",
            "joinstyle": "round",
            "line_color": colour,
            "line_style": style,
            "line_width": f"{width:g}",
            "line_width_unit": "MM",
        },
    )


def arrow_line(
    colour: str, width: float, head: float, *, half: bool = True, edge: bool = True
) -> ET.Element:
    """Return an ``ArrowLine`` layer: a straight arrow of ``width`` mm, its head ``head`` mm.

    ``half`` draws only the half on the left of the line's direction; ``edge``
    draws a thin white edge around it.
    """
    # A thin white edge keeps the arrows readable over any fill.
    outline = simple_fill(colour, "255,255,255,200", 0.12 if edge else 0)
    fill = symbol("fill", "@0@0", [outline])
    return symbol_layer(
        "ArrowLine",
        {
            "arrow_start_width": f"{width:g}",
            "arrow_start_width_unit": "MM",
            "arrow_type": "1" if half else "0",
            "arrow_width": f"{width:g}",
            "arrow_width_unit": "MM",
            "head_length": f"{head:g}",
            "head_length_unit": "MM",
            "head_thickness": f"{head / 2:g}",
            "head_thickness_unit": "MM",
            "head_type": "0",
            "is_curved": "0",
            "is_repeated": "1",
            "offset": "0",
            "offset_unit": "MM",
        },
        fill,
    )


def half_arrow(colour: str, width: float, *, edge: bool = True) -> ET.Element:
    """Return an ``ArrowLine`` layer drawing a straight half arrow of ``width`` mm.

    The half arrow sits on the left of the line's direction, so the two flows of a
    pair (A to B, B to A) lie side by side instead of on top of each other, and
    the head shows the direction. ``edge`` draws a thin white edge around it.
    """
    return arrow_line(colour, width, max(1.6, 1.8 * width), edge=edge)


def shortened(subsymbol: ET.Element, trim: float) -> ET.Element:
    """Return a geometry generator drawing ``subsymbol`` on the line's middle part.

    ``trim`` (0-0.5) of the line's length is left out at each end, so arrows
    meeting at a place do not hide each other's heads.
    """
    expression = (
        f"line_substring($geometry, {trim:g} * length($geometry), "
        f"{1 - trim:g} * length($geometry))"
    )
    return symbol_layer(
        "GeometryGenerator",
        {"SymbolType": "Line", "geometryModifier": expression, "units": "MapUnit"},
        subsymbol,
    )


def text_style(field: str, size: float, colour: str, bold: bool) -> ET.Element:
    """Return the ``text-style`` of labels: a sans-serif font with a white halo.

    ``field`` is a column name, or an expression when it is not a plain name.
    """
    style = ET.Element(
        "text-style",
        {
            "fieldName": field,
            "isExpression": "0" if field.isidentifier() else "1",
            "fontFamily": "Sans Serif",
            "namedStyle": "Bold" if bold else "Regular",
            "fontWeight": "75" if bold else "50",
            "fontItalic": "0",
            "fontSize": f"{size:g}",
            "fontSizeUnit": "Point",
            "textColor": colour,
            "textOpacity": "1",
            "multilineHeight": "1",
            "capitalization": "0",
        },
    )
    families = ET.SubElement(style, "families")
    for family in ("Open Sans", "DejaVu Sans", "Liberation Sans", "Arial"):
        ET.SubElement(families, "family", {"name": family})
    ET.SubElement(
        style,
        "text-buffer",
        {
            "bufferDraw": "1",
            "bufferSize": "0.8",
            "bufferSizeUnits": "MM",
            "bufferColor": "255,255,255,255",
            "bufferOpacity": "0.85",
            "bufferNoFill": "1",
            "bufferJoinStyle": "128",
        },
    )
    return style


def simple_labeling(
    field: str,
    size: float,
    colour: str,
    *,
    bold: bool = False,
    show: str | None = None,
    priority: int = 5,
) -> ET.Element:
    """Return the labels of a polygon layer: ``field`` in the polygon's middle.

    ``field`` is a column or an expression (:func:`text_style`).

    ``show`` is an optional expression choosing the features labelled; labels of
    higher ``priority`` (0-10) win where they collide.
    """
    labeling = ET.Element("labeling", {"type": "simple"})
    settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
    settings.append(text_style(field, size, colour, bold))
    ET.SubElement(
        settings,
        "text-format",
        {"wrapChar": "", "autoWrapLength": "18", "useMaxLineLengthForAutoWrap": "1"},
    )
    ET.SubElement(
        settings,
        "placement",
        {
            "placement": "1",  # over the centroid (polygons)
            "centroidInside": "1",
            "centroidWhole": "0",
            "fitInPolygonOnly": "0",
            "priority": str(priority),
            "quadOffset": "4",
            "offsetType": "0",
            "dist": "0",
        },
    )
    ET.SubElement(
        settings,
        "rendering",
        {"drawLabels": "1", "obstacle": "1", "obstacleType": "1", "displayAll": "0"},
    )
    settings.append(data_defined("dd_properties", {"Show": show} if show else {}))
    return labeling


def field_configuration(
    fields: Sequence[Field], value_maps: Mapping[str, Mapping[str, str]]
) -> list[ET.Element]:
    """Return the ``fieldConfiguration`` (value maps) and ``aliases`` of the fields.

    A field with codes in ``value_maps`` shows their labels in the attribute
    table and forms; every field gets its French alias.
    """
    configuration = ET.Element("fieldConfiguration")
    aliases = ET.Element("aliases")
    for index, field in enumerate(fields):
        ET.SubElement(
            aliases,
            "alias",
            {"field": field.name, "index": str(index), "name": field.alias_fr},
        )
        codes = value_maps.get(field.name)
        if not codes:
            continue  # QGIS picks the widget from the field type
        entry = ET.SubElement(
            configuration,
            "field",
            {"name": field.name, "configurationFlags": "None"},
        )
        widget = ET.SubElement(entry, "editWidget", {"type": "ValueMap"})
        # QGIS keeps a value map as a list of {label: code} maps, in order.
        pairs: list[OptionValue] = [{label: code} for code, label in codes.items()]
        ET.SubElement(widget, "config").append(option({"map": pairs}))
    return [configuration, aliases]


def qml_document(
    fields: Sequence[Field],
    value_maps: Mapping[str, Mapping[str, str]],
    *,
    geometry: str = "none",
    renderer: ET.Element | None = None,
    labeling: ET.Element | None = None,
    categories: str = "AllStyleCategories",
) -> str:
    """Assemble a QML document: renderer, labels, value maps and aliases.

    Parameters
    ----------
    fields
        The layer's columns (aliases and value maps).
    value_maps
        Labels of coded columns by column name (:func:`observatory.layers.codes.value_maps`).
    geometry
        A key of :data:`GEOMETRY_TYPES`; ``none`` for an attribute table.
    renderer, labeling
        The ``renderer-v2`` and ``labeling`` elements, if any.
    categories
        The style categories the document holds (QGIS ``styleCategories``).
    """
    root = ET.Element(
        "qgis",
        {
            "version": QML_VERSION,
            "styleCategories": categories,
            "labelsEnabled": "1" if labeling is not None else "0",
            "hasScaleBasedVisibilityFlag": "0",
        },
    )
    if renderer is not None:
        root.append(renderer)
    if labeling is not None:
        root.append(labeling)
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"
    root.extend(field_configuration(fields, value_maps))
    ET.SubElement(root, "layerGeometryType").text = str(GEOMETRY_TYPES[geometry])
    ET.indent(root, space=" ")
    body = ET.tostring(root, encoding="unicode")
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def qgis_aliases(fields: list[Field]) -> str:
    """Return a QGIS style (``.qml``) holding French field aliases only.

    QGIS loads ``<layer>.qml`` next to a file-based layer as its default style, so
    the attribute table shows the French labels while field names stay stable.
    The full styles are :func:`observatory.layers.styles.layer_styles`'.
    """
    return qml_document(fields, {}, categories="Fields")
