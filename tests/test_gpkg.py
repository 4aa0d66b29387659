"""The GeoPackage of a run: version 1.2, every layer in its CRS, styles as defaults."""

import json
import sqlite3
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest

from observatory.cli import main
from observatory.config import configs_dir, load_config
from observatory.core.errors import OutputError
from observatory.layers.files import RunFiles
from observatory.layers.geopackage import (
    GEOPACKAGE_NAME,
    validate_geopackage,
    write_geopackage,
)
from observatory.layers.geoparquet import geoparquet_table
from observatory.layers.schemas import layer_fields
from observatory.layers.styles import layer_styles
from observatory.runs import geopackage_writing
from observatory.runs.geopackage_writing import GeoPackageWriting
from observatory.runs.publish import publish

#: The columns of QGIS's own layer_styles table, in its order.
QGIS_STYLE_COLUMNS = [
    "f_table_catalog",
    "f_table_schema",
    "f_table_name",
    "f_geometry_column",
    "styleName",
    "styleQML",
    "styleSLD",
    "useAsDefault",
    "description",
    "owner",
    "ui",
    "update_time",
]


def run_tables(run: Path) -> dict:
    """Read a run folder's Parquet files back as the tables publish was given."""
    tables = {}
    for path in sorted(run.glob("*.parquet")):
        table = pq.read_table(path)
        geo = (table.schema.metadata or {}).get(b"geo")
        epsg = None
        if geo is not None:
            epsg = json.loads(geo)["columns"]["geometry"]["crs"]["id"]["code"]
        tables[path.stem] = (table, epsg)
    return tables


def stem_styles(tables: dict, styles: dict) -> dict:
    """Give each file stem its layer's style (``flows_REU`` takes ``flows``')."""
    out = {}
    for stem in tables:
        layer = next(
            (name for name in styles if stem == name or stem.startswith(f"{name}_")),
            None,
        )
        if layer is not None and not (layer == "flows" and stem == "flow_matrix"):
            out[stem] = styles[layer]
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run the demo once; return (its run folder, the demo config)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", "--output", str(out), "-q"]) == 0
    return out / "latest", load_config(configs_dir() / "demo.toml")


@pytest.fixture(scope="module")
def overseas_tables(demo_run):
    """Demo tables plus a Réunion territory (an EPCI layer, an empty flows layer)."""
    run, config = demo_run
    fields = layer_fields(config.classification)
    tables = run_tables(run)
    epci = gpd.read_parquet(run / "epci_indicators.parquet").iloc[:3].to_crs(2975)
    flows = gpd.read_parquet(run / "flows.parquet").iloc[:0].to_crs(2975)
    tables["epci_indicators_REU"] = (
        geoparquet_table(epci, fields["epci_indicators"], {"run": "test"}),
        2975,
    )
    tables["flows_REU"] = (geoparquet_table(flows, fields["flows"], {}), 2975)
    return tables


@pytest.fixture(scope="module")
def gpkg(demo_run, overseas_tables, tmp_path_factory):
    _, config = demo_run
    styles = stem_styles(
        overseas_tables, layer_styles(config.classification, config.reliability)
    )
    folder = tmp_path_factory.mktemp("staging")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GDAL warnings (geometry types...) fail
        path = write_geopackage(folder, overseas_tables, styles)
    return path, styles


def _sql(path, query):
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_one_geopackage_1_2_alone_in_the_folder(gpkg):
    path, _ = gpkg
    assert path.name == GEOPACKAGE_NAME
    assert sorted(p.name for p in path.parent.iterdir()) == [GEOPACKAGE_NAME]
    assert _sql(path, "PRAGMA application_id") == [(0x47504B47,)]  # 'GPKG'
    assert _sql(path, "PRAGMA user_version") == [(10200,)]
    assert _sql(path, "PRAGMA integrity_check") == [("ok",)]


