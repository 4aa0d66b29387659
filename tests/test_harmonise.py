"""Commune code harmonisation (observatory.readers.passage, observatory.systems.harmonise).

Cases covered: a merger into a commune nouvelle (flows summed, a flow between the
two old communes becomes internal), a chained change, a Paris arrondissement, an
unknown code, an abroad code, an ambiguous (reused) old code; both passage
layouts (INSEE mouvements, etalab); bad columns, bad codes, cycles; real IDF
flows of RP 2014 brought to the 2026 geography.
"""

from __future__ import annotations

import gzip
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import MVT_HEADER

from observatory.core.errors import DataError
from observatory.readers.passage import passage_from_mouvements, read_commune_passage
from observatory.systems.harmonise import harmonise_codes, harmonise_flows, passage_map

ETALAB_HEADER = "code_ancien,code_actuel,nom_actuel,nom_ancien,source"

# Hand-made passage: 01020 merged into the commune nouvelle 01010 (whose chef-lieu
# keeps its code, hence the identity row of a commune déléguée); 02001 -> 02002
# in one year, 02002 -> 02003 later; 55273 reused by INSEE (two new codes).
PASSAGE = pd.DataFrame(
    {
        "old_code": ["01010", "01020", "02001", "02002", "55273", "55273"],
        "new_code": ["01010", "01010", "02002", "02003", "55245", "55386"],
    },
    dtype="string",
)
TARGET = {"01010", "02003", "04001", "55245", "55386", "75056", "2A004"}
FLOW_ROWS = [
    ("01010", "01010", 100.0),
    ("01020", "01020", 40.0),
    ("01010", "01020", 10.0),
    ("01020", "01010", 5.0),
    ("01010", "04001", 30.0),
    ("01020", "04001", 20.0),
    ("02001", "01010", 7.5),
    ("02003", "01010", 2.5),
    ("75104", "75056", 12.25),
    ("75056", "75056", 100.0),
    ("03999", "01010", 3.0),
    ("01010", "03999", 1.5),
    ("01010", "99140", 6.0),
    ("01020", "99140", 4.0),
    ("55273", "01010", 8.0),
]


def _flows(rows=FLOW_ROWS) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["origin_commune", "destination_commune", "workers"]
    )
    frame[["origin_commune", "destination_commune"]] = frame[
        ["origin_commune", "destination_commune"]
    ].astype("string")
    return frame


