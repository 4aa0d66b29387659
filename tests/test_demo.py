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
from observatory.layers.land_schemas import EPCI_LAND_FIELDS
from observatory.readers.base_flux import read_base_flux
from observatory.readers.fd_mobpro.coding import trans_coding

#: Modal shares of the flows to and from the métropole, per mode.
SHARE_PREFIXES = ("to_metropole", "from_metropole")
#: The demo's census vintages.
VINTAGE, PREVIOUS_VINTAGE = 2022, 2017
#: The land columns (tests/test_land_run.py checks them).
LAND_COLUMNS = {f.name for f in EPCI_LAND_FIELDS}


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


def demo_config_text() -> str:
    """Return the demo's config with its paths made absolute (to copy it elsewhere)."""
    source = default_config_path()
    text = source.read_text(encoding="utf-8")
    text = text.replace('"../data/', f'"{source.parent.parent / "data"}/')
    text = text.replace('= "land/', f'= "{source.parent / "land"}/')
    return text.replace(
        'file = "classification.toml"',
        f'file = "{source.parent / "classification.toml"}"',
    )


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
    assert empty == ["wetland_share"]  # OSO has no wetland class: unknown, not 0
    assert set(epci["vintage"]) == {VINTAGE}
    assert set(epci["previous_vintage"]) == {PREVIOUS_VINTAGE}
    census = [c for c in epci.columns if c not in LAND_COLUMNS]  # issue 14's apart
    previous = [c for c in census if c.endswith("_previous")]
    change = [c for c in census if c.endswith("_change")]
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
    # Every EPCI but the métropole: the crowns' and the hidden crown's (crown null).
    with_workers = (epci["epci_code"] != epci["metropole_code"]) & (flow > 0)
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


# --------------------------------------------------------------------- issue 15
#: The demo's thresholds of the flow rule (configs/demo.toml: the synthetic
#: gravity model lets no EPCI beyond the crowns reach INSEE's 15 %).
HIDDEN_MIN, NOMINAL_MAX = 0.01, 0.005


def test_hidden_crown_rows_are_flagged_with_an_empty_crown(epci, manifest):
    config = load_config(default_config_path())
    assert config.territories.crown_rule == "contiguity"
    assert (config.territories.hidden_crown_min_share, NOMINAL_MAX) == (
        HIDDEN_MIN,
        config.territories.nominal_member_max_share,
    )
    hidden = epci[epci["hidden_crown"]]
    assert len(hidden) >= 2
    assert (hidden["placed_by"] == "flows").all()
    assert hidden["crown"].isna().all()
    assert (hidden["dependence_share"] >= HIDDEN_MIN).all()
    assert not hidden["in_system"].any()  # the rule is contiguity
    assert hidden.geometry.notna().all()
    assert not hidden.geometry.is_empty.any()
    # They are classified and compared like the crowns' EPCI.
    assert hidden["epci_class"].notna().all()
    assert (
        hidden[["dependence_share_previous", "employed_residents_change"]]
        .notna()
        .all()
        .all()
    )
    crowns = epci[epci["crown"].notna()]
    assert crowns["in_system"].all()
    assert set(crowns["placed_by"]) <= {"metropole", "both", "contiguity"}
    nominal = epci[epci["nominal_member"]]
    assert len(nominal) > 0
    assert (nominal["crown"] > 0).all()
    assert (nominal["dependence_share"] < NOMINAL_MAX).all()
    placed = manifest["flow_systems"]["systems"]
    assert sum(s["hidden_crown"] for s in placed.values()) == len(hidden)
    assert sum(s["nominal_member"] for s in placed.values()) == len(nominal)


def test_dominant_flow_and_aav_columns_are_filled(epci):
    assert epci["dominant_destination_code"].notna().all()
    assert (epci["dominant_destination_code"] != epci["epci_code"]).all()
    assert epci["dominant_share"].between(0, 1).all()
    metropoles = epci[epci["crown"] == 0]
    assert (metropoles["terminal_code"] == metropoles["epci_code"]).all()
    assert (metropoles["node_role"] == "dominant").all()
    assert metropoles["in_metropole_tree"].all()
    # The synthetic AAV: every row knows its métropole's area; shares in [0, 1].
    assert epci["aav_code"].str.fullmatch(r"S\d\d").all()
    assert epci["aav_share"].between(0, 1).all()
    assert np.allclose(
        epci["aav_share"], epci["aav_pole_share"] + epci["aav_crown_share"]
    )
    assert (epci.loc[epci["in_aav"], "aav_share"] >= 0.5).all()
    assert metropoles["in_aav"].all()


