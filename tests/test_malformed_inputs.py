"""A corpus of malformed inputs, each refused with one line naming the file.

Every case (``malformed_cases.CASES``) is a small file written by the test,
given to its reader: the error is an ObservatoryError of one line, naming the
file (and the line or feature when there is one) and saying what was expected.
A representative subset goes through the real ``observatory run`` command: exit
code 1, the message as the last line of stderr, no run published, the earlier
outputs untouched. Also what is accepted: empty lines at the end, pairs added
up when allowed, small repairs (each a warning).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import (
    COMMUNE_ROWS,
    FLOW_ROWS,
    write_communes,
    write_composition_xlsx,
    write_config,
    write_flows,
)
from malformed_cases import (
    CASES,
    READERS,
    bowtie_commune,
    communes_file,
    flows_file,
)

from observatory.cli import main
from observatory.config.load import load_config
from observatory.core.errors import ConfigError, ObservatoryError
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import read_communes
from observatory.readers.polygons import RepairPolicy


def test_the_corpus_is_large_and_every_reader_has_cases():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.reader for case in CASES} == set(READERS)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_reader_refuses_with_one_line(case, tmp_path, monkeypatch):
    if case.patch is not None:
        module, name, value = case.patch
        monkeypatch.setattr(module, name, value)
    path = case.write(tmp_path)
    with pytest.raises(ObservatoryError) as info:
        READERS[case.reader](path)
    message = str(info.value)
    assert re.search(case.message, message), message
    assert "\n" not in message, message
    assert len(message) < 1000, message
    assert message.startswith(str(path)), message
    if case.line is not None:
        assert info.value.line == case.line


# --------------------------------------------------------------------- accepted
def test_blank_lines_at_the_end_are_dropped(tmp_path):
    path = flows_file(tmp_path, "01001;A;01002;B;1\n01001;A;01004;B;2,5\n\n\n")
    table = read_base_flux(path).table
    assert table["workers"].tolist() == [1.0, 2.5]


def test_duplicated_pairs_added_up_when_allowed(tmp_path, caplog):
    body = "01001;A;01002;B;1\n01001;A;01004;B;2\n01001;A;01002;B;3\n"
    flows = read_base_flux(flows_file(tmp_path, body), allow_duplicate_pairs=True)
    assert flows.table.to_dict("list") == {
        "origin_commune": ["01001", "01001"],
        "destination_commune": ["01002", "01004"],
        "workers": [4.0, 2.0],
    }
    (warning,) = flows.warnings
    assert "line 4: '01001 -> 01002 (as line 2)'" in warning
    assert "3.0 workers on the repeated lines" in warning
    assert warning in caplog.text


@pytest.mark.parametrize(
    ("spike", "policy", "accepted"),
    [
        (0.003, {}, True),  # under 1 %: repaired, with a warning
        (0.03, {"accept": True}, True),  # repair_geometry = true
        (0.03, {"max_area_change": 0.05}, True),
        (0.03, {}, False),
    ],
)
def test_repairs_are_warnings_naming_the_feature(
    tmp_path, caplog, spike, policy, accepted
):
    rows = [("69123", "Lyon", "x", bowtie_commune(spike)), *COMMUNE_ROWS[1:]]
    path = communes_file(tmp_path, rows)
    if not accepted:
        with pytest.raises(ObservatoryError, match="repair_geometry = true"):
            read_communes(path, repairs=RepairPolicy(**policy))
        return
    communes = read_communes(path, repairs=RepairPolicy(**policy))
    assert communes.geometry.is_valid.all()
    (record,) = [r for r in caplog.records if "repaired" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert re.search(
        r"feature 0 \(69123 Lyon, area [+-]\d+\.\d\d%\)", record.getMessage()
    )


# --------------------------------------------------------------------- CLI
ROLES = {"flows": "flows", "communes": "communes", "epci": "epci_composition"}
CLI_CASES = [
    "flux-header-only",
    "flux-1e308",
    "flux-duplicated-pair",
    "flux-long-line",
    "flux-zeros",
    "flux-header-then-zeros",
    "communes-repair-changes-area",
    "epci-not-a-workbook",
    "epci-no-commune",
]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """Tiny inputs and a first run published from them; returns their folder."""
    folder = tmp_path_factory.mktemp("published")
    write_communes(folder / "COMMUNE.shp")
    write_composition_xlsx(folder / "EPCI_au_01-01-2023.xlsx")
    write_flows(folder / "base-flux-2021.zip")
    config = write_config(folder)
    assert (
        main(["run", "--config", str(config), "--output", str(folder / "out"), "-q"])
        == 0
    )
    return folder


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_run_refuses_and_keeps_earlier_outputs(published, tmp_path, case_id, capsys):
    case = next(case for case in CASES if case.id == case_id)
    folder = tmp_path / "inputs"
    shutil.copytree(published, folder, symlinks=True)
    out = folder / "out"
    latest, before = (out / "latest").readlink(), _files(out / "latest")
    broken = case.write(folder)
    config = write_config(folder, **{ROLES[case.reader]: broken.name})
    fresh = folder / "fresh"
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--output", str(fresh)]) == 1
    assert main(["run", "--config", str(config), "--output", str(out)]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("observatory run failed at stage 'read': "), last
    assert re.search(case.message, last), last
    assert str(broken) in last
    assert [p.name for p in fresh.iterdir()] == [".observatory"]  # nothing published
    assert (out / "latest").readlink() == latest
    assert _files(out / "latest") == before
    runs = [
        p for p in out.iterdir() if not p.name.startswith(".") and p.name != "latest"
    ]
    assert {p.name for p in runs} - {"LATEST"} == {latest.name}


def test_run_adds_up_duplicated_pairs_when_allowed_and_says_so(published, tmp_path):
    folder = tmp_path / "inputs"
    shutil.copytree(published, folder, symlinks=True)
    write_flows(folder / "base-flux-2021.zip", rows=[*FLOW_ROWS, FLOW_ROWS[3]])
    config = write_config(folder)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("[inputs]\n", "[inputs]\nallow_duplicate_pairs = true\n")
    )
    out = folder / "again"
    assert main(["run", "--config", str(config), "--output", str(out), "-q"]) == 0
    manifest = (out / "latest" / "manifest.json").read_text(encoding="utf-8")
    assert "01002 -> 01001 (as line 5)" in manifest
    assert "allow_duplicate_pairs = true" in manifest


# --------------------------------------------------------------------- config
def test_input_bounds_are_read_and_checked_from_the_config(tmp_path):
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    keys = "allow_duplicate_pairs = true\nrepair_geometry = true\nmax_repair_area_change = 0.05\n"
    config.write_text(text.replace("[inputs]\n", "[inputs]\n" + keys), encoding="utf-8")
    inputs = load_config(config).inputs
    assert (inputs.allow_duplicate_pairs, inputs.repair_geometry) == (True, True)
    assert inputs.max_repair_area_change == 0.05
    assert not load_config(write_config(tmp_path)).inputs.allow_duplicate_pairs
    config.write_text(
        text.replace("[inputs]\n", "[inputs]\nmax_repair_area_change = 2\n"),
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"max_repair_area_change must lie in \[0, 1\], got 2"
    ):
        load_config(config)
    config.write_text(
        text.replace("[inputs]\n", '[inputs]\nrepair_geometry = "yes"\n'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"repair_geometry must be bool"):
        load_config(config)
