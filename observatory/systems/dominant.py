"""Dominant flows (Nystuen & Dacey, 1961) on the EPCI x EPCI matrix (pure functions).

Each EPCI sends its largest flow of workers to one other EPCI, its dominant
destination (internal flows, work places abroad and unmatched communes are not
candidates). The EPCI is *dominated* when that destination is larger by the
chosen weight (``jobs`` located there, or its ``inflow``: workers coming from
elsewhere, as the R package ``flows`` weighs units). Weights grow strictly along
the links of dominated EPCI, so they form a forest: following them from any EPCI
ends at a terminal pole, at a depth (``level``) of 0 for the pole itself. As in
``flows::map_nodal_flows``, an EPCI is ``dominant`` when it is not dominated and
receives at least one dominated link, ``intermediate`` when it is dominated and
receives some, ``dominated`` when it only sends one, ``independent`` otherwise.

Ties are broken so that the result never depends on row order: among equal
largest flows, the destination with the larger weight, then the smaller code;
an EPCI whose destination has exactly its weight is not dominated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from observatory.config.territories import DOMINANT_WEIGHTS
from observatory.core.errors import DataError
from observatory.geography import is_pseudo

logger = logging.getLogger(__name__)

#: Roles of an EPCI in the forest of dominant flows.
NODE_ROLES = ("dominant", "intermediate", "dominated", "independent")


@dataclass(frozen=True, slots=True)
class DominantFlows:
    """The forest of dominant flows: one row per EPCI, one row per link."""

    nodes: pd.DataFrame
    edges: pd.DataFrame


def _epci_flows(flows: pd.DataFrame) -> pd.DataFrame:
    # Flows between two EPCI (no pseudo-place at either end), as float.
    keep = ~is_pseudo(flows["origin_code"]) & ~is_pseudo(flows["destination_code"])
    return pd.DataFrame(
        {
            "origin_code": flows.loc[keep, "origin_code"].astype("string"),
            "destination_code": flows.loc[keep, "destination_code"].astype("string"),
            "workers": flows.loc[keep, "workers"].astype("float64"),
        }
    )


def epci_weights(flows: pd.DataFrame, weight: str = "jobs") -> pd.Series:
    """Size of each EPCI that decides dominance.

    Parameters
    ----------
    flows
        EPCI flows (``origin_code``, ``destination_code``, ``workers``) from
        :func:`observatory.systems.flows.flows_epci`.
    weight
        ``"jobs"``: workers whose work place is in the EPCI, wherever they live
        (its internal flow included, as ``jobs`` in ``epci_indicators``);
        ``"inflow"``: the same without its internal flow (the column sums of the
        matrix without its diagonal, R ``flows``' weight).

    Returns
    -------
    pandas.Series
        Float weights indexed by EPCI code (``epci_code``), 0 for an EPCI that
        only appears as an origin.
    """
    if weight not in DOMINANT_WEIGHTS:
        msg = f"dominant flows: weight must be one of {list(DOMINANT_WEIGHTS)}, got {weight!r}"
        raise DataError(msg)
    destination = flows["destination_code"]
    at_epci = flows[~is_pseudo(destination)]
    if weight == "inflow":
        at_epci = at_epci[at_epci["origin_code"] != at_epci["destination_code"]]
    sizes = at_epci.groupby("destination_code")["workers"].sum().astype("float64")
    codes = _node_codes(flows)
    out = sizes.reindex(codes, fill_value=0.0)
    out.index = pd.Index(codes, dtype="string", name="epci_code")
    return out.rename("weight")


def _node_codes(flows: pd.DataFrame) -> list[str]:
    places = pd.concat([flows["origin_code"], flows["destination_code"]]).astype(
        "string"
    )
    return sorted(set(places[~is_pseudo(places)].dropna()))


def _largest_outflows(between: pd.DataFrame, weights: pd.Series) -> pd.DataFrame:
    """Pick the largest flow of each origin to another EPCI, ties broken by weight then code."""
    candidates = between[
        (between["origin_code"] != between["destination_code"])
        & (between["workers"] > 0)
    ].assign(destination_weight=lambda f: f["destination_code"].map(weights))
    ranked = candidates.sort_values(
        ["origin_code", "workers", "destination_weight", "destination_code"],
        ascending=[True, False, False, True],
    )
    return ranked.drop_duplicates("origin_code").set_index("origin_code")


def _forest(
    codes: pd.Index, parent: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Terminal pole, level and number of direct subordinates of every node.

    ``parent`` maps a dominated node to its dominant destination. Weights grow
    strictly along links, so chasing parents ends within ``len(codes)`` steps.
    """
    position = pd.Series(np.arange(len(codes)), index=codes)
    up = np.full(len(codes), -1, dtype=np.int64)
    up[position[parent.index].to_numpy()] = position[parent.to_numpy()].to_numpy()
    terminal = np.arange(len(codes))
    level = np.zeros(len(codes), dtype=np.int64)
    for _ in range(len(codes)):
        moving = up[terminal] >= 0
        if not moving.any():
            break
        terminal = np.where(moving, up[terminal], terminal)
        level += moving
    subordinates = np.bincount(up[up >= 0], minlength=len(codes))
    return terminal, level, subordinates


def _share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    # A share with a zero denominator is missing, as in epci_indicators.
    return (numerator / denominator.where(denominator > 0)).astype("float64")


def dominant_flows(
    flows: pd.DataFrame, weight: str | pd.Series = "jobs"
) -> DominantFlows:
    """Find each EPCI's dominant flow and the forest they form (Nystuen & Dacey).

    Parameters
    ----------
    flows
        EPCI flows of the whole territory (``origin_code``, ``destination_code``,
        ``workers``) from :func:`observatory.systems.flows.flows_epci`; pseudo-places
        (abroad, unmatched) count in the employed residents, never as destinations.
    weight
        ``"jobs"`` or ``"inflow"`` (:func:`epci_weights`), or a float Series of
        sizes indexed by EPCI code covering every EPCI of ``flows``.

    Returns
    -------
    DominantFlows
        ``nodes``, one row per EPCI: ``epci_code``, ``employed_residents``,
        ``internal_flow``, ``weight``, ``dominant_destination_code`` and
        ``dominant_flow`` (its largest flow to another EPCI; missing when none),
        ``dominant_share`` (of its employed residents), ``dominant_commuter_share``
        (of its residents working outside it), ``dominated`` (the destination is
        heavier), ``terminal_code``, ``level`` (0 for a terminal),
        ``dominated_epci`` (EPCI dominated directly by it), ``tree_epci`` (EPCI in
        the tree of its terminal, itself included) and ``node_role``
        (:data:`NODE_ROLES`). ``edges``, one row per dominated EPCI:
        ``origin_code``, ``destination_code``, ``workers``, ``dominant_share``,
        ``origin_weight``, ``destination_weight``, ``origin_level``,
        ``terminal_code``: the lines of the ``dominant_flows`` layer.
    """
    between = _epci_flows(flows)
    weights = epci_weights(flows, weight) if isinstance(weight, str) else weight
    codes = pd.Index(_node_codes(flows), dtype="string")
    missing = codes.difference(pd.Index(weights.index.astype("string")))
    if len(missing):
        msg = f"dominant flows: no weight for EPCI {sorted(missing)[:5]} ({len(missing)} in all)"
        raise DataError(msg)
    weights = pd.Series(
        weights.to_numpy(dtype="float64"),
        index=pd.Index(weights.index, dtype="string"),
    ).reindex(codes)
    nodes = _nodes(flows, between, weights, codes)
    edges = _edges(nodes)
    logger.info(
        "dominant flows: %d EPCI, %d dominated, %d terminal poles",
        len(nodes),
        len(edges),
        int((nodes["node_role"] == "dominant").sum()),
    )
    return DominantFlows(nodes=nodes, edges=edges)


def _nodes(
    flows: pd.DataFrame, between: pd.DataFrame, weights: pd.Series, codes: pd.Index
) -> pd.DataFrame:
    residents = flows.groupby("origin_code")["workers"].sum().reindex(codes)
    internal = (
        between[between["origin_code"] == between["destination_code"]]
        .set_index("origin_code")["workers"]
        .reindex(codes)
    )
    top = _largest_outflows(between, weights).reindex(codes)
    dominated = (top["destination_weight"] > weights).fillna(False).astype(bool)
    parent = top.loc[dominated, "destination_code"]
    terminal, level, subordinates = _forest(codes, parent)
    nodes = pd.DataFrame(
        {
            "epci_code": codes,
            "employed_residents": residents.fillna(0.0).to_numpy(dtype="float64"),
            "internal_flow": internal.fillna(0.0).to_numpy(dtype="float64"),
            "weight": weights.to_numpy(dtype="float64"),
            "dominant_destination_code": top["destination_code"].to_numpy(),
            "dominant_flow": top["workers"].to_numpy(dtype="float64"),
            "dominated": dominated.to_numpy(),
            "terminal_code": codes.to_numpy()[terminal],
            "level": level.astype("int16"),
            "dominated_epci": subordinates.astype("int32"),
        }
    )
    nodes["dominant_destination_code"] = nodes["dominant_destination_code"].astype(
        "string"
    )
    nodes["terminal_code"] = nodes["terminal_code"].astype("string")
    nodes["dominant_share"] = _share(
        nodes["dominant_flow"], nodes["employed_residents"]
    )
    nodes["dominant_commuter_share"] = _share(
        nodes["dominant_flow"], nodes["employed_residents"] - nodes["internal_flow"]
    )
    nodes["tree_epci"] = (
        nodes.groupby("terminal_code")["epci_code"].transform("size").astype("int32")
    )
    receives = nodes["dominated_epci"] > 0
    nodes["node_role"] = pd.Series(
        np.select(
            [
                ~nodes["dominated"] & receives,
                nodes["dominated"] & receives,
                nodes["dominated"],
            ],
            list(NODE_ROLES[:3]),
            default=NODE_ROLES[3],
        ),
        dtype="string",
    )
    columns = [
        "epci_code",
        "employed_residents",
        "internal_flow",
        "weight",
        "dominant_destination_code",
        "dominant_flow",
        "dominant_share",
        "dominant_commuter_share",
        "dominated",
        "terminal_code",
        "level",
        "dominated_epci",
        "tree_epci",
        "node_role",
    ]
    return nodes[columns]


def _edges(nodes: pd.DataFrame) -> pd.DataFrame:
    links = nodes[nodes["dominated"]]
    weight = nodes.set_index("epci_code")["weight"]
    edges = pd.DataFrame(
        {
            "origin_code": links["epci_code"].astype("string"),
            "destination_code": links["dominant_destination_code"].astype("string"),
            "workers": links["dominant_flow"].astype("float64"),
            "dominant_share": links["dominant_share"].astype("float64"),
            "origin_weight": links["weight"].astype("float64"),
            "destination_weight": links["dominant_destination_code"]
            .map(weight)
            .astype("float64"),
            "origin_level": links["level"].astype("int16"),
            "terminal_code": links["terminal_code"].astype("string"),
        }
    )
    return edges.sort_values(["terminal_code", "origin_code"], ignore_index=True)
