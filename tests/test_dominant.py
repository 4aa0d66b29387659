"""Dominant flows (Nystuen & Dacey) on a worked example computed by hand.

Six EPCI A..F (flows origin -> destination, workers)::

    A -> A 100, A -> B 60, A -> C 40, A -> abroad 10
    B -> B 300, B -> C 80, B -> A 20, B -> unmatched 5
    C -> C 500, C -> B 50
    D -> D 200, D -> A 30, D -> E 30
    E -> E 40,  E -> D 10
    F -> F 10

Employed residents: A 210, B 405, C 550, D 260, E 50, F 10.
Jobs (weight "jobs", internal flow included): A 100+20+30 = 150, B 60+300+50 =
410, C 40+80+500 = 620, D 200+10 = 210, E 30+40 = 70, F 10.
Inflow (weight "inflow", internal flow left out): A 50, B 110, C 120, D 10,
E 30, F 0.

Largest flow to another EPCI: A -> B 60, B -> C 80, C -> B 50, D -> A or E (30
each: the tie goes to the heavier, A under both weights), E -> D 10, F none.

By jobs: A -> B (410 > 150) and B -> C (620 > 410) are dominated links, C -> B
is not (410 < 620); D -> A is not (150 < 210); E -> D is (210 > 70). Two trees:
C <- B <- A (C dominant, B intermediate, A dominated; levels 0, 1, 2) and
D <- E (D dominant, E dominated); F independent.

By inflow: A -> B (110 > 50), B -> C (120 > 110), D -> A (50 > 10) are
dominated links; E -> D is not (10 < 30). One tree C <- B <- A <- D (levels 0,
1, 2, 3: A and B intermediate, D dominated); E and F independent.

A's dominant share: 60 / 210 of its employed residents, 60 / (210 - 100) of
those working outside A.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from observatory.core.errors import DataError
from observatory.geography import UNMATCHED, abroad_code
from observatory.systems.dominant import dominant_flows, epci_weights

A, B, C, D, E, F = (f"2000000{i:02d}" for i in range(1, 7))

ROWS = [
    (A, A, 100),
    (A, B, 60),
    (A, C, 40),
    (A, abroad_code("99140"), 10),
    (B, B, 300),
    (B, C, 80),
    (B, A, 20),
    (B, UNMATCHED, 5),
    (C, C, 500),
    (C, B, 50),
    (D, D, 200),
    (D, A, 30),
    (D, E, 30),
    (E, E, 40),
    (E, D, 10),
    (F, F, 10),
]


def flows_table(rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin_code": pd.array([r[0] for r in rows], dtype="string"),
            "destination_code": pd.array([r[1] for r in rows], dtype="string"),
            "workers": [float(r[2]) for r in rows],
        }
    )


@pytest.fixture
def flows():
    return flows_table()


def by_code(frame, column):
    return frame.set_index("epci_code")[column].to_dict()


def test_weights_by_hand(flows):
    assert epci_weights(flows, "jobs").to_dict() == {
        A: 150.0,
        B: 410.0,
        C: 620.0,
        D: 210.0,
        E: 70.0,
        F: 10.0,
    }
    assert epci_weights(flows, "inflow").to_dict() == {
        A: 50.0,
        B: 110.0,
        C: 120.0,
        D: 10.0,
        E: 30.0,
        F: 0.0,
    }


def test_forest_by_jobs(flows):
    result = dominant_flows(flows, "jobs")
    nodes = result.nodes
    assert list(nodes["epci_code"]) == [A, B, C, D, E, F]
    destination = nodes.set_index("epci_code")["dominant_destination_code"]
    assert destination.dropna().to_dict() == {A: B, B: C, C: B, D: A, E: D}
    assert pd.isna(destination[F])
    assert by_code(nodes, "dominated") == {
        A: True,
        B: True,
        C: False,
        D: False,
        E: True,
        F: False,
    }
    assert by_code(nodes, "terminal_code") == {A: C, B: C, C: C, D: D, E: D, F: F}
    assert by_code(nodes, "level") == {A: 2, B: 1, C: 0, D: 0, E: 1, F: 0}
    assert by_code(nodes, "node_role") == {
        A: "dominated",
        B: "intermediate",
        C: "dominant",
        D: "dominant",
        E: "dominated",
        F: "independent",
    }
    assert by_code(nodes, "dominated_epci") == {A: 0, B: 1, C: 1, D: 1, E: 0, F: 0}
    assert by_code(nodes, "tree_epci") == {A: 3, B: 3, C: 3, D: 2, E: 2, F: 1}
    edges = result.edges
    assert list(zip(edges["origin_code"], edges["destination_code"], strict=True)) == [
        (A, B),
        (B, C),
        (E, D),
    ]
    assert edges["workers"].tolist() == [60.0, 80.0, 10.0]
    assert edges["origin_level"].tolist() == [2, 1, 1]
    assert edges["destination_weight"].tolist() == [410.0, 620.0, 210.0]


def test_forest_by_inflow(flows):
    nodes = dominant_flows(flows, "inflow").nodes
    assert by_code(nodes, "terminal_code") == {A: C, B: C, C: C, D: C, E: E, F: F}
    assert by_code(nodes, "level") == {A: 2, B: 1, C: 0, D: 3, E: 0, F: 0}
    assert by_code(nodes, "node_role") == {
        A: "intermediate",
        B: "intermediate",
        C: "dominant",
        D: "dominated",
        E: "independent",
        F: "independent",
    }
    assert by_code(nodes, "tree_epci")[C] == 4


def test_shares_and_residents(flows):
    nodes = dominant_flows(flows).nodes.set_index("epci_code")
    assert nodes.loc[A, "employed_residents"] == 210.0
    assert nodes.loc[B, "employed_residents"] == 405.0
    assert nodes.loc[A, "dominant_share"] == pytest.approx(60 / 210)
    assert nodes.loc[A, "dominant_commuter_share"] == pytest.approx(60 / 110)
    # F sends nobody elsewhere: no destination, its shares are missing.
    assert np.isnan(nodes.loc[F, "dominant_flow"])
    assert np.isnan(nodes.loc[F, "dominant_share"])
    # Abroad and unmatched are never destinations.
    assert set(nodes.index) == {A, B, C, D, E, F}


def test_tie_goes_to_the_heavier_destination_whatever_the_row_order(flows):
    shuffled = flows.sample(frac=1.0, random_state=7).reset_index(drop=True)
    for table in (flows, shuffled, flows.iloc[::-1]):
        assert by_code(dominant_flows(table).nodes, "dominant_destination_code")[D] == A


def test_equal_weights_do_not_dominate():
    rows = [(A, A, 10), (A, B, 5), (B, B, 10), (B, A, 5)]
    nodes = dominant_flows(flows_table(rows)).nodes
    assert not nodes["dominated"].any()
    assert set(nodes["node_role"]) == {"independent"}


def test_weights_given_as_a_series(flows):
    sizes = pd.Series({A: 1.0, B: 2.0, C: 3.0, D: 4.0, E: 5.0, F: 6.0})
    nodes = dominant_flows(flows, sizes).nodes
    # D's tie (A or E, 30 each) now goes to E, heavier by these sizes (5 > 1),
    # and dominates D (5 > 4); E -> D does not (4 < 5), C -> B does not (2 < 3).
    assert by_code(nodes, "dominant_destination_code")[D] == E
    assert by_code(nodes, "dominated") == {
        A: True,
        B: True,
        C: False,
        D: True,
        E: False,
        F: False,
    }


def test_missing_weight_or_unknown_weight_name_is_refused(flows):
    with pytest.raises(DataError, match=r"no weight for EPCI \['200000006'\]"):
        dominant_flows(flows, pd.Series({A: 1.0, B: 2.0, C: 3.0, D: 4.0, E: 5.0}))
    with pytest.raises(DataError, match=r"weight must be one of \['jobs', 'inflow'\]"):
        dominant_flows(flows, "population")


def test_input_unchanged(flows):
    before = flows.copy()
    dominant_flows(flows)
    pd.testing.assert_frame_equal(flows, before)


NAV = Path(__file__).parent / "data" / "flows_nav_grand_est_2011.csv"


@pytest.fixture(scope="module")
def nav_flows():
    """R ``flows``' ``nav`` data: commuters between Grand Est urban areas, 2011."""
    nav = pd.read_csv(NAV, dtype={"i": str, "j": str})
    return pd.DataFrame(
        {
            "origin_code": nav["i"].astype("string"),
            "destination_code": nav["j"].astype("string"),
            "workers": nav["fij"].astype("float64"),
        }
    )


