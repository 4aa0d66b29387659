"""Systems drawn by the flows beside the contiguity crowns, on numbers computed by hand.

Métropole M, contiguity crowns A and B (crown 1) and C (crown 2); X lies across
an estuary (no neighbour of anyone), Y further away, Z sends nobody to M.
Flows (origin -> destination, workers) and dependence on M:

    A -> A 600, A -> M 300, A -> Y 100    300 / 1000 = 0.30   both rules
    B -> B 950, B -> M 30,  B -> C 20      30 / 1000 = 0.03   contiguity only; nominal (< 0.05)
    C -> C 425, C -> M 75                  75 / 500  = 0.15   both (the threshold counts)
    X -> X 500, X -> M 200                200 / 700  = 0.29   flows only: hidden crown
    Y -> Y 900, Y -> M 100                100 / 1000 = 0.10   neither: not listed
    Z -> Z 300                                                 neither
    M -> M 5000, M -> A 100, M -> abroad 50

So by rule: contiguity M A B C; flows M A C X; both M A B C X.
"""

import math

import pandas as pd
import pytest

from observatory.config.territories import TerritoriesSection
from observatory.core.errors import ConfigError
from observatory.geography import abroad_code
from observatory.systems.functional import (
    dependence_on_metropoles,
    employed_residents,
    functional_crowns,
    system_members,
)

M, A, B, C, X, Y, Z = (f"2000001{i:02d}" for i in range(7))
N, D, E = "200000200", "200000110", "200000111"

FLOWS = [
    (A, A, 600), (A, M, 300), (A, Y, 100),
    (B, B, 950), (B, M, 30), (B, C, 20),
    (C, C, 425), (C, M, 75),
    (X, X, 500), (X, M, 200),
    (Y, Y, 900), (Y, M, 100),
    (Z, Z, 300),
    (M, M, 5000), (M, A, 100), (M, abroad_code("99140"), 50),
]  # fmt: skip
CROWNS = [(M, M, 0), (M, A, 1), (M, B, 1), (M, C, 2)]


def flows_table(rows=FLOWS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin_code": pd.array([r[0] for r in rows], dtype="string"),
            "destination_code": pd.array([r[1] for r in rows], dtype="string"),
            "workers": [float(r[2]) for r in rows],
        }
    )


def crowns_table(rows=CROWNS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "metropole_code": pd.array([r[0] for r in rows], dtype="string"),
            "epci_code": pd.array([r[1] for r in rows], dtype="string"),
            "crown": pd.array([r[2] for r in rows], dtype="int8"),
        }
    )


def territories(**changes) -> TerritoriesSection:
    return TerritoriesSection(**changes)


def worked_functional(rule="contiguity") -> pd.DataFrame:
    """The worked example's rows (also used by tests/test_aav.py)."""
    return functional_crowns(
        flows_table(), crowns_table(), territories(crown_rule=rule)
    )


def test_dependence_by_hand():
    dependence = dependence_on_metropoles(flows_table(), [M]).set_index("epci_code")
    assert dependence["dependence_share"].to_dict() == pytest.approx(
        {A: 0.3, B: 0.03, C: 0.15, X: 200 / 700, Y: 0.1}
    )
    assert employed_residents(flows_table())[M] == 5150.0


def test_placements_by_hand():
    rows = worked_functional()
    assert list(zip(rows["epci_code"], rows["placed_by"], strict=True)) == [
        (M, "metropole"),
        (A, "both"),
        (C, "both"),
        (B, "contiguity"),
        (X, "flows"),
    ]
    by_code = rows.set_index("epci_code")
    assert by_code["hidden_crown"].to_dict() == {
        M: False,
        A: False,
        C: False,
        B: False,
        X: True,
    }
    assert by_code["nominal_member"].to_dict() == {
        M: False,
        A: False,
        C: False,
        B: True,
        X: False,
    }
    assert pd.isna(by_code.loc[X, "crown"])
    assert by_code.loc[C, "crown"] == 2
    assert math.isnan(by_code.loc[M, "dependence_share"])
    assert math.isnan(by_code.loc[M, "flow_to_metropole"])
    assert by_code.loc[X, "dependence_share"] == pytest.approx(200 / 700)


@pytest.mark.parametrize(
    ("rule", "members"),
    [
        ("contiguity", {M, A, B, C}),
        ("flows", {M, A, C, X}),
        ("both", {M, A, B, C, X}),
    ],
    ids=["contiguity", "flows", "both"],
)
def test_crown_rule_picks_the_members(rule, members):
    rows = worked_functional(rule)
    assert set(rows.loc[rows["in_system"], "epci_code"]) == members
    crowns = system_members(rows)
    assert set(crowns["epci_code"]) == members
    assert list(crowns.columns) == ["metropole_code", "epci_code", "crown", "placed_by"]