def test_dominant_flows_layer_is_geoparquet_in_lambert_93(demo_run, manifest):
    path = demo_run / "dominant_flows.parquet"
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0"
    assert column["encoding"] == "WKB"
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 2154}
    lines = gpd.read_parquet(path)
    assert lines.crs.to_epsg() == 2154
    assert len(lines) > 0
    assert (lines.geom_type == "LineString").all()
    assert (lines["destination_weight"] > lines["origin_weight"]).all()
    assert lines["origin_code"].is_unique  # one dominant flow per EPCI at most
    assert (lines["dominant_weight"] == "jobs").all()
    assert set(lines["vintage"]) == {VINTAGE}
    dominated = manifest["flow_systems"]["dominant_flows"]["dominated"]
    # Every dominated EPCI of the territory but those flowing outside it (Paris).
    assert 0 < len(lines) <= dominated
    assert manifest["rows"]["dominant_flows"] == len(lines)


def test_manifest_records_the_rule_the_weight_and_the_aav(manifest):
    flow_systems = manifest["flow_systems"]
    assert flow_systems["crown_rule"] == "contiguity"
    assert flow_systems["dominant_weight"] == "jobs"
    aav = flow_systems["aav"]
    assert "synthetic" in Path(aav["path"]).name
    assert aav["harmonisation"]["codes_outside_target"] == []
    assert set(aav["metropoles"]) == {"242900314", "243500139", "244400404"}
    roles = {record["role"]: record for record in manifest["inputs"]}
    assert roles["aav"]["geography"] == 2025


def test_metropoles_carry_system_measures_and_overlaps(demo_run):
    metropoles = gpd.read_parquet(demo_run / "metropoles.parquet")
    assert (metropoles["crown_rule"] == "contiguity").all()
    assert metropoles["polycentricity_share"].between(0, 1).all()
    assert metropoles["system_self_containment_share"].between(0, 1).all()
    assert (metropoles["n_epci_contiguity"] == metropoles["n_epci_in_system"]).all()
    for name in ("jaccard_contiguity_flows", "jaccard_contiguity_aav"):
        assert metropoles[name].between(0, 1).all(), name
    assert metropoles["aav_name"].str.startswith("Aire synthétique").all()


def test_aav_files_say_they_are_synthetic():
    config = load_config(default_config_path())
    path = Path(config.inputs.aav)
    assert path.is_file()
    assert "synthetic" in path.name
    assert config.inputs.geographies.get("aav") == 2025
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme
    assert f"{path.stat().st_size:,}" in readme
    demo_readme = (path.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "Synthetic attraction areas (NOT INSEE data)" in demo_readme


def test_crown_rule_both_draws_the_system_with_its_hidden_crown(tmp_path, epci):
    # The demo's config with crown_rule = "both", its paths made absolute.
    text = demo_config_text()
    text = text.replace('crown_rule = "contiguity"', 'crown_rule = "both"')
    config = tmp_path / "both.toml"
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "outputs"
    assert main(["run", "--config", str(config), "--output", str(out), "-q"]) == 0
    run = out / "latest"
    both = gpd.read_parquet(run / "epci_indicators.parquet")
    # The same rows and values as under contiguity; only membership changes.
    assert len(both) == len(epci)
    hidden = both[both["hidden_crown"]]
    assert hidden["in_system"].all()
    lines = gpd.read_parquet(run / "flows.parquet")
    beyond = lines["origin_crown"].isna() | lines["destination_crown"].isna()
    assert set(lines.loc[beyond, "origin_code"]) | set(
        lines.loc[beyond, "destination_code"]
    ) >= set(hidden["epci_code"])
    matrix = pq.read_table(run / "flow_matrix.parquet").to_pandas()
    assert set(hidden["epci_code"]) <= set(matrix["origin_code"])
    metropoles = gpd.read_parquet(run / "metropoles.parquet")
    assert (metropoles["crown_rule"] == "both").all()
    assert (
        metropoles["n_epci_in_system"]
        == metropoles["n_epci_contiguity"] + metropoles["n_epci_hidden_crown"]
    ).all()
