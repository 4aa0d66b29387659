"""Vintages x métropoles as one dask graph: same results on every scheduler."""

from __future__ import annotations

import contextlib

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import FLOW_HEADER, FLOW_ROWS, write_config, write_flows

from observatory.config import load_config
from observatory.core.compute import computer, scheduler_kind
from observatory.core.errors import ConfigError, SourceError
from observatory.runs.pipeline import run

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