def _as_dict(flows: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {
        (o, d): w
        for o, d, w in flows[
            ["origin_commune", "destination_commune", "workers"]
        ].itertuples(index=False)
    }


# --------------------------------------------------------------------- passage_map
def test_passage_map_resolves_chains_and_flags_ambiguous_codes():
    """02001 -> 02002 -> 02003 gives 02001 -> 02003; identity rows are dropped;
    55273 has two new codes, both kept and flagged."""
    mapping = passage_map(PASSAGE)
    assert list(mapping.columns) == ["old_code", "new_code", "ambiguous"]
    got = {(o, n): a for o, n, a in mapping.itertuples(index=False, name=None)}
    assert got == {
        ("01020", "01010"): False,
        ("02001", "02003"): False,
        ("02002", "02003"): False,
        ("55273", "55245"): True,
        ("55273", "55386"): True,
    }
    assert mapping["ambiguous"].dtype == bool


def test_passage_map_chain_into_ambiguous_code_is_ambiguous():
    passage = pd.DataFrame(
        {
            "old_code": ["A0001", "B0001", "B0001"],
            "new_code": ["B0001", "C0001", "D0001"],
        }
    )
    mapping = passage_map(passage)
    assert mapping.loc[mapping["old_code"] == "A0001", "new_code"].tolist() == [
        "C0001",
        "D0001",
    ]
    assert mapping["ambiguous"].all()


@pytest.mark.parametrize(
    "pairs",
    [
        [("01001", "01002"), ("01002", "01001")],
        [("01001", "01002"), ("01002", "01003"), ("01003", "01002")],
    ],
    ids=["two-codes", "tail-into-loop"],
)
def test_passage_map_cycle_is_an_error(pairs):
    passage = pd.DataFrame(pairs, columns=["old_code", "new_code"])
    with pytest.raises(DataError, match=r"cycle through code\(s\) .*'01002'"):
        passage_map(passage)


def test_passage_map_missing_column():
    with pytest.raises(DataError, match=r"missing column\(s\) \['new_code'\]"):
        passage_map(pd.DataFrame({"old_code": ["01001"]}))


# --------------------------------------------------------------------- harmonise
def test_harmonise_flows_hand_computed():
    """Expected output, computed by hand from FLOW_ROWS (total 349.75):

    - 01020 -> 01010 (merger): 01010->01010 = 100 + 40 (01020->01020)
      + 10 (01010->01020) + 5 (01020->01010) = 155;
      01010->04001 = 30 + 20 = 50; 01010->99140 = 6 + 4 = 10 (abroad kept).
    - 02001 -> 02002 -> 02003 (chain): 02003->01010 = 7.5 + 2.5 = 10.
    - 75104 -> 75056 (arrondissement): 75056->75056 = 12.25 + 100 = 112.25.
    - 03999 unknown: 03999->01010 = 3, 01010->03999 = 1.5, reported 4.5.
    - 55273 ambiguous: 55273->01010 = 8 kept, reported 8.
    Sum: 155 + 50 + 10 + 10 + 112.25 + 3 + 1.5 + 8 = 349.75.
    workers_mapped: rows with 01020 (40 + 10 + 5 + 20 + 4 = 79) or 02001 (7.5) = 86.5.
    """
    flows = _flows()
    before = flows.copy()
    out, report = harmonise_flows(flows, PASSAGE, TARGET)

    pd.testing.assert_frame_equal(flows, before)  # input unchanged
    assert _as_dict(out) == pytest.approx(
        {
            ("01010", "01010"): 155.0,
            ("01010", "04001"): 50.0,
            ("01010", "99140"): 10.0,
            ("02003", "01010"): 10.0,
            ("75056", "75056"): 112.25,
            ("03999", "01010"): 3.0,
            ("01010", "03999"): 1.5,
            ("55273", "01010"): 8.0,
        },
        rel=1e-12,
    )
    assert len(out) == 8
    assert not out.duplicated(["origin_commune", "destination_commune"]).any()
    assert out["origin_commune"].dtype == "string"
    assert out["workers"].dtype == "float64"

    assert report["codes_mapped"] == {"01020": "01010", "02001": "02003"}
    assert report["arrondissements_rolled_up"] == {"75104": "75056"}
    assert report["workers_mapped"] == pytest.approx(86.5, rel=1e-12)
    assert report["unmapped_codes"] == pytest.approx({"03999": 4.5}, rel=1e-12)
    assert report["ambiguous_codes"] == pytest.approx({"55273": 8.0}, rel=1e-12)
    assert report["workers_total_before"] == pytest.approx(349.75, rel=1e-12)
    assert report["workers_total_after"] == pytest.approx(349.75, rel=1e-12)
    assert out["workers"].sum() == pytest.approx(flows["workers"].sum(), rel=1e-12)


def test_harmonised_sums_are_those_of_the_string_codes():
    """Every pair of codes, random workers: the string groupby, number for number."""
    rng = np.random.default_rng(11)
    codes = sorted({c for row in FLOW_ROWS for c in row[:2]} | {"2A004", "69381"})
    pairs = [(o, d) for o in codes for d in codes]
    workers = rng.gamma(0.5, 50.0, len(pairs)) * 10.0 ** rng.integers(
        -4, 10, len(pairs)
    )
    flows = _flows([(o, d, w) for (o, d), w in zip(pairs, workers, strict=True)])
    out, report = harmonise_flows(flows, PASSAGE, TARGET)
    expected = (
        flows.assign(
            origin_commune=harmonise_codes(flows["origin_commune"], PASSAGE, TARGET),
            destination_commune=harmonise_codes(
                flows["destination_commune"], PASSAGE, TARGET
            ),
        )
        .groupby(["origin_commune", "destination_commune"], as_index=False, sort=True)[
            ["workers"]
        ]
        .sum()
    )
    pd.testing.assert_frame_equal(out, expected, check_exact=True)
    assert report["workers_total_after"] == float(expected["workers"].sum())


def test_harmonise_flows_accepts_a_resolved_map_and_an_index():
    out_raw, report_raw = harmonise_flows(_flows(), PASSAGE, TARGET)
    out_map, report_map = harmonise_flows(
        _flows(), passage_map(PASSAGE), pd.Index(sorted(TARGET))
    )
    pd.testing.assert_frame_equal(out_raw, out_map)
    assert report_raw == report_map


def test_harmonise_flows_missing_column():
    with pytest.raises(DataError, match=r"flows: missing column\(s\) \['workers'\]"):
        harmonise_flows(_flows().drop(columns="workers"), PASSAGE, TARGET)


def test_harmonise_codes_same_rules():
    codes = pd.Series(
        ["01020", "02001", "75104", "99140", "55273", "03999", "01010", "2A004", None],
        index=[10, 11, 12, 13, 14, 15, 16, 17, 18],
        name="commune_code",
        dtype="string",
    )
    out = harmonise_codes(codes, PASSAGE, TARGET)
    assert out.index.tolist() == codes.index.tolist()
    assert out.name == "commune_code"
    assert out.tolist()[:-1] == [
        "01010",  # merged
        "02003",  # chained
        "75056",  # arrondissement
        "99140",  # abroad
        "55273",  # ambiguous: kept
        "03999",  # unknown: kept
        "01010",  # already in the target
        "2A004",
    ]
    assert pd.isna(out.iloc[-1])


def test_harmonise_codes_without_roll_up_keeps_arrondissements():
    codes = pd.Series(["75104"], dtype="string")
    targets = TARGET | {"75104"}
    assert harmonise_codes(codes, PASSAGE, targets, roll_up=False).tolist() == ["75104"]


def test_code_in_target_is_never_mapped():
    # 02002 is an old code in the passage but exists again in this geography.
    codes = pd.Series(["02002"], dtype="string")
    assert harmonise_codes(codes, PASSAGE, TARGET | {"02002"}).tolist() == ["02002"]


# --------------------------------------------------------------------- reading
# Valserhône (01033), commune nouvelle of 2019-01-01 (MOD 32): Bellegarde-sur-
# Valserine (chef-lieu, keeps 01033), Châtillon-en-Michaille (01091) and Lancrans
# (01205); each old commune has a COM "after" row and a COMD "after" row. The
# 2025 rows restore Celles (15031) out of Neussargues en Pinatelle (15141, MOD 21
# rétablissement) after its merger of 2017. The 2030 rows are invented to test a
# chain: 01033 merges into 01999, so 01091 -> 01033 -> 01999.
MVT_ROWS = [
    "32,2019-01-01,COM,01033,0,BELLEGARDE SUR VALSERINE,Bellegarde-sur-Valserine,"
    "Bellegarde-sur-Valserine,COM,01033,0,VALSERHONE,Valserhône,Valserhône",
    "32,2019-01-01,COM,01033,0,BELLEGARDE SUR VALSERINE,Bellegarde-sur-Valserine,"
    "Bellegarde-sur-Valserine,COMD,01033,0,BELLEGARDE SUR VALSERINE,"
    "Bellegarde-sur-Valserine,Bellegarde-sur-Valserine",
    "32,2019-01-01,COM,01091,0,CHATILLON EN MICHAILLE,Châtillon-en-Michaille,"
    "Châtillon-en-Michaille,COM,01033,0,VALSERHONE,Valserhône,Valserhône",
    "32,2019-01-01,COM,01091,0,CHATILLON EN MICHAILLE,Châtillon-en-Michaille,"
    "Châtillon-en-Michaille,COMD,01091,0,CHATILLON EN MICHAILLE,"
    "Châtillon-en-Michaille,Châtillon-en-Michaille",
    "32,2019-01-01,COM,01205,0,LANCRANS,Lancrans,Lancrans,COM,01033,0,VALSERHONE,"
    "Valserhône,Valserhône",
    "32,2019-01-01,COM,01205,0,LANCRANS,Lancrans,Lancrans,COMD,01205,0,LANCRANS,"
    "Lancrans,Lancrans",
    "32,2017-01-01,COM,15141,0,NEUSSARGUES MOISSAC,Neussargues-Moissac,"
    "Neussargues-Moissac,COM,15141,0,NEUSSARGUES EN PINATELLE,"
    "Neussargues en Pinatelle,Neussargues en Pinatelle",
    "32,2017-01-01,COM,15031,0,CELLES,Celles,Celles,COM,15141,0,"
    "NEUSSARGUES EN PINATELLE,Neussargues en Pinatelle,Neussargues en Pinatelle",
    "32,2017-01-01,COM,15031,0,CELLES,Celles,Celles,COMD,15031,0,CELLES,Celles,Celles",
    "21,2025-01-01,COM,15141,0,NEUSSARGUES EN PINATELLE,Neussargues en Pinatelle,"
    "Neussargues en Pinatelle,COM,15031,0,CELLES,Celles,Celles",
    "21,2025-01-01,COM,15141,0,NEUSSARGUES EN PINATELLE,Neussargues en Pinatelle,"
    "Neussargues en Pinatelle,COM,15141,0,NEUSSARGUES MOISSAC,Neussargues-Moissac,"
    "Neussargues-Moissac",
    "31,2030-01-01,COM,01033,0,VALSERHONE,Valserhône,Valserhône,COM,01999,0,"
    "NOUVELLE,Nouvelle,Nouvelle",
]


def _write(path: Path, header: str, rows: list[str], zipped: bool = False) -> Path:
    text = header + "\n" + "\n".join(rows) + "\n"
    if zipped:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _pairs(passage: pd.DataFrame) -> set[tuple[str, str]]:
    return set(passage[["old_code", "new_code"]].itertuples(index=False, name=None))


def test_read_mouvements(tmp_path):
    """COMD 'after' rows are not mappings; a restored commune is not mapped;
    01091 and 01205 follow 01033 into 01999 (2030); 01033 itself too."""
    path = _write(tmp_path / "v_mvt_commune_2026.csv", MVT_HEADER, MVT_ROWS)
    passage = read_commune_passage(path)
    assert list(passage.columns) == ["old_code", "new_code"]
    assert passage["old_code"].dtype == "string"
    assert _pairs(passage) == {
        ("01033", "01999"),
        ("01091", "01999"),
        ("01205", "01999"),
    }


def test_read_mouvements_zipped_as_plain(tmp_path):
    plain = _write(tmp_path / "v_mvt_commune_2026.csv", MVT_HEADER, MVT_ROWS)
    path = tmp_path / "v_mvt_commune_2026.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(plain, "v_mvt_commune_2026.csv")
    pd.testing.assert_frame_equal(
        read_commune_passage(path), read_commune_passage(plain)
    )


def test_bad_code_error_names_file_and_line(tmp_path):
    path = _write(tmp_path / "historiques.csv", ETALAB_HEADER, ["0100,01002,B,A,x"])
    with pytest.raises(
        DataError, match=r"code_ancien must be .*line 2: '0100'"
    ) as info:
        read_commune_passage(path)
    assert (info.value.path, info.value.line) == (path, 2)


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (
            date(2024, 1, 1),
            {("01091", "01033"), ("01205", "01033"), ("15031", "15141")},
        ),
        (date(2026, 1, 1), {("01091", "01033"), ("01205", "01033")}),
        (date(2018, 1, 1), {("15031", "15141")}),
    ],
    ids=["before-restoration", "after-restoration", "before-commune-nouvelle"],
)
def test_read_mouvements_until(tmp_path, until, expected):
    path = _write(tmp_path / "mvtcommune_2026.csv.gz", MVT_HEADER, MVT_ROWS, True)
    assert _pairs(read_commune_passage(path, until=until)) == expected


