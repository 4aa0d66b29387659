"""The flow matrix and the indicators of each métropole system (pure functions).

The EPCI flows of a vintage (:func:`observatory.systems.flows.flows_epci`) are
summed once per EPCI (:func:`epci_totals`) and coded once by pair
(:func:`pair_flows`); each métropole's indicators and matrix then only look
these up, so the pipeline can afford one task per (vintage, métropole). The
indicators follow ``docs/indicators.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.config import ReliabilitySection
from observatory.geography import REST_OF_FRANCE, is_abroad, is_pseudo
from observatory.systems.codebook import CodedFlows, group_sum, sorted_book
from observatory.systems.flows import reliability_class

#: The columns of a system's flow matrix.
MATRIX_COLUMNS = ["metropole_code", "origin_code", "destination_code", "workers"]


def pair_flows(flows: pd.DataFrame) -> CodedFlows:
    """Code the EPCI flows of :func:`flows_epci` by pair, for the systems to look up.

    The result has one row per (origin, destination) pair, sorted:
    :meth:`~observatory.systems.codebook.CodedFlows.between` finds a pair's
    workers by binary search.
    """
    return CodedFlows.from_frame(flows, "origin_code", "destination_code").summed()


def system_matrix(flows: pd.DataFrame, crowns: pd.DataFrame) -> pd.DataFrame:
    """Build each métropole system's flow matrix, in long form.

    Parameters
    ----------
    flows
        EPCI flows from :func:`flows_epci`.
    crowns
        ``metropole_code``, ``epci_code``, ``crown``.

    Returns
    -------
    pandas.DataFrame
        ``metropole_code``, ``origin_code``, ``destination_code``, ``workers``:
        every flow with at least one end in the system; places outside it become
        :data:`REST_OF_FRANCE` (or stay ``ABROAD-<country>`` / :data:`UNMATCHED`).
    """
    coded = CodedFlows.from_frame(flows, "origin_code", "destination_code")
    return coded_system_matrix(coded, crowns)


def coded_system_matrix(flows: CodedFlows, crowns: pd.DataFrame) -> pd.DataFrame:
    """:func:`system_matrix` of EPCI flows coded by :class:`CodedFlows` (rows in order).

    The places of the matrix are the codes of the book and
    :data:`REST_OF_FRANCE`; the workers of the pairs that meet are summed
    system by system, in the order of the rows of ``flows``.
    """
    systems = list(crowns.groupby("metropole_code", sort=True))
    if not systems:
        return pd.DataFrame(columns=MATRIX_COLUMNS)
    places = sorted_book(
        pd.concat([flows.codes, pd.Series([REST_OF_FRANCE], dtype="string")])
    )
    size = len(places)
    position = pd.Index(places).get_indexer(flows.codes)
    rest = int(pd.Index(places).get_loc(REST_OF_FRANCE))
    keep = is_pseudo(flows.codes).to_numpy()
    keys, rows = [], []
    for rank, (_, members) in enumerate(systems):
        inside = (pd.Index(members["epci_code"]).get_indexer(flows.codes) >= 0) | keep
        own = inside & ~keep
        part = np.flatnonzero(own[flows.origin] | own[flows.destination])
        o = np.where(inside[flows.origin[part]], position[flows.origin[part]], rest)
        d = np.where(
            inside[flows.destination[part]], position[flows.destination[part]], rest
        )
        keys.append((rank * size + o) * size + d)
        rows.append(part)
    distinct, workers = group_sum(
        np.concatenate(keys), flows.workers[np.concatenate(rows)]
    )
    codes = pd.Series([str(code) for code, _ in systems], dtype="string")
    return pd.DataFrame(
        {
            "metropole_code": codes.array.take(distinct // (size * size)),
            "origin_code": places.array.take(distinct // size % size),
            "destination_code": places.array.take(distinct % size),
            "workers": workers,
        }
    )


def _main_destinations(flows: pd.DataFrame) -> pd.DataFrame:
    # The two largest EPCI destinations of each origin, other than itself: the
    # main "other" destination of e relative to M is the first that is not M.
    candidates = flows[
        (flows["origin_code"] != flows["destination_code"])
        & ~is_pseudo(flows["destination_code"])
        & ~is_pseudo(flows["origin_code"])
    ]
    ranked = candidates.sort_values(
        ["origin_code", "workers", "destination_code"], ascending=[True, False, True]
    )
    top = ranked.groupby("origin_code", sort=False).head(2).copy()
    top["rank"] = top.groupby("origin_code").cumcount()
    return top


def epci_totals(flows: pd.DataFrame) -> pd.DataFrame:
    """Sum each EPCI's flows once, for the indicators of every system it is in.

    Parameters
    ----------
    flows
        EPCI flows from :func:`flows_epci`.

    Returns
    -------
    pandas.DataFrame
        Indexed by EPCI code: ``employed_residents``, ``jobs``, ``internal_flow``,
        ``flow_abroad`` and the two largest destinations other than itself
        (``first_destination_code`` / ``_flow``, ``second_destination_code`` /
        ``_flow``).
    """
    residents = (
        flows[~is_pseudo(flows["origin_code"])].groupby("origin_code")["workers"].sum()
    )
    jobs = (
        flows[~is_pseudo(flows["destination_code"])]
        .groupby("destination_code")["workers"]
        .sum()
    )
    internal = flows[flows["origin_code"] == flows["destination_code"]].set_index(
        "origin_code"
    )["workers"]
    abroad = (
        flows[is_abroad(flows["destination_code"])]
        .groupby("origin_code")["workers"]
        .sum()
    )
    top = _main_destinations(flows)
    columns = {
        "employed_residents": residents,
        "jobs": jobs,
        "internal_flow": internal,
        "flow_abroad": abroad,
    }
    for rank, name in ((0, "first"), (1, "second")):
        part = top[top["rank"] == rank].set_index("origin_code")
        columns[f"{name}_destination_code"] = part["destination_code"]
        columns[f"{name}_destination_flow"] = part["workers"]
    totals = pd.concat(columns, axis=1)
    totals.index = totals.index.astype("string")
    return totals


def _zero_if_missing(values: np.ndarray | pd.Series) -> np.ndarray:
    values = np.asarray(values, dtype="float64")
    return np.where(np.isnan(values), 0.0, values)


def _share(num: np.ndarray | pd.Series, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def system_indicators(
    pairs: CodedFlows,
    totals: pd.DataFrame,
    crowns: pd.DataFrame,
    thresholds: ReliabilitySection,
) -> pd.DataFrame:
    """Compute the indicators of the (métropole, EPCI) pairs of some systems.

    The pipeline calls it once per (vintage, métropole), possibly on a cluster.

    Parameters
    ----------
    pairs
        :func:`pair_flows` of the EPCI flows.
    totals
        :func:`epci_totals` of the same flows.
    crowns
        ``metropole_code``, ``epci_code``, ``crown`` of the systems wanted.
    thresholds
        INSEE's reliability thresholds.

    Returns
    -------
    pandas.DataFrame
        One row per crowns row with ``employed_residents``, ``jobs``,
        ``internal_flow``, ``flow_to_metropole``, ``flow_from_metropole``,
        ``flow_abroad``, the shares, ``reciprocity``, the main other destination
        and the reliability of the flows to and from the métropole. Relational
        indicators are missing for the métropole itself (crown 0), and shares are
        missing when their denominator is zero.
    """
    out = crowns[["metropole_code", "epci_code", "crown"]].reset_index(drop=True)
    e, m = out["epci_code"], out["metropole_code"]
    at = totals.index.get_indexer(pd.Index(e.astype("string")))

    def total(column: str) -> pd.Series:
        return pd.Series(totals[column].array.take(at, allow_fill=True))

    sums = {
        c: total(c).fillna(0.0).to_numpy(dtype="float64")
        for c in ("employed_residents", "jobs", "internal_flow", "flow_abroad")
    }
    to_m, from_m = pairs.between(e, m), pairs.between(m, e)
    is_metropole = (out["crown"] == 0).to_numpy()
    columns: dict[str, np.ndarray | pd.Series] = dict(sums)
    columns["flow_to_metropole"] = np.where(is_metropole, np.nan, to_m)
    columns["flow_from_metropole"] = np.where(is_metropole, np.nan, from_m)
    columns["dependence_share"] = _share(
        columns["flow_to_metropole"], sums["employed_residents"]
    )
    columns["attraction_share"] = _share(columns["flow_from_metropole"], sums["jobs"])
    hi = np.fmax(to_m, from_m)
    reciprocity = _share(np.fmin(to_m, from_m), hi)
    columns["reciprocity"] = np.where(is_metropole, np.nan, reciprocity)
    columns["self_containment_share"] = _share(
        sums["internal_flow"], sums["employed_residents"]
    )
    # The main "other" destination of e relative to M is its first that is not M.
    dest1, dest2 = total("first_destination_code"), total("second_destination_code")
    use_second = (dest1 == m).fillna(False).to_numpy(dtype=bool)
    code = dest1.mask(use_second, dest2).astype("string")
    flow = np.where(
        use_second,
        total("second_destination_flow").to_numpy(dtype="float64"),
        total("first_destination_flow").to_numpy(dtype="float64"),
    )
    flow = np.where(code.isna().to_numpy(), np.nan, _zero_if_missing(flow))
    columns["main_other_destination_code"] = code
    columns["main_other_destination_flow"] = flow
    columns["main_other_destination_share"] = _share(flow, sums["employed_residents"])
    for name in ("flow_to_metropole", "flow_from_metropole"):
        workers = pd.Series(_zero_if_missing(columns[name]))
        columns[f"{name}_reliability"] = reliability_class(workers, thresholds).mask(
            is_metropole
        )
    return pd.concat([out, pd.DataFrame(columns)], axis=1)
