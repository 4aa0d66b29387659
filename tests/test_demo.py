"""The embedded demo shows every feature, on inputs labelled SYNTHETIC.

The demo ships a SYNTHETIC previous census (RP 2017, in the geography of 2025)
and a SYNTHETIC FD_MOBPRO (RP 2022) consistent with its RP 2022 base flux
(``scripts/make_demo.py``, ``data/demo/README.md``), so that no column family of
``epci_indicators`` is empty: previous vintage, change, modal shares.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from observatory.cli import main
from observatory.config import default_config_path, load_config
from observatory.readers.base_flux import read_base_flux
from observatory.readers.fd_mobpro.coding import trans_coding

#: Modal shares of the flows to and from the métropole, per mode.
SHARE_PREFIXES = ("to_metropole", "from_metropole")
#: The demo's census vintages.
VINTAGE, PREVIOUS_VINTAGE = 2022, 2017


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the shipped demo once; return its ``latest`` folder."""
    root = tmp_path_factory.mktemp("demo") / "outputs"
    assert main(["run", "--output", str(root), "-q"]) == 0
    return root / "latest"


@pytest.fixture(scope="module")
def epci(demo_run: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(demo_run / "epci_indicators.parquet")


@pytest.fixture(scope="module")
def manifest(demo_run: Path) -> dict:
    return json.loads((demo_run / "manifest.json").read_text(encoding="utf-8"))


def demo_inputs() -> dict[str, Path]:
    """Return the demo's input files by role, as its config names them."""
    inputs = load_config(default_config_path()).inputs
    return {
        "flows": Path(inputs.flows),
        "flows_previous": Path(inputs.flows_previous),
        "fd_mobpro": Path(inputs.fd_mobpro),
    }


def test_config_names_synthetic_previous_census_and_detailed_file():
    config = load_config(default_config_path())
    assert config.run.synthetic_flows is True
    assert config.inputs.fd_vintage == VINTAGE
    for role, path in demo_inputs().items():
        assert path.is_file(), role
        assert "synthetic" in path.name, role
    assert config.inputs.geographies.get("flows_previous") == 2025


def test_every_column_family_is_filled(epci):
    assert len(epci) > 40
    empty = [c for c in epci.columns if epci[c].isna().all()]
    assert empty == []
    assert set(epci["vintage"]) == {VINTAGE}
    assert set(epci["previous_vintage"]) == {PREVIOUS_VINTAGE}
    previous = [c for c in epci.columns if c.endswith("_previous")]
    change = [c for c in epci.columns if c.endswith("_change")]
    shares = [
        c for c in epci.columns if c.startswith(SHARE_PREFIXES) and c.endswith("_share")
    ]
    assert len(previous) >= 7
    assert len(change) == len(previous)
    assert len(shares) == 14
    # Every EPCI of every system has both vintages: values everywhere but where
    # they cannot exist (the métropole's own flows to itself).
    crowns = epci[epci["crown"] > 0]
    assert crowns[previous + change].notna().all().all()
    assert epci[epci["crown"] == 0]["dependence_share_previous"].isna().all()
    assert (epci["employed_residents_change"] != 0).all()


@pytest.mark.parametrize("direction", SHARE_PREFIXES)
def test_modal_shares_exist_wherever_there_are_workers(epci, direction):
    shares = epci[
        [c for c in epci.columns if c.startswith(direction) and c.endswith("_share")]
    ]
    flow = epci[f"flow_{direction}"]
    with_workers = (epci["crown"] > 0) & (flow > 0)
    # A share of no worker, or of the métropole's flows to itself, cannot exist.
    assert shares[with_workers].notna().all().all()
    assert shares[~with_workers].isna().all().all()
    totals = shares[with_workers].sum(axis=1)
    np.testing.assert_allclose(totals, 1.0, atol=1e-9)
    # RP 2022 codes bicycles and motorised two-wheelers apart: the single
    # two-wheeler class of RP <= 2016 is 0.
    assert (shares[with_workers][f"{direction}_two_wheel_share"] == 0).all()
    assert (shares[with_workers][f"{direction}_car_share"] > 0.3).all()
    if direction == "to_metropole":
        assert shares[with_workers][f"{direction}_public_transport_share"].gt(0).all()


def test_detailed_file_agrees_with_the_base_flux(manifest):
    fd = manifest["fd_mobpro"]
    check = fd["base_flux_check"]
    assert check["consistent"] is True
    assert check["pairs_above_tolerance"] == 0
    assert check["pairs_fd"] == check["pairs_base"] > 100_000
    assert check["pairs_only_in_fd"] == check["pairs_only_in_base"] == 0
    assert check["max_abs_gap"] < 1e-6
    assert fd["read"]["vintage"] == VINTAGE
    assert not [w for w in manifest["warnings"] if "detailed file" in w]


def test_manifest_labels_every_census_input_synthetic(manifest):
    assert manifest["synthetic_flows"] is True
    assert manifest["flows_vintage"] == VINTAGE
    assert manifest["previous_vintage"] == PREVIOUS_VINTAGE
    roles = {record["role"]: record for record in manifest["inputs"]}
    assert roles["flows"]["synthetic"] is True
    assert roles["flows"]["vintage"] == VINTAGE
    assert roles["flows_previous"]["synthetic"] is True
    assert roles["flows_previous"]["vintage"] == PREVIOUS_VINTAGE
    for role in ("flows", "flows_previous", "fd_mobpro"):
        assert "synthetic" in Path(roles[role]["path"]).name
        assert roles[role]["geography"] == 2025
    description = manifest["config"]["content"]["run"]["description"]
    assert "SYNTHETIC" in description
    assert "FD_MOBPRO" in description


def test_detailed_file_is_in_insee_parquet_layout_and_sums_to_the_base_flux():
    paths = demo_inputs()
    table = pq.read_table(paths["fd_mobpro"])
    for name in ("COMMUNE", "ARM", "DCLT", "TRANS"):
        assert table.schema.field(name).type == pa.string(), name
    assert table.schema.field("IPONDI").type == pa.float64()
    frame = table.to_pandas()
    assert set(frame["TRANS"]) <= set(trans_coding(VINTAGE))
    assert (frame["ARM"] == "ZZZZZ").all()  # no Paris, Lyon or Marseille resident
    assert (frame["IPONDI"] > 0).all()
    summed = frame.groupby(["COMMUNE", "DCLT"])["IPONDI"].sum()
    base = read_base_flux(paths["flows"]).table
    base = base.set_index(["origin_commune", "destination_commune"])["workers"]
    assert len(summed) == len(base)
    gap = summed.reindex(base.index) - base
    assert gap.notna().all()
    assert gap.abs().max() < 1e-6


def test_previous_census_is_another_vintage_in_the_same_geography():
    paths = demo_inputs()
    current = read_base_flux(paths["flows"])
    previous = read_base_flux(paths["flows_previous"])
    assert (current.vintage, previous.vintage) == (VINTAGE, PREVIOUS_VINTAGE)
    assert previous.flow_column == "NBFLUX_C17_ACTOCC15P"
    origins = set(previous.table["origin_commune"])
    assert origins == set(current.table["origin_commune"])
    ratio = previous.table["workers"].sum() / current.table["workers"].sum()
    assert 0.9 < ratio < 1.0  # fewer inhabitants and a lower employment rate


def test_readme_says_every_new_file_is_synthetic():
    paths = demo_inputs()
    readme = (paths["flows"].parent / "README.md").read_text(encoding="utf-8")
    for path in paths.values():
        assert f"`{path.name}`" in readme
        assert f"{path.stat().st_size:,}" in readme
    assert "Synthetic previous census RP 2017 (NOT INSEE data)" in readme
    assert "Synthetic detailed file FD_MOBPRO RP 2022 (NOT INSEE data)" in readme
    assert "commune_passage" in readme
    total = sum(p.stat().st_size for p in paths["flows"].parent.iterdir())
    assert total <= 5_000_000
