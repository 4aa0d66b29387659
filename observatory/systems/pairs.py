"""Measures of EPCI pairs and of whole systems (pure functions).

For a flow F(i -> j) between two EPCI (origin i of residence, destination j of
work), after R's ``cartograflow`` (Bahoken): the reverse flow F(j -> i), the gross
flow F(i -> j) + F(j -> i), the net flow F(i -> j) - F(j -> i) (positive when i
sends more than it receives; ``cartograflow`` documents FBij = Fij - Fji) and the
asymmetry net / gross, in [-1, 1]. The interaction intensity normalises the flow
by the two sizes:

    intensity(i, j) = F(i -> j) / sqrt(O_i * D_j)

with O_i the employed residents of i and D_j the jobs in j. It lies in [0, 1]
(F <= O_i and F <= D_j), equals the geometric mean of the share of i's residents
who go to j (``dependence_share`` when j is the métropole) and of the share of
j's jobs they hold, and does not depend on the rest of
the table, so that a regional extract and the whole of France give the same
value (an index against independence, F * T / (O_i * D_j), changes with the
table's total T).

Per system (a métropole and the EPCI of its crowns, or of any member list):
polycentricity, the share of the flows between two different EPCI of the system
that link two crown EPCI (neither end the métropole), and self-containment, the
share of the system's employed residents who work in it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.geography import is_pseudo
from observatory.systems.codebook import CodedFlows, group_sum

_PAIR = ["origin_code", "destination_code"]


def _coded(flows: pd.DataFrame) -> tuple[CodedFlows, np.ndarray, np.ndarray]:
    """Code the flows' ends; the employed residents and jobs of each code of the book.

    A size is pandas' groupby sum of the rows from (to) the code, in row order
    (:func:`~observatory.systems.codebook.group_sum`); NaN for a pseudo-place
    and for a code with no such row.

    Raises
    ------
    DataError
        When a flow lacks its origin or destination code.
    """
    coded = CodedFlows.from_frame(flows, *_PAIR)
    pseudo = is_pseudo(coded.codes).to_numpy(dtype=bool)
    sizes = []
    for ends in (coded.origin, coded.destination):
        keep = ~pseudo[ends]
        keys, sums = group_sum(ends[keep], coded.workers[keep])
        size = np.full(len(coded.codes), np.nan)
        size[keys] = sums
        sizes.append(size)
    return coded, sizes[0], sizes[1]


def _at(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    # values[positions], NaN where a position is -1 (a code not in the book).
    return np.where(positions >= 0, values[positions], np.nan)


def pair_measures(
    flows: pd.DataFrame, lines: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Add the reverse, gross and net flows, asymmetry and intensity to flow lines.

    Parameters
    ----------
    flows
        EPCI flows of the whole territory (``origin_code``, ``destination_code``,
        ``workers``), from :func:`observatory.systems.flows.flows_epci`: reverse
        flows and sizes are looked up there.
    lines
        The lines to measure (any frame with ``origin_code``, ``destination_code``
        and ``workers``, e.g. a system's flow matrix); ``flows`` itself by default.

    Returns
    -------
    pandas.DataFrame
        ``lines`` with ``reverse_workers`` (F(j -> i)), ``gross_flow``,
        ``net_flow``, ``asymmetry`` and ``interaction_intensity``. They are
        missing on a line with a pseudo-place at either end (rest of France,
        abroad, unmatched) and on an internal flow (i = j), where a pair has no
        meaning; the intensity is missing too when a size is zero.
    """
    out = (flows if lines is None else lines).copy()
    pair = (
        ~is_pseudo(out["origin_code"])
        & ~is_pseudo(out["destination_code"])
        & (out["origin_code"] != out["destination_code"])
    ).to_numpy(dtype=bool)
    workers = out["workers"].to_numpy(dtype="float64")
    coded, residents, jobs = _coded(flows)
    # The reverse flow F(j -> i): pairs summed as a groupby on both codes would.
    back = coded.summed().between(out["destination_code"], out["origin_code"])
    gross = workers + back
    net = workers - back
    book = pd.Index(coded.codes)
    o, d = (book.get_indexer(pd.Index(out[c].astype("string"))) for c in _PAIR)
    size = _at(residents, o) * _at(jobs, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        asymmetry = np.where(gross > 0, net / gross, np.nan)
        intensity = np.where(size > 0, workers / np.sqrt(size), np.nan)
    for name, values in (
        ("reverse_workers", back),
        ("gross_flow", gross),
        ("net_flow", net),
        ("asymmetry", asymmetry),
        ("interaction_intensity", intensity),
    ):
        out[name] = np.where(pair, values, np.nan)
    return out


def system_measures(flows: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Polycentricity and self-containment of each métropole's system.

    Parameters
    ----------
    flows
        EPCI flows of the whole territory (:func:`pair_measures`).
    members
        ``metropole_code``, ``epci_code``: the EPCI of each system, the métropole
        included (contiguity crowns, or the members of
        :func:`observatory.systems.functional.system_members`).

    Returns
    -------
    pandas.DataFrame
        One row per métropole: ``members`` (EPCI, the métropole included),
        ``employed_residents`` and ``jobs`` of the system, ``internal_workers``
        (living and working in the system, each EPCI's internal flow included),
        ``between_epci_flow`` (between two different EPCI of the system),
        ``between_crown_flow`` (the part of it that touches no métropole),
        ``polycentricity_share`` (between_crown_flow / between_epci_flow),
        ``self_containment_share`` (internal_workers / employed_residents) and
        ``job_containment_share`` (internal_workers / jobs). A share with a zero
        denominator is missing.
    """
    coded, residents, jobs = _coded(flows)
    # Each end is a position in the sorted book of codes, so that a system's
    # rows are found by numpy lookups rather than string tests.
    book = pd.Index(coded.codes)
    o, d, workers = coded.origin, coded.destination, coded.workers
    sizes = {
        "employed_residents": np.where(np.isnan(residents), 0.0, residents),
        "jobs": np.where(np.isnan(jobs), 0.0, jobs),
    }
    records = []
    for metropole, part in members.groupby("metropole_code", sort=True):
        # Sorted, not a set's order: float sums must not change from run to run.
        inside = sorted(set(part["epci_code"]))
        at = book.get_indexer(pd.Index(inside, dtype="string"))
        member = np.zeros(len(book), dtype=bool)
        member[at[at >= 0]] = True
        within = member[o] & member[d]
        between = within & (o != d)
        me = book.get_indexer(pd.Index([metropole], dtype="string"))[0]
        crown = between & (o != me) & (d != me) if me >= 0 else between
        system = {
            name: float(np.where(at >= 0, size[at], 0.0).sum())
            for name, size in sizes.items()
        }
        # numpy sums of the selected rows, in row order, as pandas' Series.sum.
        internal = float(workers[within].sum())
        between_flow = float(workers[between].sum())
        crown_flow = float(workers[crown].sum())
        records.append(
            {
                "metropole_code": metropole,
                "members": len(inside),
                **system,
                "internal_workers": internal,
                "between_epci_flow": between_flow,
                "between_crown_flow": crown_flow,
                "polycentricity_share": _ratio(crown_flow, between_flow),
                "self_containment_share": _ratio(
                    internal, system["employed_residents"]
                ),
                "job_containment_share": _ratio(internal, system["jobs"]),
            }
        )
    out = pd.DataFrame.from_records(records)
    if not out.empty:
        out["metropole_code"] = out["metropole_code"].astype("string")
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")