def test_passage_from_mouvements_is_pure():
    events = pd.DataFrame(
        [row.split(",") for row in MVT_ROWS], columns=MVT_HEADER.split(",")
    )
    before = events.copy()
    passage = passage_from_mouvements(events, until=date(2020, 1, 1))
    pd.testing.assert_frame_equal(events, before)
    assert _pairs(passage) == {
        ("01091", "01033"),
        ("01205", "01033"),
        ("15031", "15141"),
    }


def test_read_etalab(tmp_path, caplog):
    rows = [  # copied from commune_codes_historiques_2026_etalab.csv
        "01003,01165,Francheleins,,anciensCodes",
        "01015,01015,Arboys en Bugey,Arbignieu,commune-deleguee",
        "01091,01033,Valserhône,Châtillon-en-Michaille,anciensCodes+commune-deleguee",
        "55273,55245,Heudicourt-sous-les-Côtes,,anciensCodes",
        "55273,55386,Nonsard-Lamarche,Lamarche-en-Woëvre,commune-associee",
    ]
    path = _write(tmp_path / "historiques.csv", ETALAB_HEADER, rows)
    passage = read_commune_passage(path)
    assert _pairs(passage) == {
        ("01003", "01165"),
        ("01091", "01033"),
        ("55273", "55245"),
        ("55273", "55386"),
    }
    assert passage_map(passage).set_index("new_code")["ambiguous"].to_dict() == {
        "01033": False,
        "01165": False,
        "55245": True,
        "55386": True,
    }
    # No dates in this layout: `until` cannot cut events, it is said and ignored.
    with caplog.at_level("WARNING"):
        assert _pairs(read_commune_passage(path, until=date(2024, 1, 1))) == _pairs(
            passage
        )
    assert "no event dates" in caplog.text