def test_nav_copy_matches_the_vignette(nav_flows):
    # ``stat_mat(mat)`` and ``compare_mat`` in the package's vignette.
    assert len(nav_flows) == 3350
    assert nav_flows["workers"].sum() == 2_306_577
    between = nav_flows[nav_flows["origin_code"] != nav_flows["destination_code"]]
    assert (len(between), between["workers"].sum()) == (3191, 313_292)


def test_same_result_as_r_flows_nodal_flows(nav_flows):
    """``compare_mat(mat, nodal_flows(mat))`` as the flows vignette prints it.

    ``nodal_flows`` keeps each unit's largest outgoing flow (diagonal removed)
    when its destination receives more (column sums, our ``inflow`` weight):
    134 links, 100,781 workers, 25 connected components once isolates are left
    out, min 4, quartiles 188 / 382 / 588 as printed, max 8,654, mean 752,
    sd 1,192. ``map_nodal_flows`` then lists the heaviest nodes: Nancy 18,119,
    Strasbourg 18,057, Metz 17,927, Mulhouse 14,577, Colmar 9,666, Belfort 8,785.
    """
    result = dominant_flows(nav_flows, "inflow")
    links = result.edges["workers"]
    assert len(links) == 134
    assert links.sum() == 100_781
    assert (links.min(), links.max()) == (4.0, 8654.0)
    assert round(links.mean()) == 752
    assert round(links.std()) == 1192
    # R's summary() prints with digits=0, rounding halves to even.
    assert [round(q) for q in links.quantile([0.25, 0.5, 0.75])] == [188, 382, 588]
    trees = result.nodes.groupby("terminal_code")["epci_code"].size()
    assert (trees > 1).sum() == 25
    assert (result.nodes["node_role"] == "dominant").sum() == 25
    heaviest = epci_weights(nav_flows, "inflow").nlargest(6)
    assert heaviest.to_dict() == {
        "20": 18119.0,
        "9": 18057.0,
        "24": 17927.0,
        "34": 14577.0,
        "64": 9666.0,
        "73": 8785.0,
    }
