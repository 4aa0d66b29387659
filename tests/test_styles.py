"""The QGIS styles, as documents: renderers, legends, labels, value maps, aliases.

tests/test_qgis.py opens them in a real QGIS; these checks need none.
"""

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from observatory.config import (
    ClassRule,
    ReliabilitySection,
    configs_dir,
    load_classification,
)
from observatory.layers.codes import value_maps
from observatory.layers.qgis import QML_VERSION, qgis_aliases
from observatory.layers.schemas import layer_fields
from observatory.layers.styles import (
    CLASS_COLOURS,
    class_colours,
    flow_classes,
    layer_styles,
)


@pytest.fixture(scope="module")
def classification():
    return load_classification(configs_dir() / "classification.toml")


@pytest.fixture(scope="module")
def styles(classification):
    return {
        name: ET.fromstring(text)
        for name, text in layer_styles(classification, ReliabilitySection()).items()
    }


def _option_map(element):
    return {o.get("name"): o.get("value") for o in element.find("Option")}


def test_every_layer_has_a_style_with_every_alias(styles, classification):
    fields = layer_fields(classification)
    assert (
        set(styles)
        == set(fields)
        == {
            "epci_indicators",
            "flows",
            "metropoles",
            "dominant_flows",
            "flow_matrix",
        }
    )
    for layer, root in styles.items():
        assert root.tag == "qgis"
        assert root.get("version") == QML_VERSION
        aliases = {a.get("field"): a.get("name") for a in root.iter("alias")}
        assert aliases == {f.name: f.alias_fr for f in fields[layer]}, layer


def test_table_style_has_no_renderer(styles):
    matrix = styles["flow_matrix"]
    assert matrix.find("renderer-v2") is None
    assert matrix.find("layerGeometryType").text == "4"


def test_epci_categorized_by_class_with_french_labels(styles, classification):
    renderer = styles["epci_indicators"].find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == "epci_class"
    categories = renderer.find("categories").findall("category")
    assert [c.get("value") for c in categories] == [
        "metropole",
        *(r.class_code for r in classification.rules),
        "sans_donnees",
    ]
    assert [c.get("label") for c in categories] == [
        "Métropole",
        "Intégrée",
        "Interdépendante",
        "Polarisée",
        "Attirée par un autre pôle",
        "Autonome",
        "Peu liée",
        "Sans données",
    ]
    fills = {
        symbol.get("name"): _option_map(symbol.find("layer"))["color"]
        for symbol in renderer.find("symbols").findall("symbol")
    }
    assert len(set(fills.values())) == len(categories)  # one colour per class


def test_palette_is_fixed_and_extends_to_new_classes(classification):
    colours = class_colours(classification)
    for code, colour in CLASS_COLOURS.items():
        assert colours[code] == colour
    extra = replace(
        classification,
        rules=(ClassRule("periurbaine", "Périurbaine", ()), *classification.rules),
    )
    extended = class_colours(extra)
    assert extended["periurbaine"] not in set(colours.values())
    assert len(set(extended.values())) == len(extended)
    labels = [
        c.get("label")
        for c in ET.fromstring(layer_styles(extra)["epci_indicators"]).iter("category")
    ]
    assert "Périurbaine" in labels


def test_epci_labels_short_names_of_the_crowns(styles):
    root = styles["epci_indicators"]
    assert root.get("labelsEnabled") == "1"
    text = root.find("labeling/settings/text-style")
    assert text.get("isExpression") == "1"
    assert '"epci_name"' in text.get("fieldName")
    show = root.find(".//dd_properties//Option[@name='Show']")
    # An empty crown (beyond the contiguity crowns: hidden crown) is labelled too.
    expression = {o.get("name"): o.get("value") for o in show}["expression"]
    assert expression == 'coalesce("crown", 1) > 0'


def test_metropoles_outlined_with_bold_labels(styles):
    root = styles["metropoles"]
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "singleSymbol"
    fill = _option_map(renderer.find("symbols/symbol/layer"))
    assert fill["style"] == "no"
    assert float(fill["outline_width"]) >= 0.5
    text = root.find("labeling/settings/text-style")
    assert text.get("fieldName") == "metropole_name"
    assert text.get("fontWeight") == "75"
    assert root.get("labelsEnabled") == "1"


def _leaf_rules(renderer):
    return [r for r in renderer.iter("rule") if r.get("symbol") is not None]


