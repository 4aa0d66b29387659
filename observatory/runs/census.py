"""Every (census vintage, métropole) system of a run, computed as one dask graph.

Each vintage is harmonised and summed by EPCI once; each métropole's matrix
(current vintage) and indicators (every vintage) are then separate tasks, on the
scheduler of ``[compute]`` (a dask.distributed cluster included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from observatory.config import Config
from observatory.systems.flows import (
    FlowsReport,
    epci_totals,
    flows_epci,
    pair_flows,
    system_indicators,
    system_matrix,
)
from observatory.systems.harmonise import HarmonisationReport, harmonise_flows

#: The census flows of a run, by input role: the current vintage first.
CURRENT, PREVIOUS = "flows", "flows_previous"


@dataclass(frozen=True, slots=True)
class VintageSystems:
    """One census vintage aggregated to EPCI, and the systems computed from it."""

    flows: pd.DataFrame
    report: FlowsReport
    harmonisation: HarmonisationReport | None
    indicators: pd.DataFrame
    matrix: pd.DataFrame | None


def vintage_flows(
    table: pd.DataFrame,
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
) -> tuple[pd.DataFrame, FlowsReport, HarmonisationReport | None]:
    """Harmonise one vintage's commune flows (when a passage is given), sum by EPCI."""
    passage, target = harmonisation
    harmonised = None
    if passage is not None and target is not None:
        table, harmonised = harmonise_flows(table, passage, target)
    flows, report = flows_epci(table, commune_epci)
    return flows, report, harmonised


def systems_by_vintage(
    tables: Mapping[str, pd.DataFrame],
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
    crowns: pd.DataFrame,
    config: Config,
) -> dict[str, VintageSystems]:
    """Compute every (vintage, métropole) system as one dask graph.

    Each vintage is harmonised and summed by EPCI once; each métropole's matrix
    (current vintage) and indicators (every vintage) are then separate tasks, on
    the scheduler of ``[compute]`` (a dask.distributed cluster included).
    """
    from observatory.core.compute import computer

    graph = _graph(tables, harmonisation, commune_epci, crowns, config)
    with contextlib.ExitStack() as stack:
        compute = computer(
            config.compute.scheduler, True, stack
        )  # bar on a terminal only
        (done,) = compute(graph)
    return {
        key: VintageSystems(
            flows=part["flows"],
            report=part["report"],
            harmonisation=part["harmonisation"],
            indicators=pd.concat(part["indicators"], ignore_index=True),
            matrix=(
                pd.concat(part["matrix"], ignore_index=True) if part["matrix"] else None
            ),
        )
        for key, part in done.items()
    }


def _graph(
    tables: Mapping[str, pd.DataFrame],
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
    crowns: pd.DataFrame,
    config: Config,
) -> dict[str, Any]:
    # The delayed tasks of every vintage, by vintage key.
    from dask.delayed import delayed

    def shared(value: Any, name: str) -> Any:
        # Named: dask would otherwise hash large frames to name them.
        return delayed(value, name=f"{name}-{id(value)}", pure=True)

    systems = {
        str(metropole): part
        for metropole, part in crowns.groupby("metropole_code", sort=False)
    }
    epci_table = shared(commune_epci, "commune-epci")
    passage = shared(harmonisation, "passage")
    thresholds = config.reliability
    graph: dict[str, Any] = {}
    for key, table in tables.items():
        flows, report, harmonised = delayed(vintage_flows, nout=3)(
            shared(table, key), passage, epci_table, dask_key_name=f"{key}-epci"
        )
        totals = delayed(epci_totals)(flows, dask_key_name=f"{key}-totals")
        pairs = delayed(pair_flows)(flows, dask_key_name=f"{key}-pairs")
        graph[key] = {
            "flows": flows,
            "report": report,
            "harmonisation": harmonised,
            "indicators": [
                delayed(system_indicators)(
                    pairs,
                    totals,
                    part,
                    thresholds,
                    dask_key_name=f"{key}-indicators-{metropole}",
                )
                for metropole, part in systems.items()
            ],
            "matrix": (
                [
                    delayed(system_matrix)(
                        flows,
                        systems[metropole],
                        dask_key_name=f"{key}-matrix-{metropole}",
                    )
                    for metropole in sorted(systems)
                ]
                if key == CURRENT
                else []
            ),
        }
    return graph
