"""Readers of the official formats, and clear errors on bad input.

Also the one opener of plain, gzipped and zipped inputs (observatory.core.archives):
same bytes whatever the packing, the member picked, and errors naming the file
and the members found.
"""

import gzip
import zipfile

import pandas as pd
import pytest
from conftest import (
    COMMUNE_ROWS,
    EPCI_ROWS,
    FLOW_HEADER,
    FLOW_ROWS,
    write_communes,
    write_composition_xlsx,
    write_flows,
)
from shapely.geometry import box

from observatory.core.archives import compression_of, open_member
from observatory.core.errors import DataError, SourceError
from observatory.geography import is_abroad_code, is_commune_code
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import read_communes
from observatory.readers.epci import read_epci_composition


@pytest.mark.parametrize(
    ("code", "commune", "abroad"),
    [
        ("29019", True, False),
        ("2A004", True, False),
        ("2B033", True, False),
        ("99140", False, True),
        ("2C004", False, False),
        ("2901", False, False),
        ("290190", False, False),
        ("BE001", False, True),
        ("٢٩٠١٩", False, False),  # 29019 in Arabic-Indic digits
        ("٩٩١٤٠", False, False),
    ],
    ids=[
        "brest",
        "ajaccio",
        "bastia",
        "suisse",
        "bad-corse",
        "short",
        "long",
        "border-commune",
        "arabic-indic-commune",
        "arabic-indic-country",
    ],
)
def test_code_shapes(code, commune, abroad):
    assert bool(is_commune_code(pd.Series([code]))[0]) == commune
    assert bool(is_abroad_code(pd.Series([code]))[0]) == abroad


def test_read_communes_shapefile(tmp_path):
    gdf = read_communes(write_communes(tmp_path / "COMMUNE.shp"))
    assert list(gdf.columns) == [
        "commune_code",
        "commune_name",
        "epci_code_geo",
        "geometry",
    ]
    assert gdf.crs.to_epsg() == 2154
    assert gdf["commune_code"].tolist() == [r[0] for r in COMMUNE_ROWS]
    assert gdf["commune_name"].iloc[2] == "L'Abergement-Clémenciat"


def test_read_communes_reprojects_and_reads_geopackage(tmp_path):
    rows = [("29019", "Brest", "242900314", box(-4.55, 48.37, -4.45, 48.43))]
    gdf = read_communes(
        write_communes(tmp_path / "communes.gpkg", rows=rows, crs="EPSG:4326")
    )
    assert gdf.crs.to_epsg() == 2154
    assert 140_000 < gdf.geometry.iloc[0].centroid.x < 160_000  # Brest in Lambert-93


def test_siren_with_ept_suffix_is_cut(tmp_path):
    rows = [("75056", "Paris", "200054781/200057875", box(0, 0, 1, 1))]
    gdf = read_communes(write_communes(tmp_path / "COMMUNE.shp", rows=rows))
    assert gdf["epci_code_geo"][0] == "200054781"


def test_read_composition_xlsx_with_title_rows(tmp_path):
    comp = read_epci_composition(write_composition_xlsx(tmp_path / "EPCI.xlsx"))
    assert len(comp.epci) == len(EPCI_ROWS)
    assert comp.epci.set_index("epci_code").loc["200046977", "epci_nature"] == "METLYON"
    assert comp.composition["commune_code"].tolist() == [r[0] for r in COMMUNE_ROWS]


def test_read_composition_csv(tmp_path):
    path = tmp_path / "composition.csv"
    path.write_text(
        "CODGEO;LIBGEO;EPCI;LIBEPCI;NATURE_EPCI\n01001;A;200000002;CC A;CC\n22016;Île-de-Bréhat;ZZZZZZZZZ;Sans objet;ZZ\n",
        encoding="utf-8",
    )
    comp = read_epci_composition(path)
    assert comp.composition["commune_code"].tolist() == ["01001"]  # ZZZZZZZZZ: no EPCI
    assert comp.epci["epci_code"].tolist() == ["200000002"]


def test_composition_csv_without_nature_says_how_to_fix(tmp_path):
    path = tmp_path / "composition.csv"
    path.write_text("CODGEO,EPCI\n01001,200000002\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"composition\.csv: no NATURE_EPCI column.*epci_list"
    ):
        read_epci_composition(path)


