"""The command line end to end: the embedded demo, --help, and bad input.

``observatory run`` publishes run folders and ``latest`` like ``refresh``: the
guarantees of unattended refreshes are tested in test_refresh.py.
"""

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from conftest import FLOW_ROWS, write_config, write_flows

from observatory.cli import main


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder (maps/, charts/ included), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "métropole" in text
    assert re.search(r"^  75 +another run or refresh", text, re.MULTILINE)
    assert "refresh" in text
    assert "status" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--config" in text
    assert "--output" in text
    assert "SYNTHETIC" in text
    with pytest.raises(SystemExit):
        main(["refresh", "--help"])
    text = capsys.readouterr().out
    assert "--force" in text
    assert "--quiet" in text
    assert "75" in text


def test_fetch_help_names_the_download_bounds(capsys):
    with pytest.raises(SystemExit):
        main(["fetch", "--help"])
    text = capsys.readouterr().out
    for option in ("--timeout", "--retries", "--max-extracted-size"):
        assert option in text
    assert "--max-compression-ratio" in text
    assert "75" in text  # another fetch into the same cache
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch", "--max-extracted-size", "lots"])
    assert exit_info.value.code == 2
    assert "expected a size above 0" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: observatory" in capsys.readouterr().out


def test_demo_end_to_end(tmp_path, capsys):
    """`observatory run` with no config: the embedded demo, as a new user runs it."""
    root = tmp_path / "outputs"
    assert main(["run", "--output", str(root)]) == 0
    summary = capsys.readouterr().out
    assert "SYNTHETIC" in summary
    assert "Brest Métropole (242900314): crown 1:" in summary
    assert "Rennes Métropole (243500139): crown 1:" in summary
    out = root / "latest"  # what the user opens
    (run_id,) = [p.name for p in root.iterdir() if p.name[0].isdigit()]
    assert f"latest -> {run_id}" in summary
    assert (root / "LATEST").read_text(encoding="utf-8") == run_id + "\n"
    for name in ("epci_indicators", "flows", "metropoles", "flow_matrix"):
        assert (out / f"{name}.parquet").is_file()
    epci = gpd.read_parquet(out / "epci_indicators.parquet")
    assert epci.crs.to_epsg() == 2154
    assert {0, 1, 2} <= set(epci["crown"])
    assert (
        epci["dependence_share"].between(0, 1).all()
        or epci["dependence_share"].isna().any()
    )
    surrounding = epci[epci["crown"] > 0]
    assert (
        surrounding["epci_class"].nunique() >= 3
    )  # a real territory gives varied classes
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["synthetic_flows"] is True
    assert manifest["run_id"] == run_id
    assert (
        json.loads(
            gpd.read_parquet(out / "flows.parquet").attrs.get("observatory", "{}")
            or "{}"
        )
        is not None
    )
    assert not list(root.glob(".staging-*"))


def test_module_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "observatory", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("observatory ")


