"""GeoParquet metadata, types, round trip, and readers other than geopandas."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest

from observatory.cli import main
from observatory.config import load_config
from observatory.core.errors import OutputError
from observatory.layers.files import RunFiles
from observatory.layers.geoparquet import geoparquet_table
from observatory.layers.schemas import layer_fields
from observatory.runs.publish import publish, validate_written

LAYERS = ("epci_indicators", "flows", "metropoles")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Run the CLI once on the hand-made inputs; return (output folder, config)."""
    from conftest import (
        write_communes,
        write_composition_xlsx,
        write_config,
        write_flows,
    )

    folder = tmp_path_factory.mktemp("inputs")
    write_communes(folder / "COMMUNE.shp")
    write_composition_xlsx(folder / "EPCI_au_01-01-2023.xlsx")
    write_flows(folder / "base-flux-2021.zip")
    config = write_config(folder)
    out = folder / "out"
    assert main(["run", "--config", str(config), "--output", str(out), "--quiet"]) == 0
    return out / "latest", load_config(config)


@pytest.mark.parametrize("layer", LAYERS)
def test_geoparquet_metadata(outputs, layer):
    out, _ = outputs
    meta = pq.read_metadata(out / f"{layer}.parquet")
    geo = json.loads(meta.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "geometry"
    assert column["encoding"] == "WKB"
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 2154}
    expected = ["LineString"] if layer == "flows" else ["Polygon"]
    assert set(column["geometry_types"]) <= {*expected, "MultiPolygon"}
    assert {
        meta.row_group(0).column(i).compression for i in range(meta.num_columns)
    } == {"ZSTD"}
    provenance = json.loads(meta.metadata[b"observatory"])
    assert provenance["inputs"]
    assert all(len(i["sha256"]) == 64 for i in provenance["inputs"])


@pytest.mark.parametrize("layer", LAYERS)
def test_no_geoarrow_annotation_for_gdal_312(outputs, layer):
    # GDAL 3.9-3.12 with Arrow >= 21 (QGIS 3.44/4.0) lose the CRS of columns
    # annotated geoarrow.wkb (OSGeo/gdal#14320); files must not carry it.
    field = pq.read_schema(outputs[0] / f"{layer}.parquet").field("geometry")
    assert not (field.metadata or {}).get(b"ARROW:extension:name")
    assert str(field.type) == "binary"


@pytest.mark.parametrize("layer", [*LAYERS, "flow_matrix"])
def test_column_names_and_types_are_the_schema(outputs, layer):
    out, config = outputs
    schema = pq.read_schema(out / f"{layer}.parquet")
    fields = layer_fields(config.classification)[layer]
    names = [f.name for f in fields] + (
        ["geometry", "bbox"] if layer != "flow_matrix" else []
    )
    assert schema.names == names
    for f in fields:
        assert schema.field(f.name).type == f.type
        assert schema.field(f.name).metadata[b"alias_fr"].decode() == f.alias_fr


@pytest.mark.parametrize("layer", LAYERS)
def test_round_trip_geopandas(outputs, layer):
    out, config = outputs
    gdf = gpd.read_parquet(out / f"{layer}.parquet")
    assert gdf.crs.to_epsg() == 2154
    again = geoparquet_table(gdf, layer_fields(config.classification)[layer], {"x": 1})
    original = pq.read_table(out / f"{layer}.parquet")
    assert again.drop_columns(["bbox"]).equals(original.drop_columns(["bbox"]))


