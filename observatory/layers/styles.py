"""The QGIS styles of the layers: what a planner sees when a layer opens.

- ``epci_indicators``: EPCI filled by class (fixed palette, French labels: the
  métropole, each class of the classification, "Sans données"), named; the
  hidden crown, nominal members and AAV-only EPCI marked over their fill
  (:mod:`observatory.layers.flow_styles`).
- ``metropoles``: the métropoles outlined (no fill, the EPCI under them stay
  visible), named in bold.
- ``flows``: half arrows whose width grows with the workers (classes), drawn
  largest on top; the two directions of a pair lie side by side; flows under
  INSEE's usable threshold are faint; pairs with no worker in this vintage (kept
  for the change from the previous one) are hidden until ticked in the legend.
- ``dominant_flows``: brown arrows of the dominant flows, width classes of the
  workers (:func:`observatory.layers.flow_styles.dominant_flows_style`).
- ``flow_matrix``: aliases and value maps only (an attribute table).

Every style carries the French field aliases and value maps of coded columns.
The functions are pure: they return QML text (:mod:`observatory.layers.qgis`).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.layers.codes import class_labels, count_fr, value_maps
from observatory.layers.flow_styles import disagreement_layers, dominant_flows_style
from observatory.layers.qgis import (
    half_arrow,
    qml_document,
    rgba,
    shortened,
    simple_fill,
    simple_labeling,
    simple_line,
    symbol,
)
from observatory.layers.schemas import Field, layer_fields
from observatory.systems.classify import METROPOLE_CLASS, NO_DATA_CLASS
from observatory.systems.flows import ORDER_OF_MAGNITUDE

#: Fill colour of each class of the shipped classification, and of the métropole.
CLASS_COLOURS = {
    METROPOLE_CLASS: "#9a6fbf",
    "integree": "#d7191c",
    "interdependante": "#f46d43",
    "polarisee": "#fdae61",
    "multipolarisee": "#abd9e9",
    "autonome": "#a6d96a",
    "peu_liee": "#e8e1d1",
}


#: Colours taken in turn by classes a custom classification adds.
EXTRA_COLOURS = ("#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fccde5", "#bc80bd")


#: Outline of the EPCI polygons and of the métropoles.
EPCI_OUTLINE, METROPOLE_OUTLINE = "#8c8c8c", "#1a1a1a"


#: The groups of flows (legend label, filter, colour): with the métropole first.
FLOW_GROUPS = (
    (
        "Flux avec la métropole (vers ou depuis)",
        "\"flow_type\" IN ('to_metropole', 'from_metropole')",
        "#1d2f6f",
    ),
    (
        "Flux entre EPCI des couronnes",
        "\"flow_type\" NOT IN ('to_metropole', 'from_metropole')",
        "#5c6b7a",
    ),
)


#: Opacity (0-255) of fragile flows, under INSEE's usable threshold.
FRAGILE_ALPHA = 70


#: Share of a flow line left out at each end (arrow heads clear of the places).
FLOW_TRIM = 0.08


#: Lower bounds (workers) of the flow classes above INSEE's reliable threshold.
FLOW_BREAKS = (1_000.0, 2_500.0, 5_000.0)


#: Width (mm) of the flow classes, from the first usable class up.
FLOW_WIDTHS = (0.6, 1.0, 1.6, 2.4, 3.4, 4.4)


#: Label of an EPCI: its name without the legal form ("Communauté de communes du
#: Pays de Craon" is labelled "Pays de Craon"); the attribute keeps the full name.
SHORT_EPCI_NAME = (
    'regexp_replace("epci_name", '
    "'^(Communauté (de communes|d[''’]agglomération|urbaine)|CC|CA|CU) "
    "(du |de la |des |de l[''’]|d[''’]|de )?', '')"
)


_KEYS = uuid.UUID("6f1d3c2e-7a9b-4c1d-8e2f-0a1b2c3d4e5f")


def _key(*parts: str) -> str:
    # Rule keys are stable across runs: a project's legend state keeps matching.
    return "{" + str(uuid.uuid5(_KEYS, "/".join(parts))) + "}"


def class_colours(classification: ClassificationSection) -> dict[str, str]:
    """Return the fill colour of every ``epci_class`` code, in legend order."""
    extra = iter(EXTRA_COLOURS * 4)
    colours = {}
    for code in class_labels(classification):
        if code == NO_DATA_CLASS:
            colours[code] = "#ffffff"
        else:
            colours[code] = CLASS_COLOURS.get(code) or next(extra)
    return colours


def _class_symbol(name: str, code: str, colour: str) -> ET.Element:
    outline = rgba(EPCI_OUTLINE)
    if code == NO_DATA_CLASS:  # white, grey hatching: visibly "nothing to say"
        layers = [
            simple_fill(rgba(colour), outline, 0.2),
            simple_fill(rgba("#9a9a9a"), outline, 0, style="b_diagonal"),
        ]
    else:
        layers = [simple_fill(rgba(colour), outline, 0.2)]
    # Hidden crown, nominal member, AAV only: marks over the fill, by flag.
    return symbol("fill", name, [*layers, *disagreement_layers()])


def epci_style(
    fields: list[Field],
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the style of ``epci_indicators``: EPCI categorized by ``epci_class``.

    One category per class with its French label, in the order of the legend:
    the métropole, the classification's classes, then "Sans données". EPCI of
    the crowns are labelled with their name (the métropole by ``metropoles``).
    """
    renderer = ET.Element(
        "renderer-v2",
        {
            "type": "categorizedSymbol",
            "attr": "epci_class",
            "symbollevels": "0",
            "enableorderby": "0",
            "forceraster": "0",
        },
    )
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    labels = class_labels(classification)
    for index, (code, colour) in enumerate(class_colours(classification).items()):
        ET.SubElement(
            categories,
            "category",
            {
                "value": code,
                "label": labels[code],
                "symbol": str(index),
                "render": "true",
                "uuid": _key("epci", code),
            },
        )
        symbols.append(_class_symbol(str(index), code, colour))
    source = ET.SubElement(renderer, "source-symbol")
    source.append(_class_symbol("0", NO_DATA_CLASS, "#ffffff"))
    labeling = simple_labeling(
        SHORT_EPCI_NAME, 7, rgba("#262626"), show='coalesce("crown", 1) > 0', priority=4
    )
    return qml_document(
        fields,
        value_maps(classification, reliability),
        geometry="polygon",
        renderer=renderer,
        labeling=labeling,
    )