@pytest.mark.parametrize(
    ("broken", "match"),
    [
        ("flows-column", r"base-flux-2021\.zip \[.*\]: line 1: expected columns"),
        (
            "flows-number",
            r"base-flux-2021\.zip \[.*\]: NBFLUX_C21_ACTOCC15P must be a number; line 3: 'n/a'",
        ),
        ("flows-code", r"CODGEO must be a 5-character commune code; line 2: '6938'"),
        ("geometry", r"COMMUNE\.shp: cannot read as a geometry file"),
    ],
    ids=[
        "missing-column",
        "non-numeric-flow",
        "bad-commune-code",
        "unreadable-geometry",
    ],
)
def test_bad_input_fails_cleanly_and_keeps_outputs(tiny_inputs, broken, match, capsys):
    folder = tiny_inputs.parent
    out = folder / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out), "-q"]) == 0
    latest = (out / "latest").readlink()
    before = _files(out / "latest")

    if broken == "flows-column":
        write_flows(
            folder / "base-flux-2021.zip",
            header="CODGEO;LIBGEO;DESTINATION;L_DCLT;NBFLUX_C21_ACTOCC15P",
        )
    elif broken == "flows-number":
        write_flows(
            folder / "base-flux-2021.zip",
            rows=[FLOW_ROWS[0], ("01001", "69385", "n/a")],
        )
    elif broken == "flows-code":
        write_flows(folder / "base-flux-2021.zip", rows=[("6938", "69266", "50")])
    else:
        (folder / "COMMUNE.shp").write_bytes(b"\x00" * 100)

    fresh = folder / "fresh"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(fresh)]) == 1
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out)]) == 1
    stderr = capsys.readouterr().err.strip().splitlines()
    assert re.search(match, stderr[-1]), stderr[-1]
    assert stderr[-1].startswith("observatory run failed at stage 'read': ")
    assert re.search(
        r"; log: .*/out/\.observatory/logs/[0-9TZ.]+-[0-9a-f]{6}\.log$", stderr[-1]
    )
    assert [p.name for p in fresh.iterdir()] == [".observatory"]  # no output at all
    assert not (fresh / "latest").exists()
    assert (out / "latest").readlink() == latest  # earlier run intact
    assert _files(out / "latest") == before


def test_config_error_exit_code(tmp_path, caplog):
    bad = tmp_path / "bad.toml"
    bad.write_text("[inputs]\ncommunes = 3\n", encoding="utf-8")
    assert main(["run", "--config", str(bad)]) == 1
    assert (
        "bad.toml: [inputs] missing key(s) ['epci_composition', 'flows']" in caplog.text
    )


def test_two_vintages_give_change_indicators(tiny_inputs):
    folder = tiny_inputs.parent
    earlier = [r for r in FLOW_ROWS if r[:2] != ("01001", "69385")] + [
        ("01001", "69385", "200")
    ]
    write_flows(
        folder / "base-flux-2016.zip",
        rows=earlier,
        header="CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_C16_ACTOCC15P",
    )
    write_config(folder, flows_previous="base-flux-2016.zip")
    out = folder / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out), "-q"]) == 0
    out = out / "latest"
    epci = gpd.read_parquet(out / "epci_indicators.parquet").set_index("epci_code")
    assert set(epci["vintage"]) == {2021}
    assert set(epci["previous_vintage"]) == {2016}
    assert epci.loc["200000002", "flow_to_metropole_previous"] == 200
    assert epci.loc["200000002", "flow_to_metropole_change"] == 100
    lines = gpd.read_parquet(out / "flows.parquet")
    to_m = lines[
        (lines["origin_code"] == "200000002") & (lines["flow_type"] == "to_metropole")
    ]
    assert to_m["workers_change"].tolist() == [100.0]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {i["role"] for i in manifest["inputs"]} >= {"flows", "flows_previous"}


def test_same_vintage_twice_is_refused(tiny_inputs, caplog):
    write_config(tiny_inputs.parent, flows_previous="base-flux-2021.zip")
    assert (
        main(
            [
                "run",
                "--config",
                str(tiny_inputs),
                "--output",
                str(tiny_inputs.parent / "o"),
            ]
        )
        == 1
    )
    assert "same vintage (2021)" in caplog.text


