"""Typed configuration: paths relative to the file, unknown keys refused."""

import pytest

from observatory.config import configs_dir, load_classification, load_config
from observatory.core.errors import ConfigError


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = (
    '[inputs]\ncommunes = "a.shp"\nepci_composition = "b.xlsx"\nflows = "sub/c.zip"\n'
)


def test_paths_are_relative_to_the_config(tmp_path):
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.inputs.flows == tmp_path / "sub" / "c.zip"
    assert config.territories.crown_depth == 2
    assert config.classification.rules[0].class_code == "integree"
    assert len(config.sha256) == 64


def test_shipped_configs_load():
    for name in ("demo.toml",):
        config = load_config(configs_dir() / name)
        assert config.run.synthetic_flows is True
        assert config.inputs.flows.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            MINIMAL + "[territories]\ndepth = 3\n",
            r"\[territories\] unknown key\(s\) \['depth'\]",
        ),
        (
            MINIMAL + '[compute]\nscheduler = "gpu"\n',
            r"\[compute\] scheduler: scheduler must be one of .*got 'gpu'",
        ),
        (
            '[inputs]\ncommunes = "a.shp"\n',
            r"\[inputs\] missing key\(s\) \['epci_composition', 'flows'\]",
        ),
        (MINIMAL + "[territories]\ncrown_depth = 0\n", "crown_depth must be >= 1"),
        (MINIMAL + "[territories]\ncrown_depth = '2'\n", "crown_depth must be int"),
        (MINIMAL + "[territories]\nmetropoles = ['2429']\n", "9-digit SIREN"),
        (
            MINIMAL + "[territories]\ncontiguity_tolerance_m = 300\n",
            "must exceed twice",
        ),
        (MINIMAL + "[reliability]\nusable_min = 600\n", "usable_min <= reliable_min"),
        (MINIMAL + "[colours]\n", r"unknown table\(s\) \['colours'\]"),
        ("[inputs\n", "not valid TOML"),
        (MINIMAL + "[output]\nkeep_runs = 0\n", r"\[output\] keep_runs must be >= 1"),
        (
            MINIMAL + "[output]\nreport_processes = 0\n",
            r"\[output\] report_processes must be >= 1, got 0",
        ),
        (
            MINIMAL + "[output]\nlatest = 'hardlink'\n",
            r"\[output\] latest must be one of",
        ),
    ],
    ids=[
        "unknown-key",
        "scheduler",
        "missing-key",
        "depth-0",
        "depth-str",
        "bad-siren",
        "tolerance",
        "reliability",
        "unknown-table",
        "toml-syntax",
        "keep-runs-0",
        "report-processes-0",
        "latest-mode",
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(_write(tmp_path, text))
    assert "c.toml" in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("rules", "match"),
    [
        (
            '[[rules]]\nclass = "a"\nwhen = { dependence_share = 0.2 }\n',
            "must have no 'when'",
        ),
        (
            '[[rules]]\nclass = "a"\nwhen = { dependance = 0.2 }\n[[rules]]\nclass = "b"\n',
            "unknown indicator 'dependance'",
        ),
        (
            '[[rules]]\nclass = "a"\nwhen = { dependence_share = 40 }\n[[rules]]\nclass = "b"\n',
            r"must lie in \[0, 1\]",
        ),
        ('[[rules]]\nclass = "a"\n[[rules]]\nclass = "a"\n', "must be unique"),
    ],
    ids=["no-fallback", "typo", "percent", "duplicate"],
)
def test_bad_classification(tmp_path, rules, match):
    with pytest.raises(ConfigError, match=match):
        load_classification(_write(tmp_path, rules, "rules.toml"))


def test_custom_classification_file(tmp_path):
    _write(
        tmp_path,
        '[[rules]]\nclass = "forte"\nwhen = { dependence_share = 0.3 }\n[[rules]]\nclass = "faible"\n',
        "rules.toml",
    )
    config = load_config(
        _write(tmp_path, MINIMAL + '[classification]\nfile = "rules.toml"\n')
    )
    assert [r.class_code for r in config.classification.rules] == ["forte", "faible"]
    assert config.classification.rules[0].describe() == "dependence_share >= 0.3"


