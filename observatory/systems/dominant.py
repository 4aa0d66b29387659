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
from observatory.systems.codebook import group_sum, positions_in

logger = logging.getLogger(__name__)

#: Roles of an EPCI in the forest of dominant flows.
NODE_ROLES = ("dominant", "intermediate", "dominated", "independent")

_ENDS = ("origin_code", "destination_code")


@dataclass(frozen=True, slots=True)
class DominantFlows:
    """The forest of dominant flows: one row per EPCI, one row per link."""

    nodes: pd.DataFrame
    edges: pd.DataFrame


@dataclass(frozen=True, slots=True)
class _Ends:
    """Flows with each end as a position among the sorted EPCI codes.

    A pseudo-place (abroad, unmatched) or a missing code is -1: positions are
    compared, sorted and summed by numpy instead of the strings of every row.
    """

    codes: pd.Index  # the EPCI codes, sorted (string dtype)
    origin: np.ndarray
    destination: np.ndarray
    workers: np.ndarray

    @classmethod
    def of(cls, flows: pd.DataFrame) -> _Ends:
        codes = pd.Index(_node_codes(flows), dtype="string")
        book = pd.Series(codes)
        origin, destination = (positions_in(book, flows[c]) for c in _ENDS)
        workers = flows["workers"].astype("float64").to_numpy()
        return cls(codes, origin, destination, workers)

    def summed(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Sum the workers of ``rows`` by EPCI ``keys`` as pandas' groupby does (0: none)."""
        out = np.zeros(len(self.codes))
        distinct, sums = group_sum(keys[rows], self.workers[rows])
        out[distinct] = sums
        return out


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
    return _weights(_Ends.of(flows), weight)


def _weights(ends: _Ends, weight: str) -> pd.Series:
    if weight not in DOMINANT_WEIGHTS:
        msg = f"dominant flows: weight must be one of {list(DOMINANT_WEIGHTS)}, got {weight!r}"
        raise DataError(msg)
    at_epci = ends.destination >= 0
    if weight == "inflow":
        at_epci &= ends.origin != ends.destination
    sizes = ends.summed(ends.destination, at_epci)
    index = pd.Index(ends.codes, dtype="string", name="epci_code")
    return pd.Series(sizes, index=index, name="weight")


def _given_weights(weight: pd.Series, codes: pd.Index) -> pd.Series:
    missing = codes.difference(pd.Index(weight.index.astype("string")))
    if len(missing):
        msg = f"dominant flows: no weight for EPCI {sorted(missing)[:5]} ({len(missing)} in all)"
        raise DataError(msg)
    return pd.Series(
        weight.to_numpy(dtype="float64"),
        index=pd.Index(weight.index, dtype="string"),
    ).reindex(codes)


def _node_codes(flows: pd.DataFrame) -> list[str]:
    # The distinct codes by hashing (a few thousand among the rows), then the
    # pseudo-place test and the sort on those only.
    places = pd.concat(
        [pd.Series(pd.unique(flows[c].astype("string"))) for c in _ENDS]
    ).dropna()
    places = places[~is_pseudo(places)]
    return sorted(pd.unique(places.astype("string")).tolist())


def _largest_outflows(
    ends: _Ends, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the largest flow of each origin to another EPCI, ties broken by weight then code.

    Returns each EPCI's dominant destination (a position, -1 when none) and flow
    (NaN when none). Positions sort as the codes do, and the sort is stable, as
    pandas' sort on the code columns.
    """
    o, d, workers = ends.origin, ends.destination, ends.workers
    rows = np.flatnonzero((o >= 0) & (d >= 0) & (o != d) & (workers > 0))
    largest = np.full(len(ends.codes), -np.inf)
    np.maximum.at(largest, o[rows], workers[rows])
    # Sort only the rows at their origin's largest flow (ties are rare):
    # heavier destination first (NaN last), then smaller code, then row order.
    rows = rows[workers[rows] == largest[o[rows]]]
    ranked = rows[np.lexsort((d[rows], -weights[d[rows]], o[rows]))]
    first = ranked[np.r_[True, o[ranked][1:] != o[ranked][:-1]]] if len(rows) else rows
    destination = np.full(len(ends.codes), -1, dtype=np.int64)
    flow = np.full(len(ends.codes), np.nan)
    destination[o[first]] = d[first]
    flow[o[first]] = workers[first]
    return destination, flow


def _forest(
    size: int, child: np.ndarray, parent: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Terminal pole, level and number of direct subordinates of every node.

    ``parent`` is the dominant destination of each dominated node ``child``
    (positions among ``size`` nodes). Weights grow strictly along links, so
    chasing parents ends within ``size`` steps.
    """
    up = np.full(size, -1, dtype=np.int64)
    up[child] = parent
    terminal = np.arange(size)
    level = np.zeros(size, dtype=np.int64)
    for _ in range(size):
        moving = up[terminal] >= 0
        if not moving.any():
            break
        terminal = np.where(moving, up[terminal], terminal)
        level += moving
    subordinates = np.bincount(up[up >= 0], minlength=size)
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
    ends = _Ends.of(flows)
    if isinstance(weight, str):
        weights = _weights(ends, weight)
    else:
        weights = _given_weights(weight, ends.codes)
    nodes = _nodes(ends, weights.to_numpy(dtype="float64"))
    edges = _edges(nodes)
    logger.info(
        "dominant flows: %d EPCI, %d dominated, %d terminal poles",
        len(nodes),
        len(edges),
        int((nodes["node_role"] == "dominant").sum()),
    )
    return DominantFlows(nodes=nodes, edges=edges)


def _nodes(ends: _Ends, weights: np.ndarray) -> pd.DataFrame:
    o, d, workers = ends.origin, ends.destination, ends.workers
    size = len(ends.codes)
    residents = ends.summed(o, o >= 0)
    # One row per pair: the internal flow is the pair's own row.
    internal = np.zeros(size)
    own = np.flatnonzero((o >= 0) & (o == d))
    internal[o[own]] = np.where(np.isnan(workers[own]), 0.0, workers[own])
    destination, flow = _largest_outflows(ends, weights)
    heavier = weights[destination] > weights  # NaN compares False
    dominated = (destination >= 0) & heavier
    child = np.flatnonzero(dominated)
    terminal, level, subordinates = _forest(size, child, destination[child])
    codes = pd.Series(ends.codes).array
    nodes = pd.DataFrame(
        {
            "epci_code": ends.codes,
            "employed_residents": residents,
            "internal_flow": internal,
            "weight": weights,
            "dominant_destination_code": codes.take(destination, allow_fill=True),
            "dominant_flow": flow,
            "dominated": dominated,
            "terminal_code": codes.take(terminal),
            "level": level.astype("int16"),
            "dominated_epci": subordinates.astype("int32"),
        }
    )
    nodes["dominant_share"] = _share(
        nodes["dominant_flow"], nodes["employed_residents"]
    )
    nodes["dominant_commuter_share"] = _share(
        nodes["dominant_flow"], nodes["employed_residents"] - nodes["internal_flow"]
    )
    nodes["tree_epci"] = np.bincount(terminal, minlength=size)[terminal].astype("int32")
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