def metropoles_style(
    fields: list[Field],
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the style of ``metropoles``: outlines without fill, bold names."""
    renderer = ET.Element(
        "renderer-v2",
        {
            "type": "singleSymbol",
            "symbollevels": "0",
            "enableorderby": "0",
            "forceraster": "0",
        },
    )
    outline = simple_fill(rgba("#ffffff", 0), rgba(METROPOLE_OUTLINE), 0.9, "no")
    ET.SubElement(renderer, "symbols").append(symbol("fill", "0", [outline]))
    labeling = simple_labeling(
        "metropole_name", 10, rgba(METROPOLE_OUTLINE), bold=True, priority=10
    )
    return qml_document(
        fields,
        value_maps(classification, reliability),
        geometry="polygon",
        renderer=renderer,
        labeling=labeling,
    )


def flow_classes(reliability: ReliabilitySection) -> list[tuple[str, str, float]]:
    """Return the drawn flow classes as (filter expression, legend label, width mm).

    The first class holds the fragile flows (INSEE's ``order_of_magnitude``, under
    ``usable_min``); the next ones are bounded by ``reliable_min`` and
    :data:`FLOW_BREAKS`, the last one open.
    """
    fragile = f"\"reliability\" = '{ORDER_OF_MAGNITUDE}'"
    robust = f"coalesce(\"reliability\", '') <> '{ORDER_OF_MAGNITUDE}'"
    bounds = [
        reliability.reliable_min,
        *(b for b in FLOW_BREAKS if b > reliability.reliable_min),
    ]
    usable = count_fr(reliability.usable_min)
    classes = [
        (
            f'{fragile} AND "workers" > 0',
            f"Moins de {usable} actifs (ordre de grandeur, fragile)",
            0.3,
        )
    ]
    low: float | None = None
    for high, width in zip([*bounds, None], FLOW_WIDTHS, strict=False):
        condition = f'"workers" >= {low:g}' if low is not None else '"workers" > 0'
        if high is not None:
            condition += f' AND "workers" < {high:g}'
        start = count_fr(low if low is not None else reliability.usable_min)
        label = (
            f"{start} à {count_fr(high)} actifs"
            if high is not None
            else f"{start} actifs et plus"
        )
        classes.append((f"{robust} AND {condition}", label, width))
        low = high
    return classes


def _flow_symbol(name: str, colour: str, fragile: bool, width: float) -> ET.Element:
    # A half arrow on the middle 84 % of the line: heads stay clear of the hub.
    # Fragile flows are faint, without the white edge of the others.
    alpha = FRAGILE_ALPHA if fragile else 235
    arrow_layer = half_arrow(rgba(colour, alpha), width, edge=not fragile)
    arrow = symbol("line", f"@{name}@0", [arrow_layer])
    return symbol("line", name, [shortened(arrow, FLOW_TRIM)])


def _flow_group(
    parent: ET.Element,
    symbols: ET.Element,
    group: tuple[str, str, str],
    classes: list[tuple[str, str, float]],
) -> None:
    """Add one flow group's rule (no symbol) and its width classes as children."""
    label, expression, colour = group
    rule = ET.SubElement(
        parent,
        "rule",
        {"key": _key("flows", label), "label": label, "filter": expression},
    )
    for index, (condition, class_label, width) in enumerate(classes):
        name = str(len(symbols))
        symbols.append(_flow_symbol(name, colour, index == 0, width))
        ET.SubElement(
            rule,
            "rule",
            {
                "key": _key("flows", label, class_label),
                "symbol": name,
                "label": class_label,
                "filter": condition,
            },
        )


def flows_style(
    fields: list[Field],
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the style of ``flows``: rule-based width classes of ``workers``.

    Two groups, flows with the métropole (dark) and between EPCI of the crowns
    (grey), each with the width classes of :func:`flow_classes`. Features are
    drawn by increasing ``workers`` (largest on top). Fragile flows are faint;
    pairs with no worker in this vintage have an unticked rule.
    """
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
    rules = ET.SubElement(renderer, "rules", {"key": _key("flows")})
    symbols = ET.SubElement(renderer, "symbols")
    for group in FLOW_GROUPS:
        _flow_group(rules, symbols, group, flow_classes(thresholds))
    zero = str(len(symbols))
    dashed = simple_line(rgba("#7f7f7f", 160), 0.3, "dash")
    symbols.append(symbol("line", zero, [dashed]))
    ET.SubElement(
        rules,
        "rule",
        {
            "key": _key("flows", "zero"),
            "symbol": zero,
            "label": "Aucun actif à ce millésime (paire du millésime précédent)",
            "filter": '"workers" = 0',
            "checkstate": "0",
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


def table_style(
    fields: list[Field],
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the style of an attribute table (``flow_matrix``): aliases, value maps."""
    return qml_document(fields, value_maps(classification, reliability))


_STYLES = {
    "epci_indicators": epci_style,
    "flows": flows_style,
    "metropoles": metropoles_style,
    "dominant_flows": dominant_flows_style,
    "flow_matrix": table_style,
}


def layer_styles(
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> dict[str, str]:
    """Return the QML style of every layer, by layer name (``flows``, ``flow_matrix``...).

    A territory's layer (``flows_REU``) takes its layer's style. ``reliability``
    holds the thresholds of the flow classes (INSEE's defaults when None).
    """
    fields: Mapping[str, list[Field]] = layer_fields(classification)
    return {
        layer: _STYLES[layer](fields[layer], classification, reliability)
        for layer in fields
    }