@pytest.mark.parametrize(
    ("header", "row", "match"),
    [
        (
            MVT_HEADER.replace(",COM_AP", ",CODE_AP"),
            MVT_ROWS[0],
            r"v_mvt\.csv: missing column\(s\) \['COM_AP'\]; expected INSEE "
            r"mouvements des communes columns \['MOD', 'DATE_EFF'.*etalab columns "
            r"\['code_ancien', 'code_actuel'",
        ),
        (
            "code_ancien,nom_actuel",
            "01003,Francheleins",
            r"v_mvt\.csv: missing column\(s\) \['code_actuel'\]",
        ),
        (
            "CODGEO;LIBGEO",
            "01003;Francheleins",
            r"v_mvt\.csv: not a commune passage file; expected INSEE mouvements",
        ),
        (
            MVT_HEADER,
            MVT_ROWS[2].replace("COM,01091", "COM,1091"),
            r"v_mvt\.csv: .*COM_AV must be a 5-character commune code; line 2: '1091'",
        ),
        (
            MVT_HEADER,
            MVT_ROWS[2].replace("2019-01-01", "1er janvier"),
            r"v_mvt\.csv: .*DATE_EFF must be a date .*line 2: '1er janvier'",
        ),
    ],
    ids=[
        "mouvements-missing",
        "etalab-missing",
        "unknown-layout",
        "bad-code",
        "bad-date",
    ],
)
def test_read_bad_file(tmp_path, header, row, match):
    path = _write(tmp_path / "v_mvt.csv", header, [row])
    with pytest.raises(DataError, match=match):
        read_commune_passage(path)


