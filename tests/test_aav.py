"""INSEE's AAV 2020 by commune: the reader, harmonisation, and the shares by EPCI.

The shares are checked on a small territory computed by hand. Communes and their
weight (employed residents, say), EPCI, AAV code and category:

    m1 1000 M 001/11   m2 500 M 001/12          (M: the métropole)
    a1  300 A 001/20   a2 100 A 000/30          A: crown 300/400 = 0.75, in the AAV
    b1  200 B 001/20   b2 800 B 045/11          B: crown 0.2, pole of another AAV
    x1  400 X 001/20   x2 100 X (not listed)    X: crown 400/400 = 1, matched 0.8
    z1  300 Z 001/13                            Z: pole 1 (a secondary pole)
    c1  100 C 000/30                            C: outside any area

The métropole's AAV is 001 (all its weight is in its pole). With the systems of
tests/test_functional.py (contiguity: M, A, B, C; flows: M, A, C, X) and the AAV
from 50 % (M, A, X, Z): contiguity and flows share 3 EPCI of 5, contiguity and
AAV 2 of 6, flows and AAV 3 of 5; the AAV's weight 1500 + 300 + 200 + 400 + 300
= 2700 lives for 2000 in the contiguity system and 2200 in the flow system.
"""

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from openpyxl import Workbook
from test_functional import A, B, C, M, X, Z, territories, worked_functional

from observatory.core.errors import DataError, SourceError
from observatory.geography import rollup_arrondissements
from observatory.readers.aav import read_aav
from observatory.systems.codebook import CodedFlows
from observatory.systems.functional import (
    aav_shares,
    compare_with_aav,
    employed_residents_by_commune,
    harmonise_aav,
    metropole_aav,
)

COMMUNES = [
    # commune, weight, EPCI, AAV, category
    ("01001", 1000, M, "001", "11"),
    ("01002", 500, M, "001", "12"),
    ("01003", 300, A, "001", "20"),
    ("01004", 100, A, "000", "30"),
    ("01005", 200, B, "001", "20"),
    ("01006", 800, B, "045", "11"),
    ("01007", 400, X, "001", "20"),
    ("01008", 100, X, None, None),
    ("01009", 300, Z, "001", "13"),
    ("01010", 100, C, "000", "30"),
]


@pytest.fixture
def aav():
    listed = [r for r in COMMUNES if r[3] is not None]
    return pd.DataFrame(
        {
            "commune_code": [r[0] for r in listed],
            "aav_code": [r[3] for r in listed],
            "aav_category": [r[4] for r in listed],
        },
        dtype="string",
    )


@pytest.fixture
def commune_epci():
    return pd.DataFrame(
        {
            "commune_code": [r[0] for r in COMMUNES],
            "epci_code": [r[2] for r in COMMUNES],
        },
        dtype="string",
    )


@pytest.fixture
def weight():
    return pd.Series({r[0]: float(r[1]) for r in COMMUNES})


# --------------------------------------------------------------------- shares
def test_metropole_aav(aav, commune_epci, weight):
    found = metropole_aav(aav, commune_epci, weight, [M])
    assert found.to_dict("records") == [
        {"metropole_code": M, "aav_code": "001", "metropole_in_aav_share": 1.0}
    ]


def test_shares_by_hand(aav, commune_epci, weight):
    areas = metropole_aav(aav, commune_epci, weight, [M])
    shares = aav_shares(aav, commune_epci, weight, areas).set_index("epci_code")
    assert sorted(shares.index) == sorted([M, A, B, X, Z])  # C has nothing in 001
    assert shares.loc[A, "aav_crown_share"] == pytest.approx(0.75)
    assert shares.loc[A, "aav_pole_share"] == 0.0
    assert shares.loc[B, "aav_share"] == pytest.approx(0.2)
    assert shares.loc[X, "aav_crown_share"] == 1.0
    assert shares.loc[X, "aav_matched_share"] == pytest.approx(0.8)
    assert shares.loc[Z, "aav_pole_share"] == 1.0
    assert shares.loc[M, "aav_pole_share"] == 1.0
    assert shares["weight_in_aav"].to_dict() == {
        M: 1500.0,
        A: 300.0,
        B: 200.0,
        X: 400.0,
        Z: 300.0,
    }