def test_shipped_catalogue_and_france_config():
    from observatory.sources.catalogue import load_catalogue
    from observatory.sources.inputs import load_config_catalogue, source_refs

    catalogue = load_catalogue(configs_dir() / "sources.toml")
    assert {
        "insee_base_flux_rp2023",
        "insee_epci_2025",
        "insee_cog_mvt_commune_2026",
    } <= set(catalogue)
    # OSO 2018: the one URL public code quotes is http (docs/sources-evidence.md,
    # section 10); its download is checked by its TIFF signature.
    plain = {s.id for s in catalogue.values() if not s.url.startswith("https://")}
    assert plain <= {"theia_oso_2018"}
    config = load_config(configs_dir() / "france.toml")
    assert set(load_config_catalogue(config)) == set(catalogue)
    refs = source_refs(config)
    assert refs["flows"].source == "insee_base_flux_rp2023"
    years = {
        role: catalogue[ref.source].vintage
        for role, ref in refs.items()
        if role.startswith("flows")
    }
    assert years == {"flows": 2023, "flows_previous": 2018}  # five years apart
    # RP 2023 is published in the geography of 1 January 2026 (N+3), not 2025.
    assert (
        catalogue[refs["epci_composition"].source].geography
        == catalogue[refs["flows"].source].geography
        == catalogue[refs["communes"].source].geography
        == config.inputs.geography
        == 2026
    )


def test_unknown_source_id_is_named(tmp_path):
    from observatory.sources.inputs import load_config_catalogue

    path = _write(
        tmp_path,
        MINIMAL.replace(
            'flows = "sub/c.zip"', 'flows = { source = "insee_flux_2099" }'
        ),
    )
    with pytest.raises(
        ConfigError,
        match=r"\[inputs\] flows: source 'insee_flux_2099' is not in the catalogue",
    ):
        load_config_catalogue(load_config(path))


def test_shipped_overseas_config_reads_each_territory_from_its_archive():
    from observatory.sources.inputs import configured_inputs, load_config_catalogue

    config = load_config(configs_dir() / "overseas.toml")
    catalogue = load_config_catalogue(config)
    communes = {
        key: ref.source
        for key, (role, ref) in configured_inputs(config).items()
        if role == "communes"
    }
    assert communes == {
        f"communes[{i}]": f"ign_admin_express_cog_carto_2025_{code}"
        for i, code in enumerate(("glp", "mtq", "guf", "reu", "myt"), 1)
    }
    assert all(catalogue[s].format == "7z" for s in communes.values())
    # each unconfirmed archive falls back on the confirmed France-wide one
    assert {
        ref.fallback
        for key, (role, ref) in configured_inputs(config).items()
        if role == "communes"
    } == {"ign_admin_express_cog_carto_2025_fra"}
    assert len(config.territories.poles) == 5
    assert config.territories.metropoles == ()


def test_local_path_with_its_geography(tmp_path):
    text = MINIMAL.replace(
        'flows = "sub/c.zip"',
        'flows = { path = "sub/c.zip", geography = 2020 }\n'
        'communes = [{ path = "a.shp", geography = 2025 }, "b.shp"]',
    ).replace('communes = "a.shp"\n', "")
    config = load_config(_write(tmp_path, text + "geography = 2025\n"))
    assert config.inputs.flows == tmp_path / "sub" / "c.zip"
    assert config.inputs.communes == (tmp_path / "a.shp", tmp_path / "b.shp")
    assert config.inputs.geographies == {"flows": 2020, "communes[1]": 2025}
    assert config.raw["inputs"]["flows"] == {"path": "sub/c.zip", "geography": 2020}


@pytest.mark.parametrize(
    "value",
    [
        '{ path = "c.zip" }',
        '{ path = "c.zip", geography = "2025" }',
        '{ path = "c.zip", geography = 25 }',
        '{ path = "c.zip", geography = 2025, vintage = 2022 }',
    ],
    ids=["no-geography", "string", "not-a-year", "unknown-key"],
)
def test_bad_local_path_with_geography(tmp_path, value):
    text = MINIMAL.replace('flows = "sub/c.zip"', f"flows = {value}")
    with pytest.raises(
        ConfigError,
        match=r"c\.toml: \[inputs\] flows: a local input with its geography is "
        r'\{ path = "<file>", geography = <year',
    ):
        load_config(_write(tmp_path, text))


def test_geographies_is_no_toml_key(tmp_path):
    with pytest.raises(
        ConfigError, match=r"\[inputs\] unknown key\(s\) \['geographies'\]"
    ):
        load_config(_write(tmp_path, MINIMAL + "geographies = {}\n"))


def test_source_reference_with_fallback(tmp_path):
    text = MINIMAL.replace(
        'flows = "sub/c.zip"',
        'flows = { source = "a", member = "x.csv", fallback = "b" }',
    )
    ref = load_config(_write(tmp_path, text)).inputs.flows
    assert (ref.source, ref.member, ref.fallback) == ("a", "x.csv", "b")
    bad = MINIMAL.replace(
        'flows = "sub/c.zip"', 'flows = { source = "a", fallbak = "b" }'
    )
    with pytest.raises(ConfigError, match=r"\[inputs\] flows: a source reference is"):
        load_config(_write(tmp_path, bad))