def test_read_etalab_cycle_fails_in_passage_map(tmp_path):
    path = _write(
        tmp_path / "historiques.csv",
        ETALAB_HEADER,
        ["01001,01002,B,A,anciensCodes", "01002,01001,A,B,anciensCodes"],
    )
    with pytest.raises(DataError, match="cycle"):
        passage_map(read_commune_passage(path))


# --------------------------------------------------------------------- real data
RENAMED_2014_2026 = {
    "77028": "77433",
    "77149": "77109",
    "77399": "77504",
    "77491": "77316",
    "78251": "78551",
    "78503": "78320",
    "78524": "78158",
    "91182": "91228",
    "91222": "91390",
    "93059": "93066",
    "95259": "95040",
    "95282": "95169",
}


def test_real_idf_rp2014_to_2026(shared_real):
    raw = pd.read_csv(
        shared_real / "flows_idf_rp2014_commune.csv.gz",
        sep=";",
        dtype={"CODGEO": "string", "DCLT": "string"},
    )
    flows = pd.DataFrame(
        {
            "origin_commune": raw["CODGEO"],
            "destination_commune": raw["DCLT"],
            "workers": raw["NBFLUX_C14_ACTOCC15P"].astype("float64"),
        }
    )
    communes = pd.read_csv(
        shared_real / "commune_epci_2026_etalab.csv",
        dtype=str,
        usecols=["code", "type"],
    )
    target = set(communes.loc[communes["type"] == "commune-actuelle", "code"])
    passage = read_commune_passage(
        shared_real / "commune_codes_historiques_2026_etalab.csv"
    )

    out, report = harmonise_flows(flows, passage, target)

    assert report["codes_mapped"] == RENAMED_2014_2026
    assert report["unmapped_codes"] == {}
    assert report["ambiguous_codes"] == {}
    assert set(report["arrondissements_rolled_up"].values()) == {"75056"}
    ends = pd.concat([out["origin_commune"], out["destination_commune"]])
    assert ends.isin(target).all()
    total = flows["workers"].sum()
    assert total == pytest.approx(5_323_745.4, abs=0.05)  # as in the README
    assert report["workers_total_before"] == pytest.approx(total, rel=1e-12)
    assert report["workers_total_after"] == pytest.approx(total, rel=1e-12)
    assert out["workers"].sum() == pytest.approx(total, rel=1e-12)
    # Saint-Denis absorbed Pierrefitte-sur-Seine: their flows now add up.
    saint_denis = flows[
        flows["origin_commune"].isin(["93066", "93059"])
        & flows["destination_commune"].isin(["93066", "93059"])
    ]["workers"].sum()
    internal = out[
        (out["origin_commune"] == "93066") & (out["destination_commune"] == "93066")
    ]["workers"]
    assert internal.item() == pytest.approx(saint_denis, rel=1e-12)


