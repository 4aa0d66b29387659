"""The GeoPackage opened in a real QGIS: valid layers, styles, legends, a map.

QGIS's Python bindings live in the system Python (Debian's ``python3-qgis``), not
in the venv: tests/qgis_probe.py runs under ``/usr/bin/python3`` in a
subprocess, offscreen, and reports what QGIS sees as JSON. Without QGIS the
tests skip; ``.ci/run`` installs it when it can. The oldest QGIS tested is
3.22 LTR (Debian 12).
"""

import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_gpkg import run_tables, stem_styles

from observatory.cli import main
from observatory.config import configs_dir, load_config
from observatory.layers.codes import class_labels
from observatory.layers.flow_styles import HIDDEN_CROWN_COLOUR, NOMINAL_MEMBER_COLOUR
from observatory.layers.geopackage import write_geopackage
from observatory.layers.qgis import QGIS_MIN_VERSION
from observatory.layers.styles import class_colours, layer_styles
from observatory.systems.flows import ORDER_OF_MAGNITUDE

SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("qgis_probe.py")
ZEROED = 5  # flows given 0 workers (a pair of the previous vintage only)
ENV = os.environ | {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}


@pytest.fixture(scope="module")
def qgis():
    """Skip unless the system Python imports QGIS."""
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import qgis.core"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"QGIS is not available: {SYSTEM_PYTHON}: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"QGIS is not available ({SYSTEM_PYTHON}: {last})")


def _zero_some_flows(table: pa.Table) -> pa.Table:
    # Pairs with no worker now (workers of the previous vintage only).
    zero = pa.array([i < ZEROED for i in range(table.num_rows)])
    for name, value in (("workers", 0.0), ("reliability", ORDER_OF_MAGNITUDE)):
        index = table.schema.get_field_index(name)
        column = pc.if_else(
            zero, pa.scalar(value, table.schema.field(name).type), table.column(name)
        )
        table = table.set_column(index, table.schema.field(name), column)
    return table