def test_overlap_by_hand(aav, commune_epci, weight):
    areas = metropole_aav(aav, commune_epci, weight, [M])
    shares = aav_shares(aav, commune_epci, weight, areas)
    rows, overlap = compare_with_aav(worked_functional(), shares, territories())
    placed = rows.set_index("epci_code")
    assert placed.loc[Z, "placed_by"] == "aav"
    assert not placed.loc[Z, "in_system"]
    assert placed["in_aav"].to_dict() == {
        M: True,
        A: True,
        B: False,
        C: False,
        X: True,
        Z: True,
    }
    assert placed.loc[C, "aav_share"] == 0.0
    record = overlap.iloc[0].to_dict()
    assert record["metropole_code"] == M
    assert {k: record[k] for k in record if k.startswith("epci_")} == {
        "epci_contiguity": 4,
        "epci_flows": 4,
        "epci_aav": 4,
        "epci_contiguity_and_flows": 3,
        "epci_contiguity_and_aav": 2,
        "epci_flows_and_aav": 3,
        "epci_all_three": 2,
    }
    assert record["jaccard_contiguity_flows"] == pytest.approx(3 / 5)
    assert record["jaccard_contiguity_aav"] == pytest.approx(2 / 6)
    assert record["jaccard_flows_aav"] == pytest.approx(3 / 5)
    assert record["aav_weight_in_contiguity_share"] == pytest.approx(2000 / 2700)
    assert record["aav_weight_in_flows_share"] == pytest.approx(2200 / 2700)


def test_overlap_counts_the_aav_weight_no_rule_places(aav, commune_epci, weight):
    """An EPCI with 10 % of its weight in the AAV, placed by no rule, leaves the
    rows (below aav_member_min_share) but its 300 still belong to the AAV's 3000."""
    areas = metropole_aav(aav, commune_epci, weight, [M])
    shares = aav_shares(aav, commune_epci, weight, areas)
    outside = shares.iloc[[0]].assign(
        epci_code="200000999",
        aav_share=0.1,
        aav_pole_share=0.0,
        aav_crown_share=0.1,
        weight_in_aav=300.0,
    )
    rows, overlap = compare_with_aav(
        worked_functional(), pd.concat([shares, outside]), territories()
    )
    assert "200000999" not in set(rows["epci_code"])
    record = overlap.iloc[0].to_dict()
    assert record["aav_weight_in_contiguity_share"] == pytest.approx(2000 / 3000)
    assert record["aav_weight_in_flows_share"] == pytest.approx(2200 / 3000)


def test_employed_residents_by_commune_rolls_up_arrondissements():
    flows = pd.DataFrame(
        {
            "origin_commune": ["75101", "75102", "01001", "01001"],
            "destination_commune": ["75101", "01001", "01001", "75056"],
            "workers": [10.0, 5.0, 7.0, 3.0],
        }
    )
    coded = CodedFlows.from_frame(flows)  # a book, the rows' numbers in it
    weights = employed_residents_by_commune(
        pa.array(coded.codes), coded.origin, coded.workers
    )
    assert weights.to_dict() == {"01001": 10.0, "75056": 15.0}


def test_employed_residents_are_the_groupby_of_the_table_to_the_bit():
    """From a book in the order met and each row's number: pandas' own sums."""
    rng = np.random.default_rng(11)
    book = ["75101", "01001", "69381", "75120", "13055", "99140", "69123", "2A004"]
    origin = rng.integers(0, len(book), 500)
    workers = rng.gamma(0.5, 20.0, 500) * 10.0 ** rng.integers(-3, 9, 500)
    workers[::7] = -0.0
    weights = employed_residents_by_commune(pa.array(book), origin, workers)
    rolled = rollup_arrondissements(pd.Series(book, dtype="string")[origin])
    expected = (
        pd.Series(workers)
        .groupby(rolled.to_numpy())
        .sum()
        .rename_axis("commune_code")
        .rename("weight")
    )
    pd.testing.assert_series_equal(weights, expected, check_exact=True)
    assert weights.to_numpy().tobytes() == expected.to_numpy().tobytes()