def test_every_layer_in_its_crs(gpkg, overseas_tables):
    path, _ = gpkg
    layers = dict(pyogrio.list_layers(path))
    assert layers == {
        "dominant_flows": "LineString",
        "epci_indicators": "MultiPolygon",
        "epci_indicators_REU": "MultiPolygon",
        "flow_matrix": None,
        "flows": "LineString",
        "flows_REU": "LineString",
        "metropoles": "MultiPolygon",
        "layer_styles": None,
    }
    for stem, (table, epsg) in overseas_tables.items():
        info = pyogrio.read_info(path, layer=stem, force_feature_count=True)
        assert info["features"] == table.num_rows, stem
        assert info["crs"] == (f"EPSG:{epsg}" if epsg else None), stem
        if epsg:
            assert info["geometry_name"] == "geometry"
    contents = dict(_sql(path, "SELECT table_name, data_type FROM gpkg_contents"))
    assert contents["flow_matrix"] == "attributes"


def test_values_and_types_round_trip(gpkg, demo_run):
    path, _ = gpkg
    run, _ = demo_run
    layers = ("epci_indicators", "flows", "metropoles", "dominant_flows", "flow_matrix")
    for layer in layers:
        back = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
        parquet = pq.read_table(run / f"{layer}.parquet").to_pandas()
        columns = [c for c in parquet.columns if c not in ("geometry", "bbox")]
        assert list(back.columns) == columns
        for column in columns:
            expected, got = parquet[column], back[column]
            if expected.dtype.kind == "f":
                np.testing.assert_allclose(
                    got.to_numpy(float), expected.to_numpy(float), equal_nan=True
                )
            else:
                assert got.tolist() == expected.tolist(), column
    info = pyogrio.read_info(path, layer="flows")
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["origin_crown"] == "int32"
    assert types["workers"] == "float64"
    multi = pyogrio.read_dataframe(path, layer="epci_indicators")
    assert set(multi.geom_type) == {"MultiPolygon"}


def test_default_styles_in_qgis_table(gpkg):
    path, styles = gpkg
    columns = [row[1] for row in _sql(path, "PRAGMA table_info(layer_styles)")]
    assert columns == ["id", *QGIS_STYLE_COLUMNS]
    rows = _sql(
        path,
        "SELECT f_table_schema, f_table_name, f_geometry_column, styleName, "
        "styleQML, useAsDefault FROM layer_styles",
    )
    assert {r[1]: r[4] for r in rows} == styles
    for schema, table, geometry, name, _, default in rows:
        assert (schema, name, default) == ("", table, 1)
        assert geometry == ("" if table == "flow_matrix" else "geometry")
    assert set(styles) == {
        "dominant_flows",
        "epci_indicators",
        "epci_indicators_REU",
        "flows",
        "flows_REU",
        "metropoles",
        "flow_matrix",
    }


def test_aliases_and_descriptions_in_data_columns(gpkg):
    path, _ = gpkg
    rows = _sql(
        path,
        "SELECT name, description FROM gpkg_data_columns "
        "WHERE table_name = 'epci_indicators' AND column_name = 'dependence_share'",
    )
    assert rows == [
        (
            "Part des actifs travaillant dans la métropole (dépendance)",
            "flow_to_metropole / employed_residents",
        )
    ]


def test_provenance_in_layer_metadata(gpkg):
    path, _ = gpkg
    info = pyogrio.read_info(path, layer="epci_indicators_REU")
    assert json.loads(info["layer_metadata"]["observatory"]) == {"run": "test"}


def test_rewriting_replaces_the_file(gpkg, overseas_tables, tmp_path):
    _, styles = gpkg
    first = write_geopackage(tmp_path, overseas_tables, styles)
    again = write_geopackage(tmp_path, overseas_tables, styles)
    assert first == again
    assert _sql(again, "SELECT count(*) FROM layer_styles") == [(len(styles),)]


