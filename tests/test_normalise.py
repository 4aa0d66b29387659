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
    zip_bytes,
)
from shapely.geometry import box

from observatory.core.archives import compression_of, open_member
from observatory.core.errors import DataError, SourceError
from observatory.geography import is_abroad_code, is_commune_code
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import epci_sirens, read_communes
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


def test_several_sirens_keep_the_one_of_the_composition(tmp_path):
    """Grand Paris communes carry the métropole and their EPT; the order is not documented.

    Issue 10 changed this: the first value was taken blindly; now the one that is
    an EPCI of the composition is kept, and without the composition neither is.
    """
    rows = [
        ("75056", "Paris", "200054781/200057875", box(0, 0, 1, 1)),
        ("92012", "Boulogne", "200057974/200054781", box(1, 0, 2, 1)),
        ("22016", "Île-de-Bréhat", "NR", box(2, 0, 3, 1)),
        ("01001", "A", " 200000002 ", box(3, 0, 4, 1)),
    ]
    path = write_communes(tmp_path / "COMMUNE.shp", rows=rows)
    epci = {"200054781", "200000002"}
    gdf = read_communes(path, epci_codes=epci)
    assert gdf["epci_code_geo"].tolist()[:2] == ["200054781", "200054781"]
    assert pd.isna(gdf["epci_code_geo"][2])  # NR: in no EPCI
    assert gdf["epci_code_geo"][3] == "200000002"
    unsure = read_communes(path)["epci_code_geo"]
    assert unsure[:3].isna().all()
    assert unsure[3] == "200000002"


def test_epci_sirens_rules():
    raw = pd.Series(["200054781/200057875", "NR", None, "200057875", "NR/200054781"])
    assert epci_sirens(raw, {"200054781"}).tolist() == [
        "200054781",
        pd.NA,
        pd.NA,
        "200057875",  # a single value is kept: crowns count the disagreement
        "200054781",
    ]


# ---------------------------------------------------------------- ADMIN EXPRESS 4-0
# The 2026 editions of ADMIN EXPRESS COG CARTO (4-0) as IGN ships them: lower-case
# layers (commune, arrondissement_municipal, epci...) in one GeoPackage, or one
# GeoParquet file per layer; lower-case fields; geometry column "geometrie"
# (schema: /tmp/issue10/evidence.md section 5.4, from cartiflette and other readers).
def _commune_4_0(crs="EPSG:2154"):
    import geopandas as gpd

    rows = [*COMMUNE_ROWS[:5], ("75056", "Paris", None, box(30_000, 0, 31_000, 1_000))]
    sirens = [r[2] for r in rows[:5]] + ["200054781/200057875"]
    sirens[4] = "NR"
    return gpd.GeoDataFrame(
        {
            "cleabs": [f"COMMUNE_{i:016d}" for i in range(len(rows))],
            "nom_officiel": [r[1] for r in rows],
            "code_insee": [r[0] for r in rows],
            "statut": "Commune simple",
            "population": range(100, 100 + len(rows)),
            "code_insee_du_departement": [r[0][:2] for r in rows],
            "codes_siren_des_epci": sirens,
            "code_postal": "01000",
            "code_siren": "210100012",
        },
        geometry=gpd.GeoSeries([r[3] for r in rows], crs="EPSG:2154").to_crs(crs),
        crs=crs,
    ).rename_geometry("geometrie")


def _write_gpkg_4_0(path, layers):
    import pyogrio

    for name, frame in layers.items():
        pyogrio.write_dataframe(
            frame, path, layer=name, layer_options={"GEOMETRY_NAME": "geometrie"}
        )
    return path


def _other_layers():
    import geopandas as gpd

    def layer(**fields):
        return gpd.GeoDataFrame(
            fields, geometry=[box(0, 0, 40_000, 20_000)], crs="EPSG:2154"
        ).rename_geometry("geometrie")

    return {
        "region": layer(code_insee=["84"], nom_officiel=["Auvergne-Rhône-Alpes"]),
        "arrondissement_municipal": layer(
            code_insee=["69381"], code_insee_de_la_commune_de_rattach=["69123"]
        ),
        "epci": layer(code_siren=["200046977"], nom_officiel=["Métropole de Lyon"]),
    }


def _check_4_0(gdf):
    assert gdf.crs.to_epsg() == 2154
    assert gdf["commune_code"].tolist() == [r[0] for r in COMMUNE_ROWS[:5]] + ["75056"]
    assert gdf["commune_name"][0] == "Lyon"
    sirens = gdf["epci_code_geo"]
    assert sirens[:4].tolist() == [r[2] for r in COMMUNE_ROWS[:4]]
    assert pd.isna(sirens[4])  # NR
    assert sirens[5] == "200054781"  # the EPCI of the composition, not the EPT
    assert abs(gdf.geometry[0].area - 5_000 * 10_000) < 1.0