# --------------------------------------------------------------------- harmonise
def test_harmonise_through_a_passage_keeps_the_most_central_part():
    table = pd.DataFrame(
        {
            "commune_code": ["01001", "01002", "01003"],
            "aav_code": ["001", "045", "001"],
            "aav_category": ["20", "11", "20"],
        },
        dtype="string",
    )
    passage = pd.DataFrame({"old_code": ["01001"], "new_code": ["01002"]})
    out, report = harmonise_aav(table, passage, {"01002", "01003"})
    assert out.set_index("commune_code")["aav_code"].to_dict() == {
        "01002": "045",
        "01003": "001",
    }
    assert report["codes_mapped"] == 1
    assert report["communes_merged"] == 1
    assert report["merged_with_different_areas"] == {"01002": ["001/20", "045/11"]}
    assert report["codes_outside_target"] == []


def test_without_a_passage_old_codes_are_reported_and_match_nothing(caplog):
    table = pd.DataFrame(
        {
            "commune_code": ["01001", "01003"],
            "aav_code": ["001", "001"],
            "aav_category": ["20", "20"],
        },
        dtype="string",
    )
    out, report = harmonise_aav(table, None, {"01002", "01003"})
    assert list(out["commune_code"]) == ["01001", "01003"]
    assert report["codes_outside_target"] == ["01001"]
    assert not report["geography_passage"]
    assert "no commune passage given" in caplog.text


# --------------------------------------------------------------------- reader
INSEE_HEADER = [
    "CODGEO",
    "LIBGEO",
    "AAV2020",
    "LIBAAV2020",
    "CATEAAV2020",
    "DEP",
    "REG",
]
INSEE_ROWS = [
    ["29019", "Brest", "029", "Brest", "11", "29", "53"],
    ["29075", "Guipavas", "029", "Brest", "12", "29", "53"],
    [
        "29022",
        "Camaret-sur-Mer",
        "000",
        "Commune hors attraction des villes",
        "30",
        "29",
        "53",
    ],
    ["29042", "Crozon", "029", "Brest", "20", "29", "53"],
]


def insee_workbook(rows=INSEE_ROWS, header=INSEE_HEADER) -> bytes:
    """INSEE's AAV workbook: title rows, header on row 6, as in its 2020-2026 files."""
    wb = Workbook()
    comp = wb.active
    comp.title = "Composition_communale"
    titles = [
        "Aires d'attraction des villes 2020",
        "Géographie au 01/01/2025",
        "Source : Insee",
        "",
        "",
    ]
    for sheet_rows, sheet in ((rows, comp), (None, wb.create_sheet("AAV2020"))):
        for title in titles:
            sheet.append([title])
        if sheet_rows is None:
            sheet.append(["AAV2020", "LIBAAV2020", "TAAV2017", "TDAAV2017", "NB_COM"])
            sheet.append(["000", "Commune hors attraction des villes", "0", "00", "1"])
            sheet.append(["029", "Brest", "3", "31", "3"])
        else:
            sheet.append(header)
            for row in sheet_rows:
                sheet.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_insee_zip(tmp_path):
    path = write_zip(
        tmp_path / "AAV2020_au_01-01-2025.zip",
        {"AAV2020_au_01-01-2025.xlsx": insee_workbook()},
    )
    table = read_aav(path)
    assert table.communes[
        ["commune_code", "aav_code", "aav_category"]
    ].values.tolist() == [
        ["29019", "029", "11"],
        ["29075", "029", "12"],
        ["29022", "000", "30"],
        ["29042", "029", "20"],
    ]
    assert table.areas.set_index("aav_code")["aav_size_class"].to_dict() == {
        "000": "0",
        "029": "3",
    }


def test_codes_stored_as_numbers_get_their_zeros_back(tmp_path):
    rows = [["29019", "Brest", 29, "Brest", 11, "29", "53"]]
    path = tmp_path / "aav.xlsx"
    path.write_bytes(insee_workbook(rows))
    assert read_aav(path).communes.loc[0, ["aav_code", "aav_category"]].tolist() == [
        "029",
        "11",
    ]