def test_thresholds_move_the_rows():
    rows = functional_crowns(
        flows_table(),
        crowns_table(),
        territories(hidden_crown_min_share=0.1, nominal_member_max_share=0.1),
    ).set_index("epci_code")
    assert rows.loc[Y, "placed_by"] == "flows"  # 0.10 reaches 0.10
    assert not rows.loc[C, "nominal_member"]  # 0.15 is not under 0.10
    assert rows.loc[B, "nominal_member"]


def test_crown_epci_without_flow_to_the_metropole_or_without_residents():
    crowns = crowns_table([*CROWNS, (M, D, 2), (M, E, 2)])
    flows = flows_table([*FLOWS, (D, D, 100)])
    rows = functional_crowns(flows, crowns, territories()).set_index("epci_code")
    # D sends nobody to M: dependence 0, a nominal member.
    assert rows.loc[D, "dependence_share"] == 0.0
    assert rows.loc[D, "nominal_member"]
    # E has no employed resident in the flows: its dependence is unknown.
    assert math.isnan(rows.loc[E, "dependence_share"])
    assert not rows.loc[E, "nominal_member"]
    assert rows.loc[E, "placed_by"] == "contiguity"


def test_an_epci_in_two_flow_systems():
    flows = flows_table([*FLOWS, (X, N, 150), (N, N, 800)])
    crowns = crowns_table([*CROWNS, (N, N, 0), (N, Y, 1)])
    rows = functional_crowns(flows, crowns, territories(crown_rule="flows"))
    x_rows = rows[rows["epci_code"] == X].set_index("metropole_code")
    assert x_rows["dependence_share"].to_dict() == pytest.approx(
        {M: 200 / 850, N: 150 / 850}
    )
    assert x_rows["hidden_crown"].all()
    # Y is N's crown but sends it nothing: in N's contiguity system only.
    y_of_n = rows[(rows["metropole_code"] == N) & (rows["epci_code"] == Y)].iloc[0]
    assert y_of_n["placed_by"] == "contiguity"
    assert not y_of_n["in_system"]


def test_inputs_unchanged():
    flows, crowns = flows_table(), crowns_table()
    before = (flows.copy(), crowns.copy())
    functional_crowns(flows, crowns, territories())
    pd.testing.assert_frame_equal(flows, before[0])
    pd.testing.assert_frame_equal(crowns, before[1])


# --------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"crown_rule": "aav"},
            r"crown_rule must be one of \['contiguity', 'flows', 'both'\], got 'aav'",
        ),
        (
            {"dominant_weight": "population"},
            r"dominant_weight must be one of \['jobs', 'inflow'\]",
        ),
        (
            {"hidden_crown_min_share": 1.5},
            r"hidden_crown_min_share must lie in \[0, 1\], got 1.5",
        ),
        (
            {"hidden_crown_min_share": 0.0, "nominal_member_max_share": 0.0},
            "hidden_crown_min_share must be above 0",
        ),
        (
            {"nominal_member_max_share": 0.2},
            r"nominal_member_max_share \(0.2\) must not exceed hidden_crown_min_share \(0.15\)",
        ),
        ({"aav_member_min_share": -0.1}, r"aav_member_min_share must lie in \[0, 1\]"),
    ],
    ids=[
        "rule",
        "weight",
        "share-range",
        "zero-threshold",
        "floor-above-threshold",
        "aav-share",
    ],
)
def test_territories_checks(changes, match):
    with pytest.raises(ConfigError, match=r"c\.toml: \[territories\] " + match):
        territories(**changes).check("c.toml: [territories]")


def test_territories_from_toml(tmp_path):
    from observatory.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(
        '[inputs]\ncommunes = "a.shp"\nepci_composition = "b.xlsx"\nflows = "c.zip"\n'
        '[territories]\ncrown_rule = "both"\nhidden_crown_min_share = 0.2\n'
        'dominant_weight = "inflow"\n',
        encoding="utf-8",
    )
    section = load_config(path).territories
    assert (section.crown_rule, section.hidden_crown_min_share) == ("both", 0.2)
    assert section.dominant_weight == "inflow"
    assert section.nominal_member_max_share == 0.05
    path.write_text(path.read_text().replace('"both"', "1"), encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"\[territories\] crown_rule must be str, got 1"
    ):
        load_config(path)