def test_admin_express_4_0_geopackage_finds_its_commune_layer(tmp_path, caplog):
    """Several layers, lower-case: the commune layer is found without settings."""
    import pyogrio

    layers = {**_other_layers(), "commune": _commune_4_0()}
    path = _write_gpkg_4_0(tmp_path / "ADE-COG-CARTO_4-0_GPKG.gpkg", layers)
    assert pyogrio.read_info(path, layer="commune")["geometry_name"] == "geometrie"
    epci = {r[2] for r in COMMUNE_ROWS} | {"200054781"}
    with caplog.at_level("INFO", logger="observatory.readers.communes"):
        gdf = read_communes(path, epci_codes=epci)
    _check_4_0(gdf)
    assert "4 layers; reading the communes from layer 'commune'" in caplog.text
    # [inputs] communes_layer matches in any case (the 3-2 name, upper case)
    _check_4_0(read_communes(path, "COMMUNE", epci_codes=epci))


def test_admin_express_4_0_geoparquet(tmp_path):
    """One GeoParquet file per layer (commune.parquet), WGS84, geometry 'geometrie'."""
    path = tmp_path / "commune.parquet"
    _commune_4_0(crs="EPSG:4326").to_parquet(path)
    epci = {r[2] for r in COMMUNE_ROWS} | {"200054781"}
    _check_4_0(read_communes(path, "commune", epci_codes=epci))


def test_geopackage_without_a_commune_layer_lists_its_layers(tmp_path):
    path = _write_gpkg_4_0(tmp_path / "admin.gpkg", _other_layers())
    with pytest.raises(
        DataError,
        match=r"admin\.gpkg: 3 layers and none is the commune layer of ADMIN EXPRESS "
        r"\('commune' or 'COMMUNE'\); set \[inputs\] communes_layer to one of "
        r"\['region', 'arrondissement_municipal', 'epci'\]",
    ):
        read_communes(path)
    with pytest.raises(
        DataError, match=r"no layer 'communes' \(\[inputs\] communes_layer\)"
    ):
        read_communes(path, "communes")


def test_parquet_without_geoparquet_metadata_is_refused(tmp_path):
    path = tmp_path / "commune.parquet"
    pd.DataFrame({"code_insee": ["01001"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"commune\.parquet: a Parquet file without"):
        read_communes(path)


def test_read_composition_xlsx_with_title_rows(tmp_path):
    comp = read_epci_composition(write_composition_xlsx(tmp_path / "EPCI.xlsx"))
    assert len(comp.epci) == len(EPCI_ROWS)
    assert comp.epci.set_index("epci_code").loc["200046977", "epci_nature"] == "METLYON"
    assert comp.composition["commune_code"].tolist() == [r[0] for r in COMMUNE_ROWS]


def test_read_composition_from_insee_zip(tmp_path):
    """INSEE's epci_au_01-01-2026.zip holding EPCI_au_01-01-2026.xlsx, read directly."""
    xlsx = write_composition_xlsx(tmp_path / "EPCI_au_01-01-2026.xlsx")
    path = tmp_path / "epci_au_01-01-2026.zip"
    path.write_bytes(
        zip_bytes({"notice.txt": b"read me", xlsx.name: xlsx.read_bytes()})
    )
    zipped, plain = read_epci_composition(path), read_epci_composition(xlsx)
    pd.testing.assert_frame_equal(zipped.epci, plain.epci)
    pd.testing.assert_frame_equal(zipped.composition, plain.composition)


def test_composition_zip_errors_name_the_member(tmp_path):
    path = tmp_path / "epci.zip"
    path.write_bytes(zip_bytes({"a.txt": b"x", "b.pdf": b"y"}))
    with pytest.raises(
        DataError,
        match=r"epci\.zip: expected one EPCI composition \(\.xlsx workbook or \.csv\) "
        r"in the archive, found \['a\.txt', 'b\.pdf'\]",
    ):
        read_epci_composition(path)
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "EPCI"
    wb.save(tmp_path / "EPCI.xlsx")
    path.write_bytes(zip_bytes({"EPCI.xlsx": (tmp_path / "EPCI.xlsx").read_bytes()}))
    with pytest.raises(
        DataError,
        match=r"epci\.zip \[EPCI\.xlsx\]: missing sheet\(s\) \['Composition_communale'\]",
    ) as info:
        read_epci_composition(path)
    assert info.value.path == path


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


# ---------------------------------------------------------------- bounded reading
@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"ab\ncd\n", 2, None),  # lines of exactly the limit
        (b"ab\ncde\nf\n", 2, 2),
        (b"ab\ncd\nefg", 2, 3),  # the last line, without its end
        (b"a\n" * 5 + b"x" * (3 << 20) + b"\nb\n", 2 << 20, 6),  # across 1 MiB reads
        (b"x" * ((1 << 20) + 1), 1 << 20, 1),
        (b"", 0, None),
    ],
)
def test_first_long_line(data, limit, expected):
    import io

    from observatory.readers.delimited import first_long_line

    assert first_long_line(io.BytesIO(data), limit) == expected


def test_bounded_stream_refuses_beyond_its_limit(tmp_path):
    path = tmp_path / "flows.zip"
    path.write_bytes(zip_bytes({"flux.csv": b"x" * 100}))
    with open_member(path, _csv_files, what="CSV file", limit=100) as opened:
        assert opened.stream.read() == b"x" * 100
    with (
        pytest.raises(
            DataError,
            match=r"flux\.csv\]: more than 99 bytes of data once decompressed",
        ),
        open_member(path, _csv_files, what="CSV file", limit=99) as opened,
    ):
        opened.stream.read()
