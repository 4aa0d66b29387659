"""The gate on unmatched flows, through the real command line.

Census N is published in the geography of 1 January N+3 (RP 2023 in that of
2026). A flows file coded in the 2026 communes, read against the composition of
2025 without a commune passage, leaves the communes created on 1 January 2026
in no EPCI. Above ``[inputs] max_unmatched_share`` (0.5 % by default) the run
fails in its flows stage, names the file, the share, the largest unmatched
codes with their workers and the likely cause, and publishes nothing; below it
the run publishes and lists them in the manifest and the summary.

The fixture is tiny and its 2026 communes are invented: 01451, a commune
nouvelle with a new code (as if 01002 had merged with communes outside the
fixture), and 38567, likewise.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import (
    COMMUNE_ROWS,
    flows_text,
    write_communes,
    write_composition_xlsx,
    zip_bytes,
)

from observatory.cli import main
from observatory.readers.base_flux import CommuneFlows
from observatory.runs.reading import flagged_communes
from observatory.runs.stages import unmatched_warning

# RP 2022 in the geography of 2025: every code is in the composition.
GOOD_ROWS = [
    ("69381", "69266", "5000"),
    ("69266", "69266", "20000"),
    ("38001", "38001", "10000"),
    ("38001", "69123", "3000"),
    ("01001", "69385", "3000"),
    ("01002", "69123", "1360"),
    ("01001", "99140", "2000"),
]
# RP 2023 in the geography of 2026: two communes created on 1 January 2026.
CODED_2026_ROWS = [
    *GOOD_ROWS[:5],
    ("01001", "99140", "2000"),  # abroad: never unmatched
    ("01451", "69123", "900"),
    ("01451", "01451", "400"),  # an internal flow counts once
    ("69266", "01451", "60"),
    ("38567", "69123", "250"),
    ("38567", "38001", "100"),
]
TOTAL = 41_000 + 2_000 + 1_360 + 350
UNMATCHED = 1_360 + 350  # 01451 and 38567


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder (maps/, charts/ included), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _flows_zip(path: Path, rows, vintage: int) -> Path:
    header = f"CODGEO;LIBGEO;DCLT;L_DCLT;NBFLUX_C{vintage % 100}_ACTOCC15P"
    member = f"base-flux-mobilite-domicile-lieu-travail-{vintage}.csv"
    path.write_bytes(zip_bytes({member: flows_text(rows, header).encode()}))
    return path


def _config(folder: Path, flows: str, gate: float | None = None) -> Path:
    path = folder / f"{Path(flows).stem}.toml"
    path.write_text(
        "[inputs]\n"
        'communes = "COMMUNE.shp"\n'
        'epci_composition = "epci_au_01-01-2025.zip"\n'
        f'flows = "{flows}"\n'
        "geography = 2025\n"
        + (f"max_unmatched_share = {gate}\n" if gate is not None else "")
        + "\n[territories]\ncrown_depth = 2\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Communes and INSEE's zipped EPCI composition of 2025, and both flows files."""
    write_communes(tmp_path / "COMMUNE.shp")
    xlsx = write_composition_xlsx(tmp_path / "EPCI_au_01-01-2025.xlsx")
    (tmp_path / "epci_au_01-01-2025.zip").write_bytes(
        zip_bytes({xlsx.name: xlsx.read_bytes()})
    )
    xlsx.unlink()
    _flows_zip(tmp_path / "flux-rp2022.zip", GOOD_ROWS, 2022)
    _flows_zip(tmp_path / "flux-rp2023-geo2026.zip", CODED_2026_ROWS, 2023)
    return tmp_path


def _runs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name[0].isdigit())


