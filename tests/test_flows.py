"""Flow aggregation and every indicator against numbers computed by hand.

The fixture (conftest.FLOW_ROWS) has Lyon arrondissements, an abroad code and a
commune code that belongs to no EPCI. By hand, with M the Métropole de Lyon:

- E1 residents: 300 (to M) + 400 (internal) + 100 (to E2) + 20 (abroad) = 820;
  jobs in E1: 400 + 60 (from M) = 460; reciprocity 60 / 300 = 0.2;
  main other destination E2 with 100.
- E2 residents: 500 + 250 (to M) + 10 (unmatched) = 760; jobs 500 + 100 = 600;
  nothing from M, so attraction 0 and reciprocity 0.
- M residents: 50 + 200 + 60 = 310, internal 250 (arrondissement flows roll up);
  jobs 250 + 300 + 250 + 30 (from the unmatched commune) = 830.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import COMMUNE_ROWS, E1, E2, E3, FLOW_ROWS, M

from observatory.config import ReliabilitySection
from observatory.core.errors import DataError
from observatory.geography import (
    ABROAD_CODE,
    REST_OF_FRANCE,
    UNMATCHED,
    abroad_code,
    is_abroad_code,
    is_commune_code,
    place_names,
    rollup_arrondissements,
)
from observatory.systems.codebook import group_sum
from observatory.systems.flows import (
    compare_vintages,
    flows_epci,
    flows_with_previous,
    reliability_class,
)
from observatory.systems.indicators import (
    epci_totals,
    pair_flows,
    system_indicators,
    system_matrix,
)


def epci_indicators(flows, crowns, thresholds):
    """Indicators of every system at once, as the pipeline computes them one by one."""
    return system_indicators(pair_flows(flows), epci_totals(flows), crowns, thresholds)


@pytest.fixture
def commune_flows():
    return pd.DataFrame(
        {
            "origin_commune": [r[0] for r in FLOW_ROWS],
            "destination_commune": [r[1] for r in FLOW_ROWS],
            "workers": [float(r[2]) for r in FLOW_ROWS],
        }
    ).astype({"origin_commune": "string", "destination_commune": "string"})


@pytest.fixture
def composition():
    return pd.DataFrame(
        {
            "commune_code": [r[0] for r in COMMUNE_ROWS],
            "epci_code": [r[2] for r in COMMUNE_ROWS],
        }
    )


@pytest.fixture
def crowns():
    return pd.DataFrame(
        {"metropole_code": [M] * 4, "epci_code": [M, E1, E2, E3], "crown": [0, 1, 1, 2]}
    )


@pytest.fixture
def aggregated(commune_flows, composition):
    return flows_epci(commune_flows, composition)


def _pair(flows, o, d):
    rows = flows[(flows["origin_code"] == o) & (flows["destination_code"] == d)]
    return float(rows["workers"].sum()) if len(rows) else 0.0


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("75101", "75056"),
        ("75120", "75056"),
        ("69381", "69123"),
        ("69389", "69123"),
        ("13201", "13055"),
        ("13216", "13055"),
        ("75056", "75056"),
        ("69390", "69390"),
        ("2A004", "2A004"),
        ("01001", "01001"),
    ],
    ids=[
        "paris-1",
        "paris-20",
        "lyon-1",
        "lyon-9",
        "marseille-1",
        "marseille-16",
        "paris",
        "not-an-arrondissement",
        "corse",
        "leading-zero",
    ],
)
def test_rollup_arrondissements(code, expected):
    assert rollup_arrondissements(pd.Series([code]))[0] == expected


def test_flows_epci_preserves_every_worker(aggregated, commune_flows):
    flows, report = aggregated
    assert (
        flows["workers"].sum() == pytest.approx(commune_flows["workers"].sum()) == 1920
    )
    assert report["workers_total"] == 1920
    assert report["rows_with_arrondissements_rolled_up"] == 2


def test_flows_epci_by_hand(aggregated):
    flows, _ = aggregated
    assert _pair(flows, M, M) == 250  # 69381->69266 and 69266->69266
    assert _pair(flows, E1, M) == 300  # 01001->69385 (arrondissement)
    assert _pair(flows, E2, M) == 250
    assert _pair(flows, M, E1) == 60
    assert _pair(flows, E1, E2) == 100
    assert _pair(flows, E1, abroad_code("99140")) == 20
    assert _pair(flows, UNMATCHED, M) == 30
    assert _pair(flows, E2, UNMATCHED) == 10
    assert not flows.duplicated(["origin_code", "destination_code"]).any()


def test_unmatched_and_abroad_are_reported(aggregated):
    _, report = aggregated
    assert report["unmatched_origin_codes"] == {"01999": 30.0}
    assert report["unmatched_destination_codes"] == {"01999": 10.0}
    assert report["workers_abroad_by_code"] == {"99140": 20.0}
    # The gate's figures: rows with an end unmatched, each counted once.
    assert report["unmatched_workers"] == 40.0
    assert report["unmatched_share"] == pytest.approx(40 / 1920)
    assert report["unmatched_largest"] == {"01999": 40.0}


def test_largest_unmatched_codes_are_ten_with_their_workers(composition):
    """Twelve unknown codes: the ten with most workers, an internal flow once, abroad never."""
    rows = [(f"01{900 + i}", "69123", 10.0 * (i + 1)) for i in range(12)]
    rows += [
        ("01911", "01911", 1000.0),  # internal: counted once for 01911
        ("01910", "01911", 5.0),  # both ends unmatched: counts for both codes
        ("69123", "99140", 7.0),  # abroad: never unmatched
        ("69123", "69123", 10_000.0),
    ]
    flows = pd.DataFrame(
        rows, columns=["origin_commune", "destination_commune", "workers"]
    )
    _, report = flows_epci(flows.astype({"origin_commune": "string"}), composition)
    largest = report["unmatched_largest"]
    assert list(largest) == [
        "01911", "01910", "01909", "01908", "01907",
        "01906", "01905", "01904", "01903", "01902",
    ]  # fmt: skip
    assert largest["01911"] == 120 + 1000 + 5
    assert largest["01910"] == 110 + 5
    unmatched = sum(10.0 * (i + 1) for i in range(12)) + 1000 + 5
    assert report["unmatched_workers"] == unmatched
    assert report["unmatched_share"] == pytest.approx(unmatched / (unmatched + 10_007))


def test_system_matrix(aggregated, crowns, composition):
    flows, _ = aggregated
    outside = pd.DataFrame(
        {
            "origin_code": ["200000099", E1],
            "destination_code": [M, "200000099"],
            "workers": [7.0, 3.0],
        }
    )
    matrix = system_matrix(pd.concat([flows, outside], ignore_index=True), crowns)
    assert _pair(matrix, REST_OF_FRANCE, M) == 7
    assert _pair(matrix, E1, REST_OF_FRANCE) == 3
    assert _pair(matrix, E1, "ABROAD-99140") == 20
    assert set(matrix["metropole_code"]) == {M}
    assert matrix["workers"].sum() == pytest.approx(1920 + 10)


def test_indicators_by_hand(aggregated, crowns):
    flows, _ = aggregated
    ind = epci_indicators(flows, crowns, ReliabilitySection()).set_index("epci_code")
    e1, e2, m, e3 = ind.loc[E1], ind.loc[E2], ind.loc[M], ind.loc[E3]
    assert e1["employed_residents"] == 820
    assert e1["jobs"] == 460
    assert e1["internal_flow"] == 400
    assert e1["flow_abroad"] == 20
    assert e1["flow_to_metropole"] == 300
    assert e1["flow_from_metropole"] == 60
    assert e1["dependence_share"] == pytest.approx(300 / 820)
    assert e1["attraction_share"] == pytest.approx(60 / 460)
    assert e1["reciprocity"] == pytest.approx(0.2)
    assert e1["self_containment_share"] == pytest.approx(400 / 820)
    assert e1["main_other_destination_code"] == E2
    assert e1["main_other_destination_share"] == pytest.approx(100 / 820)

    assert e2["employed_residents"] == 760
    assert e2["jobs"] == 600
    assert e2["dependence_share"] == pytest.approx(250 / 760)
    assert e2["attraction_share"] == 0
    assert e2["reciprocity"] == 0
    assert pd.isna(e2["main_other_destination_code"])  # only M and UNMATCHED

    assert m["employed_residents"] == 310
    assert m["jobs"] == 830
    assert m["self_containment_share"] == pytest.approx(250 / 310)
    assert pd.isna(m["dependence_share"])
    assert pd.isna(m["reciprocity"])
    assert m["main_other_destination_code"] == E1  # M's own flows to E1 (60)

    assert e3["employed_residents"] == 0
    assert pd.isna(e3["dependence_share"])
    assert pd.isna(e3["reciprocity"])
    assert e1["flow_to_metropole_reliability"] == "usable"
    assert e1["flow_from_metropole_reliability"] == "order_of_magnitude"


def test_main_other_destination_skips_the_metropole():
    flows = pd.DataFrame(
        {
            "origin_code": ["E", "E", "E", "E"],
            "destination_code": ["M", "A", "B", "E"],
            "workers": [50.0, 30.0, 10.0, 40.0],
        }
    )
    crowns = pd.DataFrame(
        {"metropole_code": ["M", "A"], "epci_code": ["E", "E"], "crown": [1, 1]}
    )
    ind = epci_indicators(flows, crowns, ReliabilitySection()).set_index(
        "metropole_code"
    )
    assert (
        ind.loc["M", "main_other_destination_code"] == "A"
    )  # M is the top one, skipped
    assert (
        ind.loc["A", "main_other_destination_code"] == "M"
    )  # seen from A's system, M is "other"
    assert ind.loc["M", "main_other_destination_share"] == pytest.approx(30 / 130)


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        (500.0, "reliable"),
        (499.99, "usable"),
        (200.0, "usable"),
        (199.9, "order_of_magnitude"),
        (0.0, "order_of_magnitude"),
    ],
    ids=["500", "just-below-500", "200", "just-below-200", "zero"],
)
def test_reliability_follows_insee_rule(workers, expected):
    assert reliability_class(pd.Series([workers]), ReliabilitySection())[0] == expected


def test_compare_vintages_by_hand(aggregated, crowns):
    flows, _ = aggregated
    now = epci_indicators(flows, crowns, ReliabilitySection())
    # Earlier vintage: E1 sent 200 to M (not 300), everything else equal.
    earlier_flows = flows.copy()
    earlier_flows.loc[
        (earlier_flows["origin_code"] == E1) & (earlier_flows["destination_code"] == M),
        "workers",
    ] = 200.0
    then = epci_indicators(earlier_flows, crowns, ReliabilitySection())
    out = compare_vintages(now, then).set_index("epci_code")
    assert out.loc[E1, "flow_to_metropole_previous"] == 200
    assert out.loc[E1, "flow_to_metropole_change"] == 100
    assert out.loc[E1, "employed_residents_previous"] == 720
    assert out.loc[E1, "dependence_share_change"] == pytest.approx(
        300 / 820 - 200 / 720
    )
    assert out.loc[E2, "flow_to_metropole_change"] == 0
    assert out.loc[M, "jobs_change"] == 100  # M's jobs lost 100 workers from E1 then


def test_compare_vintages_without_previous_keeps_the_columns(aggregated, crowns):
    now = epci_indicators(aggregated[0], crowns, ReliabilitySection())
    out = compare_vintages(now, None)
    assert out["dependence_share_previous"].isna().all()
    assert out["dependence_share_change"].isna().all()


def test_flows_with_previous_keeps_new_and_gone_pairs():
    now = pd.DataFrame(
        {
            "origin_code": ["A", "A"],
            "destination_code": ["B", "C"],
            "workers": [10.0, 5.0],
        }
    )
    then = pd.DataFrame(
        {
            "origin_code": ["A", "A"],
            "destination_code": ["B", "D"],
            "workers": [8.0, 3.0],
        }
    )
    out = flows_with_previous(now, then).set_index("destination_code")
    assert out.loc["B", "workers_change"] == 2
    assert out.loc["C", "workers_previous"] == 0  # new pair
    assert out.loc["D", "workers"] == 0  # gone pair stays visible
    assert out.loc["D", "workers_change"] == -3
    assert flows_with_previous(now, None)["workers_previous"].isna().all()


def test_place_names():
    names = pd.Series({"200000002": "CC de l'Est"})
    codes = pd.Series(
        ["200000002", "ABROAD-99140", "ABROAD-99999", "REST_OF_FRANCE", "UNMATCHED"]
    )
    assert place_names(codes, names).tolist() == [
        "CC de l'Est",
        "Étranger : Suisse",
        "Étranger : pays 99999",
        "Reste de la France",
        "Commune non rattachée à un EPCI",
    ]


# --------------------------------------------------------------------- coded flows
@pytest.mark.parametrize("span", [60, 10**12], ids=["dense-keys", "sparse-keys"])
def test_group_sum_is_pandas_groupby_sum_to_the_bit(span):
    """Sums by integer key are pandas' own: same order, same compensated sum."""
    rng = np.random.default_rng(3)
    keys = rng.choice(rng.integers(0, span, 200), 5000)
    values = rng.normal(0, 1, 5000) * 10.0 ** rng.integers(-8, 16, 5000)
    values[::97], values[::101] = np.nan, -0.0
    distinct, sums = group_sum(keys, values)
    expected = pd.Series(values).groupby(keys).sum()
    assert distinct.tolist() == expected.index.tolist()
    assert sums.tobytes() == expected.to_numpy().tobytes()  # 0.0 and -0.0 too


