"""Pair and system measures against numbers computed by hand.

EPCI M (the métropole), A and B (its crowns), C outside. Flows:

    A -> M 300, M -> A 100, A -> A 600, A -> B 50, A -> abroad 20
    B -> A 30,  B -> B 400, B -> M 200
    M -> M 1000, M -> C 10, C -> M 40, C -> C 200

Employed residents: A 970, B 630, M 1110, C 240. Jobs: M 1540, A 730, B 450,
C 210.

A -> M: reverse 100, gross 400, net 200, asymmetry 200 / 400 = 0.5, intensity
300 / sqrt(970 x 1540), the geometric mean of A's dependence 300 / 970 and of
the share of M's jobs held by A's residents, 300 / 1540. A -> B: gross 80, net 20, asymmetry 0.25.

System {M, A, B}: flows inside 300 + 100 + 600 + 50 + 30 + 400 + 200 + 1000 =
2680, of which between two EPCI 680 and between two crown EPCI 50 + 30 = 80:
polycentricity 80 / 680; self-containment 2680 / (970 + 630 + 1110) = 2680 /
2710; job containment 2680 / (1540 + 730 + 450) = 2680 / 2720.
"""

import math

import pandas as pd
import pytest

from observatory.geography import REST_OF_FRANCE, abroad_code
from observatory.systems.pairs import pair_measures, system_measures

M, A, B, C = (f"20000030{i}" for i in range(4))
ABROAD = abroad_code("99140")

ROWS = [
    (A, M, 300), (M, A, 100), (A, A, 600), (A, B, 50), (A, ABROAD, 20),
    (B, A, 30), (B, B, 400), (B, M, 200),
    (M, M, 1000), (M, C, 10), (C, M, 40), (C, C, 200),
]  # fmt: skip


@pytest.fixture
def flows():
    return pd.DataFrame(
        {
            "origin_code": pd.array([r[0] for r in ROWS], dtype="string"),
            "destination_code": pd.array([r[1] for r in ROWS], dtype="string"),
            "workers": [float(r[2]) for r in ROWS],
        }
    )


def line(measured, origin, destination):
    pick = (measured["origin_code"] == origin) & (
        measured["destination_code"] == destination
    )
    return measured[pick].iloc[0]


def test_pair_measures_by_hand(flows):
    measured = pair_measures(flows)
    a_m = line(measured, A, M)
    assert (a_m["reverse_workers"], a_m["gross_flow"], a_m["net_flow"]) == (
        100.0,
        400.0,
        200.0,
    )
    assert a_m["asymmetry"] == 0.5
    assert a_m["interaction_intensity"] == pytest.approx(300 / math.sqrt(970 * 1540))
    assert a_m["interaction_intensity"] == pytest.approx(
        math.sqrt(300 / 970 * 300 / 1540)
    )
    m_a = line(measured, M, A)
    assert (m_a["net_flow"], m_a["asymmetry"]) == (-200.0, -0.5)
    assert m_a["interaction_intensity"] == pytest.approx(100 / math.sqrt(1110 * 730))
    a_b = line(measured, A, B)
    assert (a_b["gross_flow"], a_b["net_flow"], a_b["asymmetry"]) == (80.0, 20.0, 0.25)
    # No pair within an EPCI or with a place abroad.
    for origin, destination in ((A, A), (A, ABROAD)):
        row = line(measured, origin, destination)
        assert row[["gross_flow", "asymmetry", "interaction_intensity"]].isna().all()
    assert measured["interaction_intensity"].dropna().between(0, 1).all()


def test_lines_of_a_system_matrix_keep_their_columns(flows):
    matrix = pd.DataFrame(
        {
            "metropole_code": [M, M],
            "origin_code": pd.array([B, REST_OF_FRANCE], dtype="string"),
            "destination_code": pd.array([M, M], dtype="string"),
            "workers": [200.0, 40.0],
        }
    )
    measured = pair_measures(flows, matrix)
    assert list(measured.columns[:4]) == list(matrix.columns)
    assert measured.loc[0, "reverse_workers"] == 0.0
    assert measured.loc[0, "asymmetry"] == 1.0  # one-way
    assert measured.loc[1, ["gross_flow", "interaction_intensity"]].isna().all()


def test_system_measures_by_hand(flows):
    members = pd.DataFrame({"metropole_code": [M, M, M], "epci_code": [M, A, B]})
    record = system_measures(flows, members).iloc[0]
    assert record["members"] == 3
    assert record["internal_workers"] == 2680.0
    assert record["between_epci_flow"] == 680.0
    assert record["between_crown_flow"] == 80.0
    assert record["polycentricity_share"] == pytest.approx(80 / 680)
    assert record["self_containment_share"] == pytest.approx(2680 / 2710)
    assert record["job_containment_share"] == pytest.approx(2680 / 2720)


def test_a_system_without_exchanges(flows):
    members = pd.DataFrame({"metropole_code": [C], "epci_code": [C]})
    record = system_measures(flows, members).iloc[0]
    assert math.isnan(record["polycentricity_share"])
    assert record["self_containment_share"] == pytest.approx(200 / 240)


def test_inputs_unchanged(flows):
    before = flows.copy()
    pair_measures(flows)
    pd.testing.assert_frame_equal(flows, before)
