"""Vintages x métropoles as one dask graph: same results on every scheduler."""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import FLOW_HEADER, FLOW_ROWS, write_config, write_flows

from observatory.cli import main
from observatory.config import load_config
from observatory.core.compute import computer, scheduler_kind
from observatory.core.errors import ConfigError, SourceError
from observatory.runs.pipeline import run
from observatory.systems.codebook import CodedFlows

LAYERS = ("epci_indicators", "flows", "metropoles", "flow_matrix")


@pytest.mark.parametrize(
    ("scheduler", "kind"),
    [
        (None, "threads"),
        ("synchronous", "synchronous"),
        ("processes", "processes"),
        ("tcp://10.0.0.5:8786", "distributed"),
        ("tls://scheduler.example:8786", "distributed"),
    ],
)
def test_scheduler_kind(scheduler, kind):
    assert scheduler_kind(scheduler) == kind


def test_unknown_scheduler_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'tcp://127\.0\.0\.1:8786', got 'gpu'"):
        scheduler_kind("gpu")


def test_unreachable_scheduler_is_named():
    with (
        contextlib.ExitStack() as stack,
        pytest.raises(
            SourceError,
            match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1:9",
        ),
    ):
        computer("tcp://127.0.0.1:9", False, stack, timeout="1s")


@pytest.fixture
def two_vintages(tiny_inputs):
    """The tiny territory with a second, earlier vintage (flows x 0.8, RP 2016)."""
    folder = tiny_inputs.parent
    earlier = [(o, d, str(float(w) * 0.8)) for o, d, w in FLOW_ROWS]
    write_flows(
        folder / "base-flux-2016.zip", earlier, header=FLOW_HEADER.replace("C21", "C16")
    )
    return write_config(folder, flows_previous="base-flux-2016.zip")


def _run(config_path, scheduler, out):
    text = config_path.read_text(encoding="utf-8")
    path = config_path.with_name(f"{out.name}.toml")
    path.write_text(
        text + f'\n[compute]\nscheduler = "{scheduler}"\n', encoding="utf-8"
    )
    report = run(load_config(path), out)
    return {
        layer: pq.read_table(report.output_dir / f"{layer}.parquet")
        .replace_schema_metadata()
        .to_pandas()
        for layer in LAYERS
    }


def _assert_same(left, right):
    for layer in LAYERS:
        pd.testing.assert_frame_equal(
            left[layer].drop(columns=["geometry", "bbox"], errors="ignore"),
            right[layer].drop(columns=["geometry", "bbox"], errors="ignore"),
            check_exact=True,
        )
        if "geometry" in left[layer]:
            assert left[layer]["geometry"].equals(right[layer]["geometry"])


def test_schedulers_give_identical_layers(two_vintages, tmp_path):
    reference = _run(two_vintages, "synchronous", tmp_path / "sync")
    epci = reference["epci_indicators"].set_index("epci_code")
    # The earlier vintage went through the same graph: 0.8 x every flow.
    assert epci.loc["200000002", "flow_to_metropole_previous"] == pytest.approx(240)
    assert epci.loc["200000002", "flow_to_metropole_change"] == pytest.approx(60)
    for scheduler in ("threads", "processes"):
        _assert_same(reference, _run(two_vintages, scheduler, tmp_path / scheduler))


def test_vintages_and_metropoles_run_on_a_cluster(
    two_vintages, tmp_path, local_cluster
):
    from distributed import Client

    reference = _run(two_vintages, "synchronous", tmp_path / "sync")
    address = local_cluster.scheduler_address
    _assert_same(reference, _run(two_vintages, address, tmp_path / "cluster"))

    with Client(address) as client:
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)
        )
    # One task per vintage and per (vintage, métropole): they ran on the workers.
    for name in (
        "flows-epci",
        "flows_previous-epci",
        "flows-indicators",
        "flows_previous-indicators",
        "flows-matrix",
    ):
        assert name in prefixes, prefixes