@pytest.mark.parametrize("layer", LAYERS)
def test_geoparquet_validator(outputs, layer):
    exe = shutil.which("geoparquet-validator") or shutil.which(
        "geoparquet-validator", path=str(Path(sys.executable).parent)
    )
    if exe is None:
        pytest.skip("geoparquet-validator is not installed (pip install '.[test]')")
    result = subprocess.run(
        [exe, "check", "--json", str(outputs[0] / f"{layer}.parquet")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    failed = [o for o in json.loads(result.stdout)["outcomes"] if o["status"] == "fail"]
    assert failed == []


def _duckdb():
    duckdb = pytest.importorskip("duckdb")
    spatial = pytest.importorskip("duckdb_extension_spatial")
    extension = next(Path(spatial.__path__[0]).rglob("spatial.duckdb_extension"), None)
    if extension is None:
        pytest.skip("duckdb-extension-spatial ships no extension file")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    return con


@pytest.mark.parametrize("layer", LAYERS)
def test_duckdb_spatial_reads_the_same(outputs, layer):
    con = _duckdb()
    path = outputs[0] / f"{layer}.parquet"
    gdf = gpd.read_parquet(path)
    described = con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    types = {row[0]: row[1] for row in described}
    assert types["geometry"] == "GEOMETRY('EPSG:2154')"
    wkb = con.execute(f"SELECT ST_AsWKB(geometry) FROM '{path}'").fetchall()
    assert [bytes(r[0]) for r in wkb] == gdf.geometry.to_wkb().tolist()
    frame = con.execute(f"SELECT * EXCLUDE (geometry, bbox) FROM '{path}'").df()
    expected = pd.DataFrame(gdf.drop(columns=["geometry", "bbox"], errors="ignore"))
    assert list(frame.columns) == list(expected.columns)

    def _values(df):
        return df.astype(object).where(df.notna(), None).to_numpy().tolist()

    assert _values(frame) == _values(expected)


@pytest.mark.skipif(
    "Parquet" not in pyogrio.list_drivers(),
    reason="this GDAL build has no Parquet driver",
)
@pytest.mark.parametrize("layer", LAYERS)
def test_gdal_reads_crs(outputs, layer):
    info = pyogrio.read_info(outputs[0] / f"{layer}.parquet")
    assert "2154" in info["crs"]


def test_qml_aliases_and_dictionary(outputs):
    out, _ = outputs
    qml = (out / "epci_indicators.qml").read_text(encoding="utf-8")
    assert 'field="dependence_share"' in qml
    assert "dépendance" in qml
    assert "dependence_share" in (out / "data_dictionary.csv").read_text(
        encoding="utf-8"
    )


def test_manifest(outputs):
    out, config = outputs
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["sha256"] == config.sha256
    assert manifest["rows"]["epci_indicators"] == 4
    assert manifest["flows_vintage"] == 2021
    assert {i["role"] for i in manifest["inputs"]} == {
        "communes",
        "epci_composition",
        "flows",
    }
    assert any(
        i["path"].endswith(".dbf") for i in manifest["inputs"]
    )  # every shapefile part
    assert set(manifest["timings_s"]) >= {
        "read",
        "territories",
        "flows",
        "classify",
        "layers",
    }
    assert sorted(manifest["files"]) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
    )


def test_manifest_keys_keep_their_order(outputs):
    # Readers of manifest.json and of the layers' metadata see these keys in
    # this order; the records they are serialised from must keep it.
    out, _ = outputs
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest) == [
        "run_id",
        "package",
        "python",
        "started",
        "config",
        "classification",
        "synthetic_flows",
        "flows_vintage",
        "previous_vintage",
        "geography",
        "inputs",
        "systems",
        "territories",
        "flows",
        "flows_previous",
        "fd_mobpro",
        "harmonisation",
        "flow_systems",
        "warnings",
        "refresh",
        "timings_s",
        "files",
        "rows",
    ]
    assert list(manifest["inputs"][0]) == [
        "role",
        "path",
        "size",
        "sha256",
        "geography",
    ]
    assert list(manifest["territories"]) == [
        "communes_with_geometry",
        "communes_without_epci",
        "communes_epci_from_geometry_file",
        "communes_epci_disagreeing",
        "territories",
    ]
    provenance = json.loads(
        pq.read_metadata(out / "flows.parquet").metadata[b"observatory"]
    )
    assert list(provenance) == [
        "run_id",
        "package",
        "created",
        "config",
        "config_sha256",
        "flows_vintage",
        "synthetic_flows",
        "inputs",
    ]