def test_flows_in_another_geography_fail_at_the_gate(project, capsys):
    out = project / "out"
    good = _config(project, "flux-rp2022.zip")
    assert main(["run", "--config", str(good), "--output", str(out), "-q"]) == 0
    latest = (out / "latest").readlink()
    before = _files(out / "latest")
    capsys.readouterr()

    wrong = _config(project, "flux-rp2023-geo2026.zip")
    assert main(["run", "--config", str(wrong), "--output", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("observatory run failed at stage 'flows' (source flows): ")
    share = f"{UNMATCHED / TOTAL:.2%}"
    assert re.search(
        r"flux-rp2023-geo2026\.zip: "
        + re.escape(f"{share} of the workers (1,710 of 44,710)")
        + r" live or work in a commune that matches no EPCI of the composition "
        r"\(geography 2025\), above \[inputs\] max_unmatched_share = 0\.50%; "
        r"largest unmatched codes \(workers\): 01451 \(1,360\), 38567 \(350\); "
        r"the flows \(RP 2023\) and the EPCI composition are probably in different "
        r"geographies: "
        r"RP N is published in the geography of 1 January N\+3; give a "
        r"commune_passage or the composition of that year",
        line,
    ), line
    assert "99140" not in line  # abroad is not unmatched
    assert _runs(out) == [str(latest)]  # nothing published
    assert (out / "latest").readlink() == latest
    assert _files(out / "latest") == before


def test_below_the_gate_the_run_publishes_and_lists_them(project, capsys):
    out = project / "out"
    config = _config(project, "flux-rp2023-geo2026.zip", gate=0.05)
    assert main(["run", "--config", str(config), "--output", str(out)]) == 0
    summary = capsys.readouterr().out
    assert re.search(
        r"^Warning: flows: 3\.82% of the workers \(1,710\) live or work in a commune "
        r"matching no EPCI .*; largest unmatched codes \(workers\): 01451 \(1,360\), "
        r"38567 \(350\)$",
        summary,
        re.MULTILINE,
    ), summary
    manifest = json.loads((out / "latest" / "manifest.json").read_text("utf-8"))
    flows = manifest["flows"]
    assert flows["unmatched_largest"] == {"01451": 1360.0, "38567": 350.0}
    assert flows["unmatched_workers"] == UNMATCHED
    assert flows["unmatched_share"] == pytest.approx(UNMATCHED / TOTAL)
    # the keys the manifest had before the gate stay
    assert flows["unmatched_origin_codes"] == {"01451": 1300.0, "38567": 350.0}
    assert flows["unmatched_destination_codes"] == {"01451": 460.0}
    assert manifest["flows_vintage"] == 2023
    # Names, not counts: the manifest's warning lists the codes with their workers.
    (warning,) = [w for w in manifest["warnings"] if "match no EPCI" in w]
    assert warning == (
        f"{project / 'flux-rp2023-geo2026.zip'}: 2 origin commune code(s) match no "
        "EPCI (1,650 workers kept as UNMATCHED): 01451 (1,300), 38567 (350); "
        "1 destination commune code(s) match no EPCI (460 workers kept as "
        "UNMATCHED): 01451 (460)"
    )
    assert f"Warning: {warning}" in summary


def test_the_warning_lists_the_ten_largest_codes_of_each_vintage():
    codes = {f"01{900 + i}": float(100 - i) for i in range(12)}
    report = {
        "unmatched_origin_codes": codes,
        "unmatched_origin_workers": sum(codes.values()),
        "unmatched_destination_codes": {},
        "unmatched_destination_workers": 0.0,
    }
    warning = unmatched_warning("flows_previous", report, None)
    assert warning.startswith(
        "flows_previous: 12 origin commune code(s) match no EPCI (1,134 workers "
        "kept as UNMATCHED): 01900 (100), 01901 (99), "
    )
    assert warning.endswith("01909 (91) and 2 more")
    assert "01910" not in warning
    report["unmatched_origin_codes"] = {}
    assert unmatched_warning("flows", report, None) == ""


def test_maxey_sur_vaise_is_flagged_in_rp_2023():
    """INSEE flags 55328 in RP 2023 (reported second-hand: evidence.md section 6)."""
    flows = CommuneFlows(
        codes=pa.array(["55328", "55029", COMMUNE_ROWS[0][0]]),
        origin=np.array([0, 1, 2], dtype=np.int32),
        destination=np.array([1, 0, 2], dtype=np.int32),
        workers=np.array([12.0, 3.0, 100.0]),
        vintage=2023,
        flow_column="NBFLUX_C23_ACTOCC15P",
        member=None,
    )
    (warning,) = flagged_communes(flows, 2023, Path("flux.zip"))
    assert warning.startswith("flux.zip: Maxey-sur-Vaise (55328) carries 15 workers")
    assert "uncorrected workplace-coding anomaly" in warning
    assert "second-hand" in warning
    assert flagged_communes(flows, 2022, Path("flux.zip")) == []
    # 55328 in the book, on no row: no warning.
    last = dataclasses.replace(
        flows, origin=flows.origin[2:], destination=flows.destination[2:],
        workers=flows.workers[2:],
    )  # fmt: skip
    assert flagged_communes(last, 2023, Path("flux.zip")) == []
