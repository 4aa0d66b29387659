"""The shipped catalogue and configs: one geography, stated with its evidence.

Census N is published in the geography of 1 January N+3 for recent vintages:
every census entry states it (nothing computes it), every entry says who says
so, and every shipped config is in one geography, checked when it loads. The
fetch tests run against a real HTTP server on 127.0.0.1 (pytest-httpserver):
a third-party md5 pin, and a fallback taken when the first source cannot be
fetched (never on a checksum mismatch).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from observatory.config import configs_dir, load_config
from observatory.core.errors import ConfigError, SourceError
from observatory.sources.cache import fetch_source
from observatory.sources.catalogue import Source, load_catalogue
from observatory.sources.inputs import (
    check_geography,
    fetch_config_sources,
    resolve_inputs,
)

SHIPPED = configs_dir() / "sources.toml"
FAST = {"retries": 0, "backoff": 0, "timeout": 5}


def shipped_configs() -> list[Path]:
    return sorted(
        p
        for p in configs_dir().glob("*.toml")
        if p.stem not in ("classification", "sources")
    )


def _write(folder: Path, text: str, name: str = "c.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------- shipped
def test_census_entries_state_their_geography_n_plus_3():
    catalogue = load_catalogue(SHIPPED)
    census = {s.id: s for s in catalogue.values() if s.vintage is not None}
    assert {"insee_base_flux_rp2023", "insee_base_flux_rp2022"} <= set(census)
    for source in census.values():
        if source.vintage >= 2017:
            assert source.geography == source.vintage + 3, source.id
    # written in the file, not computed: every census table has the key
    raw = SHIPPED.read_text(encoding="utf-8")
    # (land rasters, issue 14, have no commune codes and so no geography)
    assert raw.count("\ngeography = ") == sum(
        s.geography is not None for s in catalogue.values()
    )


def test_every_entry_says_who_says_so():
    catalogue = load_catalogue(SHIPPED)
    for source in catalogue.values():
        assert len(source.evidence) > 20, source.id
        assert source.verified is False, source.id  # no download confirmed any yet
        if source.md5 is not None:
            assert source.md5_from, source.id
    assert catalogue["insee_fd_mobpro_rp2021"].md5 == "8505b978590a1f0ec97d5b28540b8530"


def test_new_editions_are_in_the_catalogue():
    catalogue = load_catalogue(SHIPPED)
    expected = {
        "insee_base_flux_rp2022": 2025,
        "insee_base_flux_rp2017": 2020,
        "insee_fd_mobpro_rp2023": 2026,
        "insee_epci_2026": 2026,
        "insee_cog_mvt_commune_2025": 2025,
        "insee_cog_mvt_commune_2024": 2024,
        "ign_admin_express_cog_carto_2026_fra": 2026,
        "ign_admin_express_cog_carto_2025_fra": 2025,
    }
    assert {k: catalogue[k].geography for k in expected} == expected
    assert catalogue["insee_epci_2026"].members == ("EPCI_au_01-01-2026.xlsx",)
    assert catalogue["insee_fd_mobpro_rp2023"].format == "parquet"
    gpkg = catalogue["ign_admin_express_cog_carto_2026_fra"]
    assert "_4-0__GPKG_" in gpkg.url
    assert gpkg.members[0].endswith(".gpkg")
    assert catalogue["insee_fd_mobpro_rp2020"].url.endswith("/RP2020_mobpro_csv.zip")


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_config_is_in_one_geography(path):
    from observatory.sources.inputs import (
        input_geographies,
        load_config_catalogue,
        source_refs,
    )

    config = load_config(path)
    checked = check_geography(config)
    target = checked.inputs.geography
    assert target is not None
    catalogue = load_config_catalogue(config) if source_refs(config) else {}
    geographies = input_geographies(checked, catalogue)
    for key in ("communes", "epci_composition", "communes[1]"):
        assert geographies.get(key, target) == target, key
    passage = geographies.get("commune_passage")
    for key in ("flows", "flows_previous", "fd_mobpro"):
        year = geographies.get(key, target)
        assert year == target or (passage is not None and year < target <= passage)


def test_national_configs():
    france = check_geography(load_config(configs_dir() / "france.toml"))
    rp2022 = check_geography(load_config(configs_dir() / "france-rp2022.toml"))
    assert (france.inputs.geography, rp2022.inputs.geography) == (2026, 2025)
    assert france.inputs.epci_composition.source == "insee_epci_2026"
    assert france.inputs.commune_passage.source == "insee_cog_mvt_commune_2026"
    assert rp2022.inputs.flows.source == "insee_base_flux_rp2022"
    assert rp2022.inputs.flows_previous.source == "insee_base_flux_rp2017"
    assert rp2022.inputs.commune_passage.source == "insee_cog_mvt_commune_2025"


# --------------------------------------------------------------------- the check
SHIPPED_SOURCES = f'[sources]\ncatalogue = "{SHIPPED.as_posix()}"\n'


def _config(folder: Path, inputs: str, geography: str = "") -> Path:
    return _write(folder, SHIPPED_SOURCES + "[inputs]\n" + inputs + geography)


RP2023_WITH_EPCI_2025 = (
    'communes = { source = "ign_admin_express_cog_carto_2025_fxx", member = "COMMUNE.shp" }\n'
    'epci_composition = { source = "insee_epci_2025" }\n'
    'flows = { source = "insee_base_flux_rp2023" }\n'
)


def test_newer_flows_than_the_composition_fail_naming_both_years(tmp_path):
    path = _config(tmp_path, RP2023_WITH_EPCI_2025)
    with pytest.raises(ConfigError) as info:
        check_geography(load_config(path))
    message = str(info.value)
    assert message.startswith(
        f"{path}: [inputs] flows (source insee_base_flux_rp2023, RP 2023)"
    )
    assert "geography of 2026 but the EPCI composition is in that of 2025" in message
    assert "take flows published in the geography of 2025" in message
    assert info.value.path == path
    # a passage cannot take codes back: still refused with one
    with_passage = RP2023_WITH_EPCI_2025 + (
        'commune_passage = { source = "insee_cog_mvt_commune_2026" }\n'
    )
    with pytest.raises(ConfigError, match="cannot take codes back"):
        check_geography(load_config(_config(tmp_path, with_passage)))


def test_older_flows_need_a_passage_reaching_the_target(tmp_path):
    inputs = (
        'communes = "COMMUNE.shp"\n'
        'epci_composition = { source = "insee_epci_2026" }\n'
        'flows = { source = "insee_base_flux_rp2023" }\n'
        'flows_previous = { source = "insee_base_flux_rp2018" }\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"\[inputs\] flows_previous \(source insee_base_flux_rp2018, RP 2018\) is "
        r"in the geography of 2021 but the EPCI composition is in that of 2026: add "
        r'commune_passage = \{ source = "insee_cog_mvt_commune_2026" \}',
    ):
        check_geography(load_config(_config(tmp_path, inputs)))
    old = inputs + 'commune_passage = { source = "insee_cog_mvt_commune_2025" }\n'
    with pytest.raises(
        ConfigError,
        match=r"commune_passage \(source insee_cog_mvt_commune_2025\) stops at the "
        r"geography of 2025: take INSEE's COG events of 2026 or later",
    ):
        check_geography(load_config(_config(tmp_path, old)))
    good = inputs + 'commune_passage = { source = "insee_cog_mvt_commune_2026" }\n'
    config = check_geography(load_config(_config(tmp_path, good)))
    # [inputs] geography unset: the composition's
    assert config.inputs.geography == 2026


def test_local_path_geographies(tmp_path):
    inputs = (
        'communes = "COMMUNE.shp"\n'
        'epci_composition = { path = "EPCI.xlsx", geography = 2025 }\n'
        'flows = { path = "flux.zip", geography = 2020 }\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"\[inputs\] flows \(flux\.zip\) is in the geography of 2020 but the "
        r"EPCI composition is in that of 2025: add commune_passage",
    ):
        check_geography(load_config(_config(tmp_path, inputs)))
    # a bare passage path is in [inputs] geography, here the composition's
    passage = inputs + 'commune_passage = "v_mvt_commune_2025.csv"\n'
    assert (
        check_geography(load_config(_config(tmp_path, passage))).inputs.geography
        == 2025
    )


def test_stated_geography_must_be_the_compositions(tmp_path):
    path = _config(tmp_path, RP2023_WITH_EPCI_2025, "geography = 2026\n")
    with pytest.raises(
        ConfigError,
        match=r"\[inputs\] geography = 2026 but \[inputs\] epci_composition \(source "
        r"insee_epci_2025\) is in the geography of 2025",
    ):
        check_geography(load_config(path))


def test_communes_in_another_geography(tmp_path):
    inputs = (
        'communes = { source = "ign_admin_express_cog_carto_2025_fxx" }\n'
        'epci_composition = { source = "insee_epci_2026" }\n'
        'flows = { source = "insee_base_flux_rp2023" }\n'
    )
    with pytest.raises(ConfigError, match="boundaries are never harmonised"):
        check_geography(load_config(_config(tmp_path, inputs)))


def test_fallback_in_another_geography(tmp_path):
    inputs = (
        'communes = { source = "ign_admin_express_cog_carto_2025_fxx", '
        'fallback = "ign_admin_express_cog_carto_2026_fra" }\n'
        'epci_composition = { source = "insee_epci_2025" }\n'
        'flows = { source = "insee_base_flux_rp2022" }\n'
    )
    with pytest.raises(ConfigError, match="a fallback must be in the same geography"):
        check_geography(load_config(_config(tmp_path, inputs)))
    unknown = inputs.replace("ign_admin_express_cog_carto_2026_fra", "nowhere")
    with pytest.raises(ConfigError, match=r"\[inputs\] communes: fallback 'nowhere'"):
        check_geography(load_config(_config(tmp_path, unknown)))


def test_cli_refuses_a_mixed_config_before_any_request(
    tmp_path, local_http_server, no_proxy, capsys
):
    from observatory.cli import main

    local_http_server.clear()
    path = _config(tmp_path, RP2023_WITH_EPCI_2025)
    for command in ("fetch", "status", "run"):
        assert main([command, "--config", str(path), "-q"]) == 1, command
    assert local_http_server.log == []
    err = capsys.readouterr().err
    assert "observatory run failed at stage 'config'" in err
    assert (
        err.count("geography of 2026 but the EPCI composition is in that of 2025") == 3
    )


# --------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("vintage = 2023", r"has 'vintage' = 2023 but no 'geography'"),
        ("geography = 26", r"'geography' must be a year"),
        ("sha256_by = 'x'", r"unknown key\(s\) \['sha256_by'\]"),
        ('md5 = "' + "a" * 32 + '"', r"'md5' needs 'md5_from'"),
        ('md5 = "abc"\nmd5_from = "x"', r"'md5' must be 32 hexadecimal"),
        ('verified = "yes"', r"'verified' must be true or false"),
        ("evidence = 3", r"'evidence' must be a string"),
    ],
    ids=["vintage", "year", "unknown", "md5-from", "md5-hex", "verified", "evidence"],
)
def test_catalogue_refuses_naming_the_entry(tmp_path, entry, match):
    path = _write(
        tmp_path,
        f'[sources.flux]\nurl = "https://x.fr/a.zip"\nformat = "zip"\n{entry}\n',
        "sources.toml",
    )
    with pytest.raises(ConfigError, match=r"sources\.toml: \[sources\.flux\] " + match):
        load_catalogue(path)


# --------------------------------------------------------------------- downloads
@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """The download tests talk to 127.0.0.1 only."""


BODY = b"MOD,DATE_EFF\n32,2022-01-01\n"


def _source(server: HTTPServer, name: str, **fields) -> Source:
    return Source(
        id=name,
        title=name,
        publisher="INSEE",
        url=server.url_for(f"/{name}.csv"),
        format="csv",
        **fields,
    )


def test_md5_pin_is_verified(server, tmp_path):
    server.expect_request("/good.csv").respond_with_data(BODY, content_type="text/csv")
    server.expect_request("/bad.csv").respond_with_data(BODY, content_type="text/csv")
    md5 = hashlib.md5(BODY).hexdigest()
    cache = tmp_path / "cache"
    good = _source(server, "good", md5=md5, md5_from="a third party")
    assert fetch_source(good, cache, **FAST).path.read_bytes() == BODY
    bad = _source(server, "bad", md5="0" * 32, md5_from="a third party")
    with pytest.raises(
        SourceError,
        match=r"^bad: MD5 mismatch for .*: expected 0{32} \(third-party pin, measured "
        rf"by a third party\), got {md5}; deleted the download",
    ):
        fetch_source(bad, cache, **FAST)
    assert sorted(p.name for p in (cache / "bad").iterdir()) == []
    # the cached copy of a good file is checked offline too
    changed = _source(server, "good", md5="1" * 32, md5_from="someone")
    with pytest.raises(SourceError, match=r"has md5 .* but the catalogue pins 1{32}"):
        fetch_source(changed, cache, offline=True)


def _catalogue_config(
    server: HTTPServer, folder: Path, entries: dict, inputs: str
) -> Path:
    lines = []
    for name, fields in entries.items():
        lines.append(f"[sources.{name}]")
        fields = {
            "url": server.url_for(f"/{name}.csv"),
            "format": "csv",
            "geography": 2025,
            **fields,
        }
        lines += [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    _write(folder, "\n".join(lines) + "\n", "catalogue.toml")
    return _write(
        folder,
        '[sources]\ncatalogue = "catalogue.toml"\ncache_dir = "cache"\n'
        '[inputs]\nepci_composition = "EPCI.xlsx"\ngeography = 2025\n' + inputs,
    )


def test_fallback_used_when_the_source_404s(server, tmp_path, caplog):
    server.expect_request("/primary.csv").respond_with_data("gone", status=404)
    server.expect_request("/spare.csv").respond_with_data(BODY, content_type="text/csv")
    path = _catalogue_config(
        server,
        tmp_path,
        {"primary": {}, "spare": {}},
        'communes = "COMMUNE.shp"\nflows = { source = "primary", fallback = "spare" }\n',
    )
    resolved = resolve_inputs(load_config(path))
    flows = resolved["flows"]
    assert (flows.source_id, flows.replaces) == ("spare", "primary")
    assert flows.provenance is not None
    assert flows.provenance.source_id == "spare"
    assert flows.path.read_bytes() == BODY
    assert flows.geography == 2025
    assert "primary: HTTP 404" in caplog.text
    assert "using its fallback spare" in caplog.text
    # offline: the primary is absent from the cache, the fallback is there
    server.clear()
    offline = resolve_inputs(load_config(path), offline=True)
    assert offline["flows"].source_id == "spare"
    assert server.log == []


def test_checksum_mismatch_never_falls_back(server, tmp_path):
    server.expect_request("/primary.csv").respond_with_data(
        BODY, content_type="text/csv"
    )
    server.expect_request("/spare.csv").respond_with_data(BODY, content_type="text/csv")
    path = _catalogue_config(
        server,
        tmp_path,
        {"primary": {"sha256": "0" * 64}, "spare": {}},
        'communes = "COMMUNE.shp"\nflows = { source = "primary", fallback = "spare" }\n',
    )
    with pytest.raises(SourceError, match=r"^primary: SHA256 mismatch"):
        resolve_inputs(load_config(path))
    assert [r.path for r, _ in server.log] == ["/primary.csv"]


def test_inputs_sharing_a_fallback_take_it_together(server, tmp_path, capsys):
    from observatory.cli import main

    server.expect_request("/north.csv").respond_with_data(BODY, content_type="text/csv")
    server.expect_request("/south.csv").respond_with_data("gone", status=404)
    server.expect_request("/whole.csv").respond_with_data(BODY, content_type="text/csv")
    path = _catalogue_config(
        server,
        tmp_path,
        {"north": {}, "south": {}, "whole": {}},
        'flows = "flux.zip"\ncommunes = [\n'
        '  { source = "north", fallback = "whole" },\n'
        '  { source = "south", fallback = "whole" },\n]\n',
    )
    fetched = fetch_config_sources(load_config(path))
    assert {k: (f.replaced, f.result.source.id) for k, f in fetched.items()} == {
        "communes[1]": (True, "whole"),
        "communes[2]": (True, "whole"),
    }
    resolved = resolve_inputs(load_config(path), offline=True)
    communes = [r for r in resolved.values() if r.role == "communes"]
    assert [(r.source_id, r.replaces) for r in communes] == [("whole", "north")]

    assert main(["fetch", "--config", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "unavailable south: south: HTTP 404" in out
    assert "using its fallback whole" in out
    assert out.count(" whole  ") == 1  # fetched once


def test_sources_lists_unverified_entries_and_third_party_pins(tmp_path, capsys):
    from observatory.cli import main

    assert main(["sources", "--config", str(configs_dir() / "france.toml"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "insee_epci_2026: Intercommunalités" in out
    assert out.count("[unverified]") == len(load_catalogue(SHIPPED))
    assert (
        "md5 8505b978590a1f0ec97d5b28540b8530 (third-party, measured by "
        "InseeFrLab/DoReMIFaSol" in out
    )
    assert (
        "(third-party, measured by Jpmartinslag/neural-temporal-relational-model)"
        in out
    )
    assert "evidence: " in out


# --------------------------------------------------------------------- bare GeoTIFF
def _geotiff(path: Path) -> bytes:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
        crs="EPSG:2154", transform=from_origin(0, 40, 10, 10), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(np.arange(16, dtype="uint8").reshape(4, 4), 1)
    return path.read_bytes()


def test_the_oso_entry_is_a_bare_geotiff():
    source = load_catalogue(SHIPPED)["theia_oso_2018"]
    assert (source.format, source.members, source.geography) == ("tif", (), None)
    assert source.file_name == "OCS_2018_CESBIO.tif"
    assert not source.verified  # until a download by this project confirms it


def test_a_bare_geotiff_is_fetched_and_its_signature_checked(server, tmp_path):
    body = _geotiff(tmp_path / "oso.tif")
    server.expect_request("/OCS_2018_x.tif").respond_with_data(
        body, content_type="image/tiff"
    )
    server.expect_request("/fake.tif").respond_with_data(b"PK\x03\x04" + b"\0" * 64)
    cache = tmp_path / "cache"
    good = Source(
        id="oso", title="OSO", publisher="Theia",
        url=server.url_for("/OCS_2018_x.tif"), format="tif",
    )  # fmt: skip
    fetched = fetch_source(good, cache, **FAST)
    assert fetched.path.read_bytes() == body
    import rasterio

    with rasterio.open(fetched.path) as src:  # the cached file is the raster itself
        assert (src.width, src.dtypes[0]) == (4, "uint8")
    fake = Source(
        id="fake", title="x", publisher="x",
        url=server.url_for("/fake.tif"), format="tif",
    )  # fmt: skip
    with pytest.raises(SourceError, match=r"^fake: .* did not return a tif file"):
        fetch_source(fake, cache, **FAST)