# --------------------------------------------------------------------- graph size
def _national_like(rows: int, seed: int = 7) -> dict:
    """Census tables of ``rows`` commune pairs (two vintages), EPCI, crowns, passage.

    2,000 communes in 100 EPCI of 20; the earlier vintage names 50 former codes
    that the passage takes to current ones.
    """
    rng = np.random.default_rng(seed)
    communes = [f"{10_000 + i:05d}" for i in range(2000)]
    epci = [f"2000{i // 20:05d}" for i in range(2000)]
    commune_epci = pd.DataFrame({"commune_code": communes, "epci_code": epci}).astype(
        "string"
    )
    tables = {}
    for key, codes in (("flows", communes), ("flows_previous", None)):
        codes = codes or [f"9{c[1:]}" if i < 50 else c for i, c in enumerate(communes)]
        pairs = rng.choice(len(codes) ** 2, size=rows, replace=False)
        tables[key] = pd.DataFrame(
            {
                "origin_commune": np.asarray(codes)[pairs // len(codes)],
                "destination_commune": np.asarray(codes)[pairs % len(codes)],
                "workers": rng.gamma(0.5, 20.0, rows),
            }
        ).astype({"origin_commune": "string", "destination_commune": "string"})
    passage = pd.DataFrame(
        {"old_code": [f"9{c[1:]}" for c in communes[:50]], "new_code": communes[:50]}
    )
    crowns = pd.DataFrame(
        {
            "metropole_code": ["200000000"] * 3 + ["200000050"] * 3,
            "epci_code": [
                *("200000000", "200000001", "200000002"),
                *("200000050", "200000049", "200000051"),
            ],
            "crown": np.array([0, 1, 2, 0, 1, 1], dtype="int8"),
        }
    ).astype({"metropole_code": "string", "epci_code": "string"})
    return {
        "tables": tables,
        "harmonisation": (passage, set(communes)),
        "commune_epci": commune_epci,
        "crowns": crowns,
    }


def _systems(inputs: dict, config, scheduler: str):
    from observatory.runs.census import systems_by_vintage

    config = dataclasses.replace(
        config, compute=dataclasses.replace(config.compute, scheduler=scheduler)
    )
    return systems_by_vintage(
        {key: CodedFlows.from_frame(t) for key, t in inputs["tables"].items()},
        inputs["harmonisation"],
        inputs["commune_epci"],
        inputs["crowns"],
        config,
    )


def test_a_cluster_graph_carries_keys_not_tables(
    tiny_inputs, local_cluster, monkeypatch
):
    """The vintages x métropoles graph stays small: its tables are scattered once.

    The graph's pickled size is what distributed measures before sending it
    (it warns above ``distributed.admin.large-graph-warning-threshold``, set
    here to 1 byte so that every graph is measured and reported).
    """
    import dask
    from dask.utils import parse_bytes

    inputs = _national_like(rows=300_000)
    embedded = sum(
        len(pickle.dumps(CodedFlows.from_frame(t))) for t in inputs["tables"].values()
    )
    assert embedded > 8 * 2**20  # carried in the graph, they would weigh this
    config = load_config(tiny_inputs)
    with (
        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        on_cluster = _systems(inputs, config, local_cluster.scheduler_address)
    sizes = [
        parse_bytes(found.group(1))
        for w in caught
        if (
            found := re.search(r"Sending large graph of size (.+?)\.\n", str(w.message))
        )
    ]
    assert sizes, [str(w.message) for w in caught]
    assert max(sizes) < 2**20, sizes  # keys and small frames only
    local = _systems(inputs, config, "synchronous")
    assert on_cluster.keys() == local.keys()
    for key, systems in local.items():
        other = on_cluster[key]
        for name in ("flows", "indicators", "matrix"):
            left, right = getattr(systems, name), getattr(other, name)
            if left is None:
                assert right is None
            else:
                pd.testing.assert_frame_equal(left, right, check_exact=True)
        assert systems.report == other.report
        assert systems.harmonisation == other.harmonisation


# --------------------------------------------------------------------- territories beside flows
def test_territories_built_beside_the_flows_fail_in_their_own_stage(
    tiny_inputs, capsys
):
    """The crowns are built in a thread while the flows are summed by EPCI: a
    failure there is still the 'territories' stage's, and nothing is published."""
    config = tiny_inputs.read_text(encoding="utf-8").replace(
        "[territories]\n", '[territories]\nmetropoles = ["200000002"]\n'
    )
    tiny_inputs.write_text(config, encoding="utf-8")
    out = tiny_inputs.parent / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "observatory run failed at stage 'territories': [territories] metropoles: "
        "200000002 (not ME/METLYON"
    ), line
    assert not (out / "latest").exists()


def test_a_bug_in_the_territories_thread_is_named_by_its_stage(
    tiny_inputs, monkeypatch, capsys
):
    from observatory.runs import pipeline

    def broken(*args):
        msg = "broken crowns"
        raise RuntimeError(msg)

    monkeypatch.setattr(pipeline, "build_territories", broken)
    out = tiny_inputs.parent / "out"
    assert main(["run", "--config", str(tiny_inputs), "--output", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "observatory run failed at stage 'territories': unexpected error "
        "RuntimeError: broken crowns"
    ), line
