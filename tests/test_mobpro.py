"""FD_MOBPRO in memory: TRANS codings, the aggregation, the integer keys.

Cases that must be covered:
- every TRANS code of RP2016 (5 modes) and RP2021 (6 modes), floats like 5.0,
  unknown codes (DataError naming the vintage and the codes);
- residence from ARM in Paris (75104 with COMMUNE 75056), an abroad DCLT (99140);
- codes as integers: packing round-trips and keeps code point order (2A/2B,
  leading zeros, abroad codes of 3-5 characters); strings, categoricals (unused,
  unordered, ordered, missing) and Arrow dictionaries give the same table;
- bad values are reported with their row.

Reading files out of core: test_mobpro_read.py; modal split, distances and the
check against the base flux: test_modes.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mobpro_samples import (
    COLUMNS,
    CORSICA_ROWS,
    RP2016_ROWS,
    RP2021_ROWS,
    assert_same_flows,
    fd_frame,
    flows,
    synthetic_fd,
)

from observatory.core.errors import DataError
from observatory.readers.fd_mobpro import aggregate_fd as aggregate
from observatory.readers.fd_mobpro import (
    pack_codes,
    trans_to_mode,
    unpack_codes,
)
from observatory.systems.modes import MODES


# --------------------------------------------------------------------- modes
@pytest.mark.parametrize(
    ("vintage", "codes", "modes"),
    [
        (
            2016,
            ["1", "2", "3", "4", "5"],
            ["none", "walk", "two_wheel", "car", "public_transport"],
        ),
        (
            2021,
            ["1", "2", "3", "4", "5", "6"],
            [
                "none",
                "walk",
                "bicycle",
                "two_wheel_motorised",
                "car",
                "public_transport",
            ],
        ),
        (2022, [5.0, 6.0, 3.0], ["car", "public_transport", "bicycle"]),
        (2012, [1, 3, 5], ["none", "two_wheel", "public_transport"]),
        (2017, ["3", "4"], ["bicycle", "two_wheel_motorised"]),
    ],
    ids=["rp2016-strings", "rp2021-strings", "rp2022-floats", "rp2012-ints", "rp2017"],
)
def test_trans_to_mode(vintage, codes, modes):
    index = pd.RangeIndex(10, 10 + len(codes))
    result = trans_to_mode(pd.Series(codes, index=index), vintage)
    assert result.tolist() == modes
    assert result.index.equals(index)
    assert set(result) <= set(MODES)


@pytest.mark.parametrize(
    ("vintage", "codes", "pattern"),
    [
        (2016, ["1", "6"], r"RP2016: unknown TRANS code\(s\) '6'.*5 modes"),
        (2021, ["7", "2", "Z"], r"RP2021: unknown TRANS code\(s\) '7', 'Z'"),
        (2021, [5.5], r"RP2021: unknown TRANS code\(s\) 5\.5"),
        (2021, ["1", None], r"RP2021: unknown TRANS code\(s\) <missing>"),
    ],
    ids=["six-in-rp2016", "seven-and-z", "not-integral", "missing"],
)
def test_unknown_trans_code(vintage, codes, pattern):
    with pytest.raises(DataError, match=pattern):
        trans_to_mode(pd.Series(codes), vintage)


def test_bad_vintage():
    with pytest.raises(DataError, match="census year"):
        trans_to_mode(pd.Series(["1"]), 21)


# --------------------------------------------------------------------- aggregation
def test_aggregate_fd_rp2021_by_hand():
    result = aggregate(fd_frame(RP2021_ROWS), 2021)
    expected = flows(
        [
            ("01001", "01001", "none", 2.0),
            ("01001", "01001", "walk", 1.0),
            ("01001", "99140", "car", 3.25),
            ("01002", "01001", "car", 1.75),
            ("01002", "01001", "two_wheel_motorised", 0.5),
            ("75104", "75108", "bicycle", 1.0),
            ("75104", "75108", "public_transport", 4.0),
        ]
    )
    pd.testing.assert_frame_equal(result, expected)


def test_aggregate_fd_rp2016_keeps_two_wheelers_whole():
    result = aggregate(fd_frame(RP2016_ROWS), 2016)
    expected = flows(
        [
            ("01001", "01002", "car", 5.5),
            ("01001", "01002", "none", 1.0),
            ("01001", "01002", "public_transport", 0.5),
            ("01001", "01002", "two_wheel", 3.0),
            ("01001", "01002", "walk", 2.0),
        ]
    )
    pd.testing.assert_frame_equal(result, expected)


def test_aggregate_fd_does_not_change_its_input():
    frame = fd_frame(RP2021_ROWS)
    before = frame.copy()
    aggregate(frame, 2021)
    pd.testing.assert_frame_equal(frame, before)


def test_aggregate_fd_collects_every_problem():
    rows = [*RP2021_ROWS]
    rows[2] = ("75056", "75104", "75108", "3", "abc")
    rows[4] = ("01001", "ZZZZZ", "01001", "7", "2.0")
    rows[5] = ("0100", "ZZZZZ", "01001", "2", "1.0")
    with pytest.raises(DataError) as info:
        aggregate(fd_frame(rows), 2021)
    message = str(info.value)
    assert "RP2021" in message
    assert (
        "IPONDI must be a number >= 0 and <= 35,000,000 (the employed people of "
        "France): row 3: 'abc'" in message
    )
    assert "TRANS must be one of ['1', '2', '3', '4', '5', '6']" in message
    assert "row 5: '7'" in message
    assert (
        "COMMUNE (or ARM) must be a 5-character commune code: row 6: '0100'" in message
    )


def test_aggregate_fd_rejects_six_in_rp2016():
    with pytest.raises(DataError, match=r"RP2016.*TRANS must be one of.*row 1: '6'"):
        aggregate(fd_frame([("01001", "ZZZZZ", "01002", "6", "1.0")]), 2016)


def test_aggregate_fd_missing_column():
    with pytest.raises(DataError, match=r"missing column\(s\) \['IPONDI'\]"):
        aggregate(fd_frame(RP2021_ROWS).drop(columns="IPONDI"), 2021)


def test_aggregate_fd_empty_frame():
    result = aggregate(pd.DataFrame(columns=COLUMNS, dtype=str), 2021)
    assert result.empty
    assert list(result.columns) == [
        "origin_commune",
        "destination_commune",
        "mode",
        "workers",
    ]
    assert list(result.dtypes) == ["string", "string", "string", "float64"]


# --------------------------------------------------------------------- fast paths
def test_aggregate_fd_same_on_arrow_strings_categoricals_and_objects():
    frame = synthetic_fd(2_000, seed=5)
    expected = aggregate(frame.astype(object), 2021)
    arrow = frame.astype(dict.fromkeys(COLUMNS, "string[pyarrow]"))
    assert_same_flows(aggregate(arrow, 2021), expected)
    categories = frame.astype(dict.fromkeys(COLUMNS[:4], "category"))
    assert_same_flows(aggregate(categories, 2021), expected)


# --------------------------------------------------------------------- integer keys
def test_code_packing_round_trips_and_keeps_code_point_order():
    rng = np.random.default_rng(4)
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    random = ["".join(rng.choice(alphabet, rng.integers(1, 6))) for _ in range(3_000)]
    fixed = ["01001", "2A004", "2B033", "29019", "30007", "99140", "ZZZZZ"]
    fixed += ["BE1", "BE10", "BE2", "AL12", "LU123", "0", "00000", "ZZZZ"]
    codes = pd.Series(fixed + random, dtype="string")
    packed = pack_codes(codes)
    assert (packed >= 0).all()
    assert unpack_codes(packed).tolist() == codes.tolist()
    order = np.argsort(packed, kind="stable")
    assert codes.iloc[order].tolist() == sorted(codes.tolist())


@pytest.mark.parametrize(
    "code",
    ["", "010011", "01 01", "2a004", "01\x0001", "\u0660\u0661\u0660\u0660\u0661"],
)
def test_code_packing_refuses_what_is_no_code(code):
    assert pack_codes(pd.Series([code, None], dtype="string")).tolist() == [-1, -1]


def test_aggregate_fd_corsica_abroad_and_leading_zeros_sorted_as_strings():
    result = aggregate(fd_frame(CORSICA_ROWS), 2021)
    assert list(result.itertuples(index=False, name=None)) == [
        ("01001", "01001", "car", 1.0),
        ("01001", "AL12", "car", 3.0),
        ("01001", "BE1", "car", 1.0),
        ("01001", "BE10", "car", 1.0),
        ("29019", "2A004", "public_transport", 1.0),
        ("2A004", "2A004", "walk", 0.5),
        ("2A004", "2B033", "car", 2.0),
        ("2B033", "2A004", "car", 1.5),
        ("30007", "99140", "none", 0.5),
    ]
    assert list(result.dtypes) == ["string", "string", "string", "float64"]
    # The same table as a plain pandas groupby, sorted the pandas way.
    frame = fd_frame(CORSICA_ROWS)
    expected = (
        frame.assign(
            origin_commune=frame["COMMUNE"].str.strip(),
            destination_commune=frame["DCLT"].str.strip(),
            mode=trans_to_mode(frame["TRANS"], 2021),
            workers=frame["IPONDI"].astype(float),
        )
        .groupby(["origin_commune", "destination_commune", "mode"])["workers"]
        .sum()
        .reset_index()
        .astype({"origin_commune": "string", "destination_commune": "string"})
    )
    expected["mode"] = expected["mode"].astype("string")
    assert_same_flows(result, expected)


def test_aggregate_fd_categorical_edge_cases():
    frame = fd_frame(RP2021_ROWS + CORSICA_ROWS)
    expected = aggregate(frame, 2021)
    # Unused categories (bad ones too), categories in no order, an ordered
    # categorical, TRANS as integer categories, ARM missing (= COMMUNE).
    cats = frame.copy()
    cats["COMMUNE"] = pd.Categorical(
        frame["COMMUNE"],
        categories=["XXX", *sorted(set(frame["COMMUNE"]), reverse=True), "99999"],
    )
    cats["ARM"] = pd.Categorical(
        frame["ARM"].where(frame["ARM"] != "ZZZZZ"), categories=["75104", "75999"]
    )
    cats["DCLT"] = pd.Categorical(frame["DCLT"], ordered=True)
    cats["TRANS"] = pd.Categorical(frame["TRANS"].astype(float).astype(int))
    assert_same_flows(aggregate(cats, 2021), expected)
    # Arrow dictionaries, as read_fd's partitions hold them.
    table = pa.Table.from_pandas(frame.astype({"IPONDI": float}), preserve_index=False)
    arrow = table.select(["COMMUNE", "ARM", "DCLT", "TRANS"]).to_pandas(
        types_mapper=lambda t: (
            pd.ArrowDtype(pa.dictionary(pa.int32(), t))
            if pa.types.is_string(t) or pa.types.is_large_string(t)
            else None
        )
    )
    for column in ["COMMUNE", "ARM", "DCLT", "TRANS"]:
        encoded = pa.chunked_array(
            [
                table.column(column).slice(0, 7).combine_chunks().dictionary_encode(),
                table.column(column).slice(7).combine_chunks().dictionary_encode(),
            ]
        )  # two chunks with dictionaries of their own
        arrow[column] = pd.Series(pd.arrays.ArrowExtensionArray(encoded))
    arrow["IPONDI"] = frame["IPONDI"].astype(float)
    assert_same_flows(aggregate(arrow, 2021), expected)
    # Arrow-backed columns that are not dictionaries, missing values included.
    plain = frame.astype(pd.ArrowDtype(pa.string()))
    plain["TRANS"] = frame["TRANS"].astype(float).astype(pd.ArrowDtype(pa.float64()))
    plain.loc[3, "ARM"] = None
    assert_same_flows(aggregate(plain, 2021), expected)


def test_aggregate_fd_bad_code_in_a_category_that_is_used():
    frame = fd_frame(RP2021_ROWS).astype({"DCLT": "category"})
    frame.loc[3, "DCLT"] = "01001"
    frame["DCLT"] = frame["DCLT"].cat.add_categories(["1001"])
    frame.loc[5, "DCLT"] = "1001"
    with pytest.raises(DataError, match=r"DCLT must be .*row 6: '1001'"):
        aggregate(frame, 2021)


def test_aggregate_fd_refuses_digits_of_other_scripts():
    frame = fd_frame(RP2021_ROWS)
    frame.loc[6, "COMMUNE"] = "\u0660\u0661\u0660\u0660\u0662"  # Arabic-Indic 01002
    with pytest.raises(
        DataError, match="must be a 5-character commune code: row 7: '٠١٠٠٢'"
    ):
        aggregate(frame, 2021)
    # Unused, the same category does no harm.
    frame = fd_frame(RP2021_ROWS).astype({"COMMUNE": "category"})
    frame["COMMUNE"] = frame["COMMUNE"].cat.add_categories(
        ["\u0660\u0661\u0660\u0660\u0662"]
    )
    assert_same_flows(aggregate(frame, 2021), aggregate(fd_frame(RP2021_ROWS), 2021))


def test_aggregate_fd_missing_arm_uses_commune_and_missing_dclt_is_an_error():
    frame = fd_frame(RP2021_ROWS)
    frame.loc[3:, "ARM"] = None
    assert_same_flows(aggregate(frame, 2021), aggregate(fd_frame(RP2021_ROWS), 2021))
    frame.loc[4, "DCLT"] = None
    with pytest.raises(DataError, match=r"DCLT must be .*: row 5: <NA>$"):
        aggregate(frame, 2021)