def test_read_base_flux_zip_and_plain(tmp_path):
    zipped = read_base_flux(write_flows(tmp_path / "flux.zip"))
    plain = read_base_flux(write_flows(tmp_path / "flux.csv", zipped=False))
    assert zipped.vintage == plain.vintage == 2021
    assert zipped.member == "base-flux-mobilite-domicile-lieu-travail-2021.csv"
    pd.testing.assert_frame_equal(zipped.table, plain.table)
    assert zipped.table["workers"].sum() == 1920
    assert zipped.table["origin_commune"].iloc[0] == "69381"


def test_base_flux_accepts_decimal_comma(tmp_path):
    path = write_flows(
        tmp_path / "flux.csv", rows=[("01001", "01001", "12,5")], zipped=False
    )
    assert read_base_flux(path).table["workers"][0] == 12.5


# ---------------------------------------------------------------- bad input
def test_flows_missing_column(tmp_path):
    path = write_flows(
        tmp_path / "flux.csv",
        header="CODGEO;LIBGEO;L_DCLT;NBFLUX_C21_ACTOCC15P",
        zipped=False,
    )
    path.write_text(
        "CODGEO;LIBGEO;L_DCLT;NBFLUX_C21_ACTOCC15P\n01001;A;B;3\n", encoding="utf-8"
    )
    with pytest.raises(
        DataError, match=r"flux\.csv: line 1: expected columns CODGEO;LIBGEO;DCLT"
    ):
        read_base_flux(path)


def test_flows_non_numeric(tmp_path):
    rows = [*FLOW_ROWS[:2], ("01001", "01002", "beaucoup")]
    path = write_flows(tmp_path / "flux.zip", rows=rows)
    with pytest.raises(
        DataError,
        match=r"flux\.zip \[.*\.csv\]: NBFLUX_C21_ACTOCC15P must be a number; line 4: 'beaucoup'",
    ):
        read_base_flux(path)


def test_flows_negative(tmp_path):
    path = write_flows(
        tmp_path / "flux.csv", rows=[("01001", "01002", "-3")], zipped=False
    )
    with pytest.raises(DataError, match=r"must be >= 0; line 2: '-3'") as info:
        read_base_flux(path)
    assert (info.value.path, info.value.line) == (path, 2)


@pytest.mark.parametrize(
    ("column", "value"),
    [("CODGEO", "1001"), ("DCLT", "ABC")],
    ids=["origin", "destination"],
)
def test_flows_code_of_wrong_shape(tmp_path, column, value):
    row = ("1001", "01002", "3") if column == "CODGEO" else ("01001", "ABC", "3")
    path = write_flows(tmp_path / "flux.csv", rows=[FLOW_ROWS[0], row], zipped=False)
    with pytest.raises(
        DataError,
        match=rf"{column} must be a 5-character commune code.*line 3: '{value}'",
    ):
        read_base_flux(path)


def test_flows_zip_without_csv(tmp_path):
    path = tmp_path / "flux.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notice.txt", "nothing here")
    with pytest.raises(
        DataError,
        match=r"flux\.zip: expected one CSV file in the archive, found \['notice.txt'\]",
    ):
        read_base_flux(path)


def test_flows_header_only_names_columns(tmp_path):
    path = tmp_path / "flux.csv"
    path.write_text(
        FLOW_HEADER.replace("NBFLUX_C21_ACTOCC15P", "FLUX") + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match="NBFLUX_Cyy_ACTOCC15P"):
        read_base_flux(path)


def test_unreadable_geometry_file(tmp_path):
    path = tmp_path / "COMMUNE.shp"
    path.write_bytes(b"this is not a shapefile")
    with pytest.raises(
        DataError, match=r"COMMUNE\.shp: cannot read as a geometry file"
    ):
        read_communes(path)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"absent\.shp: communes file not found"):
        read_communes(tmp_path / "absent.shp")


def test_commune_code_of_wrong_shape_in_geometry(tmp_path):
    rows = [*COMMUNE_ROWS[:2], ("1001", "Sans zéro", "200000002", box(0, 0, 1, 1))]
    path = write_communes(tmp_path / "COMMUNE.shp", rows=rows)
    with pytest.raises(
        DataError,
        match=r"INSEE_COM must hold 5-character INSEE commune codes; feature 2: '1001'",
    ):
        read_communes(path)