def test_coded_flows_sum_like_their_string_columns(composition):
    """EPCI flows from coded commune flows: the string groupby, number for number."""
    rng = np.random.default_rng(5)
    codes = [r[0] for r in COMMUNE_ROWS] + ["69381", "69389", "99140", "01999"]
    pairs = rng.choice(len(codes) ** 2, 60, replace=False)
    flows = pd.DataFrame(
        {
            "origin_commune": np.asarray(codes)[pairs // len(codes)],
            "destination_commune": np.asarray(codes)[pairs % len(codes)],
            "workers": rng.gamma(0.5, 200.0, 60) * 10.0 ** rng.integers(-3, 9, 60),
        }
    ).astype({"origin_commune": "string", "destination_commune": "string"})
    out, _ = flows_epci(flows, composition)
    lookup = composition.set_index("commune_code")["epci_code"]

    def place(column):
        rolled = rollup_arrondissements(flows[column])
        abroad = rolled.str.startswith("99")
        return rolled.map(lookup).mask(abroad, "ABROAD-" + rolled).fillna(UNMATCHED)

    expected = (
        pd.DataFrame(
            {
                "origin_code": place("origin_commune"),
                "destination_code": place("destination_commune"),
                "workers": flows["workers"],
            }
        )
        .astype({"origin_code": "string", "destination_code": "string"})
        .groupby(["origin_code", "destination_code"], as_index=False, sort=True)[
            ["workers"]
        ]
        .sum()
    )
    pd.testing.assert_frame_equal(out, expected, check_exact=True)
    coded = pair_flows(out)
    assert coded.between(out["origin_code"], out["destination_code"]).tolist() == (
        out["workers"].tolist()
    )
    assert coded.between(pd.Series(["nowhere"]), pd.Series([M])).tolist() == [0.0]


def test_flows_without_a_code_are_an_error(commune_flows):
    commune_flows.loc[2, "destination_commune"] = pd.NA
    with pytest.raises(DataError, match=r"flows: 1 row\(s\) without an origin"):
        flows_epci(commune_flows, pd.DataFrame(columns=["commune_code", "epci_code"]))


@pytest.mark.parametrize(
    "code",
    ["75056", "2A004", "2B999", "00000", "98999", "99000", "99999", "2C004", "2a004",
     "7505", "750560", " 75056", "75056\n", "٧٥٠٥٦", "", "AL12", "BE1234", "ZZZZZ",
     "99", "9912A"],
)  # fmt: skip
def test_code_rules_are_checked_as_python_reads_them(code):
    """Arrow checks the code patterns (RE2, no look-ahead): as Python's re would."""
    import re

    commune = re.compile(r"^(?:(?!99)[0-9]{5}|2[AB][0-9]{3})$")
    codes = pd.Series([code, None], dtype="string")
    assert is_commune_code(codes).tolist() == [bool(commune.fullmatch(code)), False]
    abroad = bool(re.fullmatch(ABROAD_CODE.pattern, code))
    assert is_abroad_code(codes).tolist() == [abroad, False]


def test_a_pair_on_two_rows_is_refused_beside_the_previous_vintage():
    now = pd.DataFrame(
        {
            "origin_code": ["A", "A"],
            "destination_code": ["B", "B"],
            "workers": [1.0, 2.0],
        }
    )
    with pytest.raises(DataError, match="on several rows"):
        flows_with_previous(now, now.iloc[:1])