def test_docs_data_dictionary_is_in_sync(outputs):
    from observatory.layers.schemas import data_dictionary_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "data-dictionary.md"
    assert (
        doc.read_text(encoding="utf-8").strip()
        == data_dictionary_markdown(outputs[1].classification).strip()
    )


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): str(p.readlink())
        if p.is_symlink()
        else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def test_publish_makes_a_run_folder_in_one_rename(tmp_path, outputs):
    table = pq.read_table(outputs[0] / "flows.parquet")
    run = RunFiles({"flows": (table, 2154)}, {}, {"a.txt": "é"})
    files = publish(tmp_path, "run-y", run, {}, formats=("geoparquet",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-y"]  # no staging left
    assert files == {
        name: tmp_path / "run-y" / name
        for name in ("a.txt", "flows.parquet", "manifest.json")
    }
    manifest = json.loads(files["manifest.json"].read_text(encoding="utf-8"))
    assert manifest["rows"] == {"flows": table.num_rows}
    assert manifest["timings_s"]["write"] >= 0


def test_failed_write_leaves_earlier_outputs(tmp_path, outputs, monkeypatch):
    out = tmp_path / "published"
    shutil.copytree(outputs[0].parent, out, symlinks=True)
    before = _tree(out)
    table = pq.read_table(outputs[0] / "flows.parquet")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(
        OutputError, match=r"No space left on device.*earlier outputs left in place"
    ):
        publish(out, "run-x", RunFiles({"flows": (table, 2154)}, {}, {}), {})
    assert _tree(out) == before
    assert not (out / "run-x").exists()
    assert not list(out.glob(".staging-*"))


def _with_geo(table, change):
    # The table with its ``geo`` metadata changed by ``change(geometry column)``.
    geo = json.loads(table.schema.metadata[b"geo"])
    change(geo["columns"][geo["primary_column"]])
    return table.replace_schema_metadata(
        {**table.schema.metadata, b"geo": json.dumps(geo).encode()}
    )


def test_validate_written_accepts_a_layer_as_written(tmp_path, outputs):
    table = pq.read_table(outputs[0] / "flows.parquet")
    pq.write_table(table, tmp_path / "flows.parquet")
    validate_written(tmp_path / "flows.parquet", table.num_rows, 2154)


@pytest.mark.parametrize(
    ("change", "rows", "expected"),
    [
        (lambda column: None, 1, r"flows\.parquet: \d+ rows written, 1 expected"),
        (
            lambda column: column.update(crs=None),
            None,
            r"flows\.parquet: invalid GeoParquet: crs is not EPSG:2154",
        ),
        (  # the identifier says 2154, the definition is none pyproj reads
            lambda column: column.update(crs={"id": column["crs"]["id"]}),
            None,
            r"flows\.parquet: reads back with no CRS, expected EPSG:2154",
        ),
        (  # the identifier says 2154, the definition is WGS 84
            lambda column: column.update(
                crs={**pyproj_crs_json(4326), "id": column["crs"]["id"]}
            ),
            None,
            r"flows\.parquet: reads back with CRS WGS 84 \(EPSG:4326\), expected EPSG:2154",
        ),
    ],
)
def test_validate_written_names_what_readers_would_get_wrong(
    tmp_path, outputs, change, rows, expected
):
    table = _with_geo(pq.read_table(outputs[0] / "flows.parquet"), change)
    path = tmp_path / "flows.parquet"
    pq.write_table(table, path)
    with pytest.raises(OutputError, match=expected):
        validate_written(path, table.num_rows if rows is None else rows, 2154)


def pyproj_crs_json(epsg):
    import pyproj

    return pyproj.CRS.from_epsg(epsg).to_json_dict()
