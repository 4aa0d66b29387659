"""The flow matrix and the indicators of each métropole system (pure functions).

The EPCI flows of a vintage (:func:`observatory.systems.flows.flows_epci`) are
summed once per EPCI (:func:`epci_totals`) and coded once by pair
(:func:`pair_flows`); each métropole's indicators and matrix then only look
these up, so the pipeline can afford one task per (vintage, métropole). The
indicators follow ``docs/indicators.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatory.config import ReliabilitySection
from observatory.geography import (
    REST_OF_FRANCE,
    is_abroad,
    is_pseudo,
    text_array,
    text_values,
)
from observatory.systems.codebook import (
    CodedFlows,
    group_sum,
    in_set,
    positions,
    sorted_distinct,
)
from observatory.systems.flows import reliability_classes

#: The columns of a system's flow matrix.
MATRIX_COLUMNS = ["metropole_code", "origin_code", "destination_code", "workers"]

_REST_OF_FRANCE = pa.array([REST_OF_FRANCE], pa.large_string())


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
    metropoles = text_array(crowns["metropole_code"])
    systems = sorted_distinct(metropoles)  # as groupby sorts them
    if len(systems) == 0:
        return pd.DataFrame(columns=MATRIX_COLUMNS)
    system = positions(metropoles, systems)
    members = text_array(crowns["epci_code"])
    codes = text_array(flows.codes)
    places = sorted_distinct(pa.concat_arrays([codes, _REST_OF_FRANCE]))
    size = len(places)
    position = positions(codes, places)
    rest = int(positions(_REST_OF_FRANCE, places)[0])
    keep = is_pseudo(flows.codes).to_numpy(dtype=bool)
    keys, rows = [], []
    for rank in range(len(systems)):
        inside = in_set(codes, members.filter(system == rank)) | keep
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
    return pd.DataFrame(
        {
            "metropole_code": text_values(systems.take(distinct // (size * size))),
            "origin_code": text_values(places.take(distinct // size % size)),
            "destination_code": text_values(places.take(distinct % size)),
            "workers": workers,
        }
    )


def _sums(flows: CodedFlows, rows: np.ndarray, by: np.ndarray, name: str) -> pd.Series:
    # pandas' groupby sum of the ``rows``' workers by code (positions ``by``):
    # the codes sort as their positions, so the figures are those of grouping
    # the code strings, to the bit.
    sums = pd.Series(flows.workers[rows]).groupby(by[rows]).sum()
    index = pd.Index(flows.codes.array.take(sums.index.to_numpy()), name=name)
    return pd.Series(sums.to_numpy(), index=index, name="workers")


def _main_destinations(flows: CodedFlows, pseudo: np.ndarray) -> list[np.ndarray]:
    # The two largest EPCI destinations of each origin, other than itself: the
    # main "other" destination of e relative to M is the first that is not M.
    # Returns the rows of the first and of the second, origins in order.
    o, d = flows.origin, flows.destination
    candidates = np.flatnonzero((o != d) & ~pseudo[d] & ~pseudo[o])
    # By origin, workers (largest first), destination: a total order of pairs.
    ranked = candidates[
        np.lexsort((d[candidates], -flows.workers[candidates], o[candidates]))
    ]
    origins = o[ranked]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = origins[1:] != origins[:-1]
    second = np.zeros(len(ranked), dtype=bool)
    second[1:] = first[:-1] & ~first[1:]
    return [ranked[first], ranked[second]]


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
    return coded_epci_totals(
        CodedFlows.from_frame(flows, "origin_code", "destination_code")
    )


def coded_epci_totals(flows: CodedFlows) -> pd.DataFrame:
    """:func:`epci_totals` of EPCI flows coded by :class:`CodedFlows` (rows in order)."""
    o, d = flows.origin, flows.destination
    pseudo = is_pseudo(flows.codes).to_numpy(dtype=bool)
    abroad = is_abroad(flows.codes).to_numpy(dtype=bool)
    internal = np.flatnonzero(o == d)
    columns = {
        "employed_residents": _sums(flows, ~pseudo[o], o, "origin_code"),
        "jobs": _sums(flows, ~pseudo[d], d, "destination_code"),
        "internal_flow": pd.Series(
            flows.workers[internal],
            index=pd.Index(flows.codes.array.take(o[internal]), name="origin_code"),
            name="workers",
        ),
        "flow_abroad": _sums(flows, abroad[d], o, "origin_code"),
    }
    ranks = _main_destinations(flows, pseudo)
    for rows, name in zip(ranks, ("first", "second"), strict=True):
        index = pd.Index(flows.codes.array.take(o[rows]), name="origin_code")
        columns[f"{name}_destination_code"] = pd.Series(
            flows.codes.array.take(d[rows]), index=index, name="destination_code"
        )
        columns[f"{name}_destination_flow"] = pd.Series(
            flows.workers[rows], index=index, name="workers"
        )
    totals = pd.concat(columns, axis=1)
    totals.index = totals.index.astype("string")
    return totals


#: The figures of :func:`epci_totals` that each system looks up.
_FIGURES = (
    "employed_residents",
    "jobs",
    "internal_flow",
    "flow_abroad",
    "first_destination_flow",
    "second_destination_flow",
)


@dataclass(frozen=True, slots=True)
class TotalsLookup:
    """:func:`epci_totals` as arrays, for each system to look up by position.

    Row ``i`` of ``figures`` (the columns of :data:`_FIGURES`), ``first`` and
    ``second`` (the two largest destinations) is that of ``codes[i]``; the last
    row of ``figures``, all missing, is that of an EPCI without flows (position
    -1).
    """

    codes: pa.Array
    figures: np.ndarray
    first: pa.Array
    second: pa.Array


def totals_lookup(totals: pd.DataFrame) -> TotalsLookup:
    """Lay out :func:`epci_totals` for :func:`coded_system_indicators`."""
    missing = np.full((1, len(_FIGURES)), np.nan)
    figures = totals[list(_FIGURES)].to_numpy(dtype="float64")
    return TotalsLookup(
        text_array(totals.index),
        np.vstack([figures, missing]),
        text_array(totals["first_destination_code"]),
        text_array(totals["second_destination_code"]),
    )


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
    return coded_system_indicators(pairs, totals_lookup(totals), crowns, thresholds)


def coded_system_indicators(
    pairs: CodedFlows,
    totals: TotalsLookup,
    crowns: pd.DataFrame,
    thresholds: ReliabilitySection,
) -> pd.DataFrame:
    """:func:`system_indicators` with the totals laid out by :func:`totals_lookup`.

    The pipeline calls it once per (vintage, métropole), possibly on a cluster:
    codes are looked up once each, the figures taken by position.
    """
    e, m = crowns["epci_code"], crowns["metropole_code"]
    e_text, m_text, book = text_array(e), text_array(m), text_array(pairs.codes)
    at = positions(e_text, totals.codes)  # -1: an EPCI without flows, NaN
    total = dict(zip(_FIGURES, totals.figures[at].T, strict=True))
    sums = {c: _zero_if_missing(total[c]) for c in _FIGURES[:4]}
    at_e, at_m = positions(e_text, book), positions(m_text, book)
    to_m, from_m = pairs.workers_at(at_e, at_m), pairs.workers_at(at_m, at_e)
    crown = crowns["crown"]
    is_metropole = np.asarray(crown.to_numpy() == 0, dtype=bool)
    columns: dict[str, Any] = {
        "metropole_code": m.array,
        "epci_code": e.array,
        "crown": crown.array,
        **sums,
    }
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
    where = pa.array(at, mask=at < 0)  # null: an EPCI without flows
    first, second = totals.first.take(where), totals.second.take(where)
    use_second = pc.fill_null(pc.equal(first, m_text), False)
    code = pc.if_else(use_second, second, first)
    flow = np.where(
        use_second.to_numpy(zero_copy_only=False),
        total["second_destination_flow"],
        total["first_destination_flow"],
    )
    flow = np.where(
        pc.is_null(code).to_numpy(zero_copy_only=False), np.nan, _zero_if_missing(flow)
    )
    columns["main_other_destination_code"] = text_values(code)
    columns["main_other_destination_flow"] = flow
    columns["main_other_destination_share"] = _share(flow, sums["employed_residents"])
    for name in ("flow_to_metropole", "flow_from_metropole"):
        workers = _zero_if_missing(columns[name])
        columns[f"{name}_reliability"] = reliability_classes(
            workers, thresholds, missing=is_metropole
        )
    return pd.DataFrame(columns)