def test_geometry_file_without_code_field(tmp_path):
    import geopandas as gpd

    gpd.GeoDataFrame({"NAME": ["x"]}, geometry=[box(0, 0, 1, 1)], crs=2154).to_file(
        tmp_path / "c.gpkg"
    )
    with pytest.raises(
        DataError, match=r"c\.gpkg: no commune code field; expected one of .*INSEE_COM"
    ):
        read_communes(tmp_path / "c.gpkg")


def test_composition_missing_sheet(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "EPCI"
    wb.save(tmp_path / "EPCI.xlsx")
    with pytest.raises(
        DataError, match=r"EPCI\.xlsx: missing sheet\(s\) \['Composition_communale'\]"
    ):
        read_epci_composition(tmp_path / "EPCI.xlsx")


def test_composition_bad_siren_names_the_row(tmp_path):
    rows = [*COMMUNE_ROWS[:1], ("01001", "A", "20000", box(0, 0, 1, 1))]
    epci = [*EPCI_ROWS, ("20000", "Bad", "CC")]
    path = write_composition_xlsx(
        tmp_path / "EPCI.xlsx", epci_rows=epci, commune_rows=rows
    )
    with pytest.raises(
        DataError,
        match=r"sheet 'Composition_communale': EPCI must be a 9-digit SIREN.*row 8: '20000'",
    ):
        read_epci_composition(path)


def test_read_base_flux_gzip(tmp_path):
    plain = write_flows(tmp_path / "flux.csv", zipped=False)
    packed = tmp_path / "flux.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(
        read_base_flux(packed).table, read_base_flux(plain).table
    )


# ---------------------------------------------------------------- archives
def _csv_files(names):
    return [name for name in names if name.endswith(".csv")]


def _read_all(path):
    with open_member(path, _csv_files, what="CSV file") as opened:
        return opened.stream.read()


@pytest.mark.parametrize("packing", ["plain", "gzip", "gzip-named-csv", "zip"])
def test_open_member_gives_the_same_bytes_whatever_the_packing(tmp_path, packing):
    data = b"CODGEO;DCLT\n01001;01002\n"
    if packing == "plain":
        path = tmp_path / "flows.csv"
        path.write_bytes(data)
    elif packing.startswith("gzip"):  # told by the suffix or by the magic bytes
        path = tmp_path / ("flows.csv" if packing == "gzip-named-csv" else "f.gz")
        path.write_bytes(gzip.compress(data))
    else:
        path = tmp_path / "flows.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("__MACOSX/._flows.csv", b"resource fork")
            archive.writestr("notice.txt", b"read me")
            archive.writestr("data/flows.csv", data)
    with open_member(path, _csv_files, what="CSV file") as opened:
        assert opened.stream.read() == data
    member = "data/flows.csv" if packing == "zip" else None
    assert opened.name == member
    assert opened.where == f"{path}" + (f" [{member}]" if member else "")
    assert compression_of(path) == {"plain": None, "zip": "zip"}.get(packing, "gzip")


def test_open_member_names_the_files_of_the_archive(tmp_path):
    path = tmp_path / "flows.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", b"1")
        archive.writestr("b.csv", b"2")
        archive.writestr("folder/", b"")
    with pytest.raises(
        DataError,
        match=r"flows\.zip: expected one CSV file in the archive, "
        r"found \['a\.csv', 'b\.csv'\]$",
    ) as info:
        _read_all(path)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("f.csv.gz", b"not gzip", r"f\.csv\.gz: not a valid gzip file \(Not a gzipped"),
        ("f.csv.gz", gzip.compress(b"x" * 1000)[:20], r"not a valid gzip file \(Compr"),
        ("f.zip", b"not a zip", r"f\.zip: not a valid zip archive$"),
    ],
    ids=["not-gzip", "truncated-gzip", "not-zip"],
)
def test_open_member_refuses_a_corrupt_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        _read_all(path)
    assert info.value.path == path


def test_open_member_refuses_a_corrupt_zip_member(tmp_path):
    path = tmp_path / "flows.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flows.csv", bytes(range(256)) * 400)
    packed = bytearray(path.read_bytes())
    packed[60:80] = bytes(20)  # inside the deflated data
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"flows\.zip: corrupt zip archive: "):
        _read_all(path)