def test_csv_export(tmp_path):
    text = (
        ";".join(INSEE_HEADER)
        + "\n"
        + "\n".join(";".join(r) for r in INSEE_ROWS)
        + "\n"
    )
    path = tmp_path / "aav.csv"
    path.write_text(text, encoding="utf-8")
    table = read_aav(path)
    assert len(table.communes) == 4
    assert table.areas.set_index("aav_code")["aav_name"].to_dict() == {
        "000": "Commune hors attraction des villes",
        "029": "Brest",
    }


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            ["2919", "x", "029", "Brest", "11"],
            r"commune codes have 5 characters; line 3: '2919'",
        ),
        (
            ["29099", "x", "29", "Brest", "11"],
            r"area codes have 3 characters.*line 3: '29'",
        ),
        (["29099", "x", "029", "Brest", "21"], r"categories are one of .*line 3: '21'"),
        (
            ["29099", "x", "000", "Brest", "20"],
            r"area 000 goes with category 30.*line 3: '000/20'",
        ),
        (
            ["29019", "x", "029", "Brest", "12"],
            r"each commune appears once; line 2: '29019'",
        ),
    ],
    ids=["commune-code", "area-code", "category", "outside-not-30", "duplicate"],
)
def test_bad_values_name_the_line(tmp_path, row, match):
    header = "CODGEO,LIBGEO,AAV2020,LIBAAV2020,CATEAAV2020\n"
    path = tmp_path / "aav.csv"
    path.write_text(
        header + "29019,Brest,029,Brest,11\n" + ",".join(row) + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"aav\.csv: " + match):
        read_aav(path)


def test_missing_columns_sheet_or_file(tmp_path):
    path = tmp_path / "aav.csv"
    path.write_text("CODGEO,AAV2020\n29019,029\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing column\(s\) \['CATEAAV2020'\]"):
        read_aav(path)
    book = Workbook()
    book.active.title = "Autre"
    book.save(tmp_path / "aav.xlsx")
    with pytest.raises(DataError, match=r"aav\.xlsx: no sheet 'Composition_communale'"):
        read_aav(tmp_path / "aav.xlsx")
    with pytest.raises(
        SourceError, match=r"absent\.zip: attraction areas \(AAV\) file not found"
    ):
        read_aav(tmp_path / "absent.zip")


# --------------------------------------------------------------------- real extract
def test_real_extract_cog_2023(shared_real):
    """The real commune table (COG 2023) and its list of areas, as INSEE built them."""
    table = read_aav(
        shared_real / "aav2020_communes_cog2023.csv",
        shared_real / "aav2020_aires_cog2023.csv",
    )
    communes = table.communes.set_index("commune_code")
    assert len(communes) == 34_945
    assert len(table.areas) == 700
    assert communes.loc["75056", ["aav_code", "aav_category"]].tolist() == ["001", "11"]
    assert communes.loc["69123", "aav_code"] == "002"
    assert communes["aav_category"].value_counts().to_dict() == {
        "20": 24_277,
        "30": 8_923,
        "12": 1_020,
        "11": 692,
        "13": 33,
    }
    assert table.areas.set_index("aav_code").loc["001", "aav_size_class"] == "5"


def test_real_extract_shares_by_epci(shared_real):
    """Shares by EPCI (2023 composition in the file itself), communes weighing 1 each."""
    raw = pd.read_csv(shared_real / "aav2020_communes_cog2023.csv", dtype=str)
    table = read_aav(shared_real / "aav2020_communes_cog2023.csv").communes
    composition = pd.DataFrame(
        {"commune_code": raw["geo_code"], "epci_code": raw["epci"]}
    ).dropna()
    weight = pd.Series(1.0, index=raw["geo_code"])
    lyon = "200046977"
    areas = metropole_aav(table, composition, weight, [lyon])
    assert areas.loc[0, "aav_code"] == "002"
    shares = aav_shares(table, composition, weight, areas).set_index("epci_code")
    assert shares.loc[lyon, "aav_pole_share"] == pytest.approx(
        (
            (raw["epci"] == lyon)
            & raw["cate_aav"].isin(["11", "12", "13"])
            & (raw["aav"] == "002")
        ).sum()
        / (raw["epci"] == lyon).sum()
    )
    assert (shares["aav_share"] <= 1.0).all()
    assert len(shares) > 20  # Lyon's AAV reaches well beyond its first crown