@pytest.mark.parametrize("before", [None, "FULL"])
def test_writing_leaves_gdal_sqlite_sync_as_it_was(
    gpkg, overseas_tables, tmp_path, before
):
    _, styles = gpkg
    pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": before})
    try:
        write_geopackage(tmp_path, overseas_tables, styles)
        with pytest.raises(OutputError, match="cannot write the GeoPackage"):
            write_geopackage(tmp_path / "missing", overseas_tables, styles)
        assert pyogrio.get_gdal_config_option("OGR_SQLITE_SYNCHRONOUS") == before
    finally:
        pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": None})


def test_validation_names_what_differs(gpkg, overseas_tables):
    path, styles = gpkg
    table, epsg = overseas_tables["flows"]
    wrong = dict(overseas_tables, flows=(table.slice(0, 3), epsg))
    with pytest.raises(OutputError, match=f"flows: {table.num_rows} rows, 3 expected"):
        validate_geopackage(path, wrong, set(styles))
    wrong = dict(overseas_tables, flows_REU=(overseas_tables["flows_REU"][0], 2154))
    with pytest.raises(
        OutputError, match="flows_REU: CRS EPSG:2975, expected EPSG:2154"
    ):
        validate_geopackage(path, wrong, set(styles))
    with pytest.raises(OutputError, match="default styles"):
        validate_geopackage(path, overseas_tables, {"flows"})


def test_a_geopackage_without_styles_is_refused(overseas_tables, tmp_path):
    table, epsg = overseas_tables["metropoles"]
    path = tmp_path / "bare.gpkg"
    pyogrio.write_arrow(
        table.drop_columns(["bbox"]),
        path,
        layer="metropoles",
        driver="GPKG",
        geometry_name="geometry",
        geometry_type="Unknown",
        crs=f"EPSG:{epsg}",
    )
    with pytest.raises(OutputError, match="unreadable GeoPackage"):
        validate_geopackage(path, {"metropoles": (table, epsg)}, {"metropoles"})


# ------------------------------------------------------------ the writing helper
REFUSING = """
from pathlib import Path
from observatory.core.errors import OutputError
from observatory.core.helpers import serve

def work(request):
    path = Path(request[0]) / "observatory.gpkg"
    return ("error", OutputError(f"{path}: refused for the test", path=path))

serve(work)
"""


def test_the_writing_helper_writes_what_write_geopackage_writes(
    gpkg, overseas_tables, tmp_path
):
    here, styles = gpkg
    writing = GeoPackageWriting.start(tmp_path, "run-h")
    try:
        writing.write(RunFiles(overseas_tables, styles, {}))
        path = writing.result()
        assert path == tmp_path / ".staging-run-h-geopackage" / GEOPACKAGE_NAME
        validate_geopackage(path, overseas_tables, set(styles))
        for layer, _ in pyogrio.list_layers(here):
            if layer == "layer_styles":
                continue  # its update times differ
            assert pyogrio.read_arrow(path, layer=layer)[1].equals(
                pyogrio.read_arrow(here, layer=layer)[1]
            ), layer
    finally:
        writing.stop()
    assert not (tmp_path / ".staging-run-h-geopackage").exists()


def test_a_geopackage_the_helper_refuses_is_its_own_error(
    overseas_tables, tmp_path, monkeypatch
):
    (tmp_path / "refusing_helper.py").write_text(REFUSING)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(geopackage_writing, "HELPER", "refusing_helper")
    writing = GeoPackageWriting.start(tmp_path, "run-r")
    try:
        writing.write(RunFiles(overseas_tables, {}, {}))
        with pytest.raises(
            OutputError, match=r"observatory\.gpkg: refused for the test"
        ):
            writing.result()
    finally:
        writing.stop()


def test_a_failed_helper_publishes_nothing(overseas_tables, tmp_path, monkeypatch):
    monkeypatch.setattr(geopackage_writing, "HELPER", "observatory.no_such_helper")
    out = tmp_path / "out"
    with pytest.raises(
        OutputError,
        match=r"the helper process writing the GeoPackage failed \(exit status 1\): "
        r".*no_such_helper",
    ):
        publish(out, "run-x", RunFiles(overseas_tables, {}, {}), {})
    assert list(out.iterdir()) == []  # no run folder, no staging folder left