def test_flows_width_classes_largest_on_top(styles):
    renderer = styles["flows"].find("renderer-v2")
    assert renderer.get("type") == "RuleRenderer"
    assert renderer.get("enableorderby") == "1"
    clause = renderer.find("orderby/orderByClause")
    assert (clause.text, clause.get("asc")) == ('"workers"', "1")
    groups = renderer.find("rules").findall("rule")
    assert [g.get("label") for g in groups[:2]] == [
        "Flux avec la métropole (vers ou depuis)",
        "Flux entre EPCI des couronnes",
    ]
    symbols = {s.get("name"): s for s in renderer.find("symbols")}
    for group in groups[:2]:
        widths = []
        for rule in group.findall("rule"):
            arrow = symbols[rule.get("symbol")].find(".//layer[@class='ArrowLine']")
            widths.append(float(_option_map(arrow)["arrow_width"]))
            assert _option_map(arrow)["arrow_type"] == "1"  # half arrow: direction
        assert widths == sorted(widths)
        assert len(set(widths)) == len(widths)


def test_fragile_flows_faint_and_zero_flows_hidden(styles):
    renderer = styles["flows"].find("renderer-v2")
    symbols = {s.get("name"): s for s in renderer.find("symbols")}

    def alpha(rule):
        fill = symbols[rule.get("symbol")].find(".//layer[@class='SimpleFill']")
        return int(_option_map(fill)["color"].split(",")[3])

    leaves = _leaf_rules(renderer)
    fragile = [
        r for r in leaves if r.get("filter").startswith('"reliability" = \'order_of')
    ]
    robust = [r for r in leaves if "<> 'order_of_magnitude'" in r.get("filter")]
    assert len(fragile) == 2
    assert max(alpha(r) for r in fragile) < 100 < min(alpha(r) for r in robust)
    zero = [r for r in leaves if r.get("filter") == '"workers" = 0']
    assert len(zero) == 1
    assert zero[0].get("checkstate") == "0"
    assert all(r.get("checkstate", "1") == "1" for r in leaves if r not in zero)


def test_flow_classes_follow_the_thresholds():
    default = flow_classes(ReliabilitySection())
    assert [label for _, label, _ in default] == [
        "Moins de 200 actifs (ordre de grandeur, fragile)",
        "200 à 500 actifs",
        "500 à 1\u00a0000 actifs",
        "1\u00a0000 à 2\u00a0500 actifs",
        "2\u00a0500 à 5\u00a0000 actifs",
        "5\u00a0000 actifs et plus",
    ]
    strict = flow_classes(ReliabilitySection(reliable_min=2000, usable_min=800))
    assert [label for _, label, _ in strict] == [
        "Moins de 800 actifs (ordre de grandeur, fragile)",
        "800 à 2\u00a0000 actifs",
        "2\u00a0000 à 2\u00a0500 actifs",
        "2\u00a0500 à 5\u00a0000 actifs",
        "5\u00a0000 actifs et plus",
    ]
    assert strict[1][0].endswith('"workers" > 0 AND "workers" < 2000')
    assert strict[-1][0].endswith('"workers" >= 5000')


def test_value_maps_of_coded_fields(styles, classification):
    maps = value_maps(classification)
    for layer, root in styles.items():
        names = {f.name for f in layer_fields(classification)[layer]}
        found = {}
        for field in root.find("fieldConfiguration"):
            widget = field.find("editWidget")
            assert widget.get("type") == "ValueMap"
            pairs = widget.find("config/Option/Option[@name='map']")
            found[field.get("name")] = {
                o.get("value"): o.get("name") for item in pairs for o in item
            }
        assert found == {k: v for k, v in maps.items() if k in names}, layer
    flows = {f.get("name") for f in styles["flows"].find("fieldConfiguration")}
    assert {"reliability", "flow_type", "origin_crown"} <= flows
    assert maps["reliability"]["order_of_magnitude"].startswith("Ordre de grandeur")
    assert maps["epci_class"]["peu_liee"] == "Peu liée"
    assert maps["crown"]["1"] == "1re couronne"


def test_alias_only_style_still_available(classification):
    text = qgis_aliases(layer_fields(classification)["epci_indicators"])
    root = ET.fromstring(text)
    assert root.get("styleCategories") == "Fields"
    assert 'field="dependence_share"' in text


def test_docs_data_dictionary_lists_the_codes(classification):
    doc = (
        Path(__file__).resolve().parents[1] / "docs" / "data-dictionary.md"
    ).read_text(encoding="utf-8")
    assert "## Coded values" in doc
    assert "| `epci_class` | `peu_liee` | Peu liée |" in doc