@pytest.fixture(scope="module")
def written(qgis, tmp_path_factory):
    """The demo's GeoPackage: (path, tables, config, a métropole's SIREN)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", "--output", str(out), "-q"]) == 0
    config = load_config(configs_dir() / "demo.toml")
    tables = run_tables(out / "latest")
    flows, epsg = tables["flows"]
    tables["flows"] = (_zero_some_flows(flows), epsg)
    styles = stem_styles(
        tables, layer_styles(config.classification, config.reliability)
    )
    path = write_geopackage(tmp_path_factory.mktemp("gpkg"), tables, styles)
    metropole = tables["metropoles"][0].column("metropole_code")[0].as_py()
    return path, tables, config, metropole


def _probe(path: Path, png: Path, *extra: str) -> dict:
    done = subprocess.run(
        [SYSTEM_PYTHON, str(PROBE), str(path), str(png), *extra],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def seen(written):
    """What QGIS sees opening the GeoPackage, and its map of every layer."""
    path, _, config, _ = written
    colours = [
        ",".join(str(int(h[i : i + 2], 16)) for i in (1, 3, 5))
        for h in class_colours(config.classification).values()
    ]
    return _probe(path, path.with_name("map.png"), "--colours", *colours)


def test_oldest_tested_qgis(seen):
    major, minor = (int(x) for x in seen["qgis"].split(".")[:2])
    assert (major, minor) >= tuple(int(x) for x in QGIS_MIN_VERSION.split("."))


def test_system_gdal_reads_every_row_without_warnings(seen, written):
    _, tables, _, _ = written
    read = seen["gdal"]
    assert read["messages"] == [], read["version"]
    for stem, (table, _) in tables.items():
        assert read["rows"][stem] == table.num_rows


def test_every_layer_valid_with_its_rows_and_crs(seen, written):
    _, tables, _, _ = written
    layers = seen["layers"]
    assert set(layers) == set(tables)
    for stem, (table, epsg) in tables.items():
        layer = layers[stem]
        assert layer["valid"], stem
        assert layer["features"] == table.num_rows, stem
        assert layer["crs"] == (f"EPSG:{epsg}" if epsg else ""), stem
        assert layer["geometry"] == (epsg is not None), stem


def test_epci_classes_with_french_legend_and_labels(seen, written):
    _, _, config, _ = written
    epci = seen["layers"]["epci_indicators"]
    assert epci["renderer"] == "categorizedSymbol"
    assert [item["label"] for item in epci["legend"]] == list(
        class_labels(config.classification).values()
    )
    assert "Peu liée" in [item["label"] for item in epci["legend"]]
    assert epci["labels"]
    assert epci["value_maps"]["epci_class"][1] == ["integree", "Intégrée"]


def test_metropoles_labelled(seen):
    metropoles = seen["layers"]["metropoles"]
    assert metropoles["renderer"] == "singleSymbol"
    assert metropoles["labels"]


def test_flows_graduated_ordered_and_zero_hidden(seen, written):
    _, tables, _, _ = written
    flows = seen["layers"]["flows"]
    assert flows["renderer"] == "RuleRenderer"
    assert flows["order_by"]
    legend = {item["label"]: item["checked"] for item in flows["legend"]}
    assert legend["5\u00a0000 actifs et plus"]
    assert legend["Moins de 200 actifs (ordre de grandeur, fragile)"]
    hidden = [label for label, checked in legend.items() if not checked]
    assert hidden == ["Aucun actif à ce millésime (paire du millésime précédent)"]
    # Each flow with workers is drawn by exactly one class; zero ones by none.
    workers = tables["flows"][0].column("workers").to_pylist()
    zero = sum(w == 0 for w in workers)  # ours, and pairs of the previous vintage only
    assert zero >= ZEROED
    assert flows["symbols"] == {"positive:1": len(workers) - zero, "zero:0": zero}


def test_value_maps_and_aliases_loaded(seen):
    flows = seen["layers"]["flows"]
    assert dict(flows["value_maps"]["flow_type"])["to_metropole"] == "Vers la métropole"
    assert dict(flows["value_maps"]["reliability"])["reliable"] == "Fiable (≥ 500)"
    assert flows["aliases"]["workers"] == "Actifs occupés (navetteurs)"
    matrix = seen["layers"]["flow_matrix"]  # an attribute table's style loads too
    assert matrix["aliases"]["origin_name"] == "Origine"


def test_map_is_drawn_in_the_class_colours(seen, written):
    _, tables, config, _ = written
    render = seen["render"]
    assert render["errors"] == []
    assert render["painted"] > 0.2 * render["width"] * render["height"]
    present = set(tables["epci_indicators"][0].column("epci_class").to_pylist())
    colours = class_colours(config.classification)
    for code in present - {"sans_donnees"}:
        rgb = ",".join(str(int(colours[code][i : i + 2], 16)) for i in (1, 3, 5))
        assert render["colours"][rgb] > 500, code  # pixels of that class's fill


def test_one_system_map(written):
    path, _, _, metropole = written
    png = path.with_name(f"map_{metropole}.png")
    render = _probe(path, png, "--metropole", metropole)["render"]
    assert render["errors"] == []
    assert render["painted"] > 0.15 * render["width"] * render["height"]
    assert png.stat().st_size > 50_000


def test_the_published_geopackage_opens_styled(qgis, tmp_path):
    """``observatory run`` writes observatory.gpkg itself: QGIS opens it styled."""
    out = tmp_path / "out"
    assert main(["run", "--output", str(out), "-q"]) == 0
    path = out / "latest" / "observatory.gpkg"
    seen = _probe(path, tmp_path / "map.png")
    tables = run_tables(out / "latest")
    assert set(seen["layers"]) == set(tables)
    for stem, (table, _) in tables.items():
        assert seen["layers"][stem]["valid"], stem
        assert seen["layers"][stem]["features"] == table.num_rows, stem
    assert seen["layers"]["epci_indicators"]["renderer"] == "categorizedSymbol"
    assert seen["layers"]["flows"]["renderer"] == "RuleRenderer"
    assert seen["gdal"]["messages"] == []
    render = seen["render"]
    assert render["errors"] == []
    assert render["painted"] > 0.2 * render["width"] * render["height"]


def test_hidden_crown_and_nominal_members_are_marked_in_qgis(written):
    """The style's marks of disagreement draw where their flag is set, nowhere else."""
    path, tables, _, _ = written
    epci = tables["epci_indicators"][0].to_pandas()
    marks = {
        "hidden_crown": ",".join(
            str(int(HIDDEN_CROWN_COLOUR[i : i + 2], 16)) for i in (1, 3, 5)
        ),
        "nominal_member": ",".join(
            str(int(NOMINAL_MEMBER_COLOUR[i : i + 2], 16)) for i in (1, 3, 5)
        ),
    }
    for metropole, part in epci.groupby("metropole_code"):
        png = path.with_name(f"marks_{metropole}.png")
        render = _probe(
            path, png, "--metropole", metropole, "--colours", *marks.values()
        )["render"]
        assert render["errors"] == []
        for flag, rgb in marks.items():
            if part[flag].any():
                assert render["colours"][rgb] > 1_000, (metropole, flag)
            else:
                assert render["colours"][rgb] < 50, (metropole, flag)