def test_detailed_file_gives_modal_split_and_distances(tiny_inputs):
    """FD_MOBPRO consistent with the base flux: 3/4 by car (5), 1/4 by public transport (6)."""
    from conftest import COMMUNE_ROWS

    folder = tiny_inputs.parent
    lines = ["COMMUNE;ARM;DCLT;TRANS;IPONDI;SEXE"]
    for origin, destination, workers in FLOW_ROWS:
        commune, arm = (
            ("69123", origin) if origin.startswith("6938") else (origin, "ZZZZZ")
        )
        lines.append(f"{commune};{arm};{destination};5;{float(workers) * 0.75};1")
        lines.append(f"{commune};{arm};{destination};6;{float(workers) * 0.25};2")
    (folder / "FD_MOBPRO_2021.csv").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )
    write_config(folder, fd_mobpro="FD_MOBPRO_2021.csv")
    with tiny_inputs.open("a", encoding="utf-8") as config:
        config.write('[compute]\nscheduler = "synchronous"\n')
    out = folder / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out), "-q"]) == 0

    manifest = json.loads(
        (out / "latest" / "manifest.json").read_text(encoding="utf-8")
    )
    assert manifest["fd_mobpro"]["base_flux_check"]["consistent"] is True
    assert not [w for w in manifest["warnings"] if "detailed file" in w]
    epci = gpd.read_parquet(out / "latest" / "epci_indicators.parquet").set_index(
        "epci_code"
    )
    assert epci.loc["200000002", "to_metropole_car_share"] == pytest.approx(0.75)
    assert epci.loc[
        "200000002", "from_metropole_public_transport_share"
    ] == pytest.approx(0.25)
    assert epci.loc["200000002", "to_metropole_bicycle_share"] == 0
    assert pd.isna(epci.loc["200046977", "to_metropole_car_share"])  # crown 0

    flows = gpd.read_parquet(out / "latest" / "flows.parquet")
    to_m = flows[
        (flows["origin_code"] == "200000002") & (flows["flow_type"] == "to_metropole")
    ].iloc[0]
    points = {
        code: polygon.representative_point() for code, _, _, polygon in COMMUNE_ROWS
    }
    km = points["01001"].distance(points["69123"]) / 1000  # 01001 -> 69385 (Lyon)
    assert to_m["distance_km"] == pytest.approx(km)
    assert to_m["person_km"] == pytest.approx(300 * km)
    assert to_m["car_person_km"] == pytest.approx(225 * km)
    assert to_m["car_share"] + to_m["public_transport_share"] == pytest.approx(1)


def test_without_detailed_file_mode_columns_are_empty(tiny_inputs):
    out = tiny_inputs.parent / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out), "-q"]) == 0
    flows = gpd.read_parquet(out / "latest" / "flows.parquet")
    assert flows["car_share"].isna().all()
    assert flows["distance_km"].isna().all()


# --------------------------------------------------------------------- file-system errors
def test_output_that_is_a_file_is_one_sentence(tiny_inputs, capsys):
    target = tiny_inputs.parent / "a-file"
    target.write_text("not a folder\n", encoding="utf-8")
    assert main(["run", "--config", str(tiny_inputs), "--output", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"observatory run failed: --output {target} is a file, not a folder: name a "
        "folder (it is created if absent)"
    ]
    assert target.read_text(encoding="utf-8") == "not a folder\n"


def test_output_below_a_file_is_one_sentence(tiny_inputs, capsys):
    target = tiny_inputs.parent / "a-file"
    target.write_text("x", encoding="utf-8")
    out = target / "runs"
    assert main(["refresh", "--config", str(tiny_inputs), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"observatory refresh failed: cannot create --output {out}: a part of the "
        f"path is a file, not a folder: {out}"
    ]


def test_new_output_folder_on_a_read_only_mount(tiny_inputs, capsys, monkeypatch):
    """A read-only mount answers EROFS (simulated: tests run as root, without mounts)."""
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "ro-mount" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    out = tiny_inputs.parent / "ro-mount" / "outputs"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"observatory run failed: cannot create --output {out}: the file system is "
        f"read-only: {out}"
    ]


def test_a_file_system_error_inside_a_run_is_one_plain_sentence(tmp_path):
    import errno

    from observatory.runs.execute import failure_line

    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    line = failure_line("run", exc, tmp_path / "run.log", "write")
    assert line.startswith("observatory run failed at stage 'write': the disk is full")
    assert str(tmp_path / "x") in line
    assert "Errno" not in line
    assert "OSError" not in line
