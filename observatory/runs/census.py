"""Every (census vintage, métropole) system of a run, computed with dask.

Each vintage is harmonised and summed by EPCI once (a first graph, which needs
no crowns); each métropole's matrix (current vintage) and indicators (every
vintage) are then separate tasks (a second graph), on the scheduler of
``[compute]`` (a dask.distributed cluster included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from observatory.config import Config
from observatory.readers.base_flux import CommuneFlows
from observatory.systems.codebook import CodedFlows
from observatory.systems.flows import FlowsReport, coded_flows_epci
from observatory.systems.harmonise import (
    Harmonisation,
    HarmonisationReport,
    harmonise_resolved,
)
from observatory.systems.harmonise import harmonisation as resolved_passage
from observatory.systems.indicators import (
    TotalsLookup,
    coded_epci_totals,
    coded_system_indicators,
    coded_system_matrix,
    totals_lookup,
)

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


def coded_flows(flows: CommuneFlows) -> CodedFlows:
    """Code a base flux as read for the census graph: its numbers, not strings."""
    return CodedFlows.from_codes(
        flows.codes, flows.origin, flows.destination, flows.workers
    )


def vintage_flows(
    coded: CodedFlows,
    resolved: Harmonisation | None,
    commune_epci: pd.DataFrame,
) -> tuple[pd.DataFrame, CodedFlows, FlowsReport, HarmonisationReport | None]:
    """Harmonise one vintage's commune flows (when a passage is given), sum by EPCI.

    ``coded`` are the commune flows (:func:`coded_flows`); ``resolved`` is the
    passage and target codes of
    :func:`~observatory.systems.harmonise.harmonisation`, made once for every
    vintage. Returns the EPCI flows as a table and coded by pair (for the
    systems to look up), the report of the sums and that of the harmonisation.
    """
    harmonised = None
    if resolved is not None:
        coded, harmonised = harmonise_resolved(coded, resolved)
    pairs, report = coded_flows_epci(coded, commune_epci)
    return pairs.frame("origin_code", "destination_code"), pairs, report, harmonised


def systems_by_vintage(
    flows: Mapping[str, CodedFlows] | Callable[[], Mapping[str, CodedFlows]],
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
    crowns: pd.DataFrame | Callable[[], pd.DataFrame],
    config: Config,
) -> dict[str, VintageSystems]:
    """Compute every (vintage, métropole) system with dask, in two graphs.

    ``flows`` are the commune flows of each vintage, by role, coded
    (:func:`coded_flows`), or a function returning them: it is called once the
    scheduler is ready (dask imported, the passage resolved), so they can still
    be read meanwhile. The first graph harmonises each vintage and sums it by
    EPCI (a task per vintage); the second computes each métropole's matrix
    (current vintage) and indicators (every vintage), a task each. ``crowns``
    may be a function returning them: it is called between the two, so the
    crowns can be built meanwhile. Both run on the scheduler of ``[compute]``
    (a dask.distributed cluster included); the inputs enter through
    :meth:`Computer.share`, so on a cluster they are scattered to the workers
    once and each graph holds keys.
    """
    from observatory.core.compute import computer

    with contextlib.ExitStack() as stack:
        compute = computer(
            config.compute.scheduler, True, stack
        )  # bar on a terminal only
        passage, target = harmonisation
        resolved = (  # once for every vintage
            resolved_passage(passage, target)
            if passage is not None and target is not None
            else None
        )
        passage_key = compute.share(resolved, "passage")
        epci_key = compute.share(commune_epci, "commune-epci")
        vintages = flows() if callable(flows) else flows
        inputs = Inputs(
            {key: compute.share(coded, key) for key, coded in vintages.items()},
            passage_key,
            epci_key,
        )
        (summed,) = compute(_vintage_graph(inputs))
        systems = crowns() if callable(crowns) else crowns
        shared = {
            key: {
                name: compute.share(part[name], f"{key}-{name}")
                for name in ("pairs", "totals")
            }
            for key, part in summed.items()
        }
        (done,) = compute(_system_graph(shared, systems, config))
    return {
        key: VintageSystems(
            flows=part["flows"],
            report=part["report"],
            harmonisation=part["harmonisation"],
            indicators=pd.concat(done[key]["indicators"], ignore_index=True),
            matrix=(
                pd.concat(done[key]["matrix"], ignore_index=True)
                if done[key]["matrix"]
                else None
            ),
        )
        for key, part in summed.items()
    }


@dataclass(frozen=True, slots=True)
class Inputs:
    """The inputs of the graph, each shared once: flows by vintage, passage, EPCI."""

    flows: dict[str, Any]
    harmonisation: Any
    commune_epci: Any


def _vintage_graph(inputs: Inputs) -> dict[str, Any]:
    # Each vintage harmonised and summed by EPCI, and each EPCI's totals.
    from dask.delayed import delayed

    graph: dict[str, Any] = {}
    for key, coded in inputs.flows.items():
        flows, pairs, report, harmonised = delayed(vintage_flows, nout=4)(
            coded,
            inputs.harmonisation,
            inputs.commune_epci,
            dask_key_name=f"{key}-epci",
        )
        graph[key] = {
            "flows": flows,
            "pairs": pairs,
            "report": report,
            "harmonisation": harmonised,
            "totals": delayed(_totals)(pairs, dask_key_name=f"{key}-totals"),
        }
    return graph


def _totals(pairs: CodedFlows) -> TotalsLookup:
    # Each EPCI's totals, laid out for the systems to look up by position.
    return totals_lookup(coded_epci_totals(pairs))


def _system_graph(
    shared: dict[str, dict[str, Any]], crowns: pd.DataFrame, config: Config
) -> dict[str, Any]:
    # The indicators of each (vintage, métropole), the matrix of each métropole.
    from dask.delayed import delayed

    systems = {
        str(metropole): part
        for metropole, part in crowns.groupby("metropole_code", sort=False)
    }
    thresholds = config.reliability
    graph: dict[str, Any] = {}
    for key, summed in shared.items():
        graph[key] = {
            "indicators": [
                delayed(coded_system_indicators)(
                    summed["pairs"],
                    summed["totals"],
                    part,
                    thresholds,
                    dask_key_name=f"{key}-indicators-{metropole}",
                )
                for metropole, part in systems.items()
            ],
            "matrix": (
                [
                    delayed(coded_system_matrix)(
                        summed["pairs"],
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