def test_mouvements_commune_only_deleguee_is_reported_not_guessed(caplog):
    # An (invented) event where 01205 only has a COMD "after" row: no COM row
    # says which commune it joined, so it stays unmapped with a warning.
    rows = [MVT_ROWS[0], MVT_ROWS[1], MVT_ROWS[5]]
    events = pd.DataFrame(
        [row.split(",") for row in rows], columns=MVT_HEADER.split(",")
    )
    with caplog.at_level("WARNING", logger="observatory.readers.passage"):
        passage = passage_from_mouvements(events)
    assert passage.empty
    assert list(passage.columns) == ["old_code", "new_code"]
    assert "'01205'" in caplog.text


def test_mouvements_split_between_communes_is_ambiguous():
    # MOD 30 (suppression): an (invented) commune shared out between two others.
    rows = [
        "30,2020-01-01,COM,08001,0,A,A,A,COM,08002,0,B,B,B",
        "30,2020-01-01,COM,08001,0,A,A,A,COM,08003,0,C,C,C",
        # MOD 20 (création): 08003 gives territory to 08004 and keeps existing.
        "20,2021-01-01,COM,08003,0,C,C,C,COM,08004,0,D,D,D",
    ]
    events = pd.DataFrame(
        [row.split(",") for row in rows], columns=MVT_HEADER.split(",")
    )
    mapping = passage_map(passage_from_mouvements(events))
    assert _pairs(mapping) == {("08001", "08002"), ("08001", "08003")}
    assert mapping["ambiguous"].all()


def test_harmonise_flows_missing_code_is_an_error():
    flows = _flows()
    flows.loc[3, "destination_commune"] = pd.NA
    with pytest.raises(DataError, match=r"flows: 1 row\(s\) without an origin"):
        harmonise_flows(flows, PASSAGE, TARGET)
