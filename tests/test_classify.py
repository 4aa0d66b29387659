"""Each classification rule at its threshold and just below it."""

import numpy as np
import pandas as pd
import pytest

from observatory.config import configs_dir, load_classification
from observatory.systems.classify import classify_epci

RULES = load_classification(configs_dir() / "classification.toml")
EPS = 1e-9
BASE = {
    "crown": 1,
    "employed_residents": 1000.0,
    "dependence_share": 0.0,
    "attraction_share": 0.0,
    "reciprocity": 0.0,
    "self_containment_share": 0.0,
    "main_other_destination_share": 0.0,
}


def _classify(**values):
    row = BASE | values
    out = classify_epci(pd.DataFrame([row]), RULES)
    return out["epci_class"][0], out["class_rule"][0]


@pytest.mark.parametrize(
    ("values", "at", "below"),
    [
        ({"dependence_share": 0.40}, "integree", "polarisee"),
        ({"dependence_share": 0.15, "reciprocity": 0.25}, "interdependante", None),
        ({"dependence_share": 0.15}, "polarisee", "peu_liee"),
        ({"main_other_destination_share": 0.15}, "multipolarisee", "peu_liee"),
        ({"self_containment_share": 0.50}, "autonome", "peu_liee"),
    ],
    ids=["integree", "interdependante", "polarisee", "multipolarisee", "autonome"],
)
def test_rule_at_and_just_below_threshold(values, at, below):
    assert _classify(**values)[0] == at
    if below is not None:
        lowered = {k: v - EPS for k, v in values.items()}
        assert _classify(**lowered)[0] == below


def test_interdependante_needs_both_conditions():
    assert _classify(dependence_share=0.15, reciprocity=0.25 - EPS)[0] == "polarisee"
    assert _classify(dependence_share=0.15 - EPS, reciprocity=0.25)[0] == "peu_liee"


def test_first_match_wins_and_rule_is_reported():
    code, rule = _classify(
        dependence_share=0.5, reciprocity=0.9, self_containment_share=0.6
    )
    assert code == "integree"
    assert rule == "dependence_share >= 0.4"
    assert _classify()[1] == "otherwise"


def test_metropole_and_no_data_rows():
    frame = pd.DataFrame(
        [
            BASE | {"crown": 0},
            BASE | {"employed_residents": 0.0, "dependence_share": np.nan},
        ]
    )
    out = classify_epci(frame, RULES)
    assert list(out["epci_class"]) == ["metropole", "sans_donnees"]


def test_missing_indicator_satisfies_no_rule():
    assert (
        _classify(dependence_share=np.nan, self_containment_share=0.7)[0] == "autonome"
    )
