"""QGIS styles of the systems drawn by the flows (issue 15).

- The marks of ``epci_indicators`` that show where contiguity and the flows
  disagree, added over each class's fill (:func:`disagreement_layers`): the
  hidden crown (placed by the flows beyond the contiguity crowns) outlined with
  long magenta dashes, the nominal members (crown EPCI with almost no
  dependence) hatched dark teal, the EPCI of the métropole's attraction area
  that no rule placed outlined with orange dots. Each mark is a symbol layer
  switched on by its flag (QGIS's data-defined ``enabled``), so the class fill
  stays visible underneath; the maps of :mod:`observatory.report` draw the same
  marks with the same colours.
- ``dominant_flows``: one arrow per dominated EPCI towards its dominant
  destination, brown, its width by the workers' classes of the flow lines.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.layers.codes import value_maps
from observatory.layers.fields import Field
from observatory.layers.qgis import (
    arrow_line,
    data_defined,
    qml_document,
    rgba,
    shortened,
    symbol,
    symbol_layer,
)

#: Colours of the marks of disagreement (maps and QGIS).
HIDDEN_CROWN_COLOUR = "#c51b7d"
NOMINAL_MEMBER_COLOUR = "#01665e"
AAV_ONLY_COLOUR = "#e66101"

#: Colour of the dominant flows.
DOMINANT_FLOW_COLOUR = "#8c510a"

#: The marks: (flag expression, legend label, kind) in drawing order.
DISAGREEMENTS = (
    (
        'coalesce("nominal_member", false)',
        "Membre nominal : couronne de contiguïté sans dépendance",
        "nominal_member",
    ),
    (
        'coalesce("hidden_crown", false)',
        "Couronne cachée : placé par les flux au-delà des couronnes",
        "hidden_crown",
    ),
    (
        "coalesce(\"placed_by\", '') = 'aav'",
        "Dans l'aire d'attraction, placé par aucune règle",
        "aav_only",
    ),
)


def _switched(layer: ET.Element, expression: str) -> ET.Element:
    """Replace a symbol layer's data-defined properties: drawn where ``expression`` holds."""
    old = layer.find("data_defined_properties")
    if old is not None:
        layer.remove(old)
    layer.insert(1, data_defined("data_defined_properties", {"enabled": expression}))
    return layer


def disagreement_layers() -> list[ET.Element]:
    """Return the symbol layers marking hidden crown, nominal members and AAV-only EPCI."""
    marks = {
        "nominal_member": {
            "color": rgba(NOMINAL_MEMBER_COLOUR),
            "outline_color": rgba(NOMINAL_MEMBER_COLOUR, 0),
            "outline_style": "no",
            "outline_width": "0",
            "style": "f_diagonal",
        },
        "hidden_crown": {
            "color": rgba("#ffffff", 0),
            "outline_color": rgba(HIDDEN_CROWN_COLOUR),
            "outline_style": "dash",
            "outline_width": "0.9",
            "style": "no",
        },
        "aav_only": {
            "color": rgba("#ffffff", 0),
            "outline_color": rgba(AAV_ONLY_COLOUR),
            "outline_style": "dot",
            "outline_width": "0.7",
            "style": "no",
        },
    }
    layers = []
    for expression, _, kind in DISAGREEMENTS:
        props = {"joinstyle": "round", "outline_width_unit": "MM", **marks[kind]}
        layers.append(_switched(symbol_layer("SimpleFill", props), expression))
    return layers


def _arrow(colour: str, width: float) -> ET.Element:
    # A plain (two-sided) straight arrow: a dominant flow has no reverse twin.
    return arrow_line(colour, width, max(1.8, 2.0 * width), half=False)


def dominant_flows_style(
    fields: list[Field],
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the style of ``dominant_flows``: brown arrows, width classes of ``workers``.

    The classes are the flow lines' (:func:`observatory.layers.styles.flow_classes`);
    fragile flows are faint; the largest are drawn on top.
    """
    from observatory.layers.styles import FLOW_TRIM, FRAGILE_ALPHA, flow_classes

    thresholds = reliability or ReliabilitySection()
    renderer = ET.Element(
        "renderer-v2",
        {
            "type": "RuleRenderer",
            "symbollevels": "0",
            "enableorderby": "1",
            "forceraster": "0",
        },
    )
    rules = ET.SubElement(
        renderer, "rules", {"key": "{8f6d7c44-1c1e-5b1a-9d1b-000000000015}"}
    )
    symbols = ET.SubElement(renderer, "symbols")
    for index, (condition, label, width) in enumerate(flow_classes(thresholds)):
        alpha = FRAGILE_ALPHA if index == 0 else 235
        arrow = symbol(
            "line", f"@{index}@0", [_arrow(rgba(DOMINANT_FLOW_COLOUR, alpha), width)]
        )
        symbols.append(symbol("line", str(index), [shortened(arrow, FLOW_TRIM)]))
        ET.SubElement(
            rules,
            "rule",
            {
                "key": f"{{8f6d7c44-1c1e-5b1a-9d1b-{index + 1:012d}}}",
                "symbol": str(index),
                "label": label,
                "filter": condition,
            },
        )
    order = ET.SubElement(renderer, "orderby")
    clause = ET.SubElement(order, "orderByClause", {"asc": "1", "nullsFirst": "1"})
    clause.text = '"workers"'
    return qml_document(
        fields,
        value_maps(classification, thresholds),
        geometry="line",
        renderer=renderer,
    )
