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

_PAIR = ["origin_code", "destination_code"]


def _sizes(flows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Employed residents by origin EPCI and jobs by destination EPCI."""
    residents = (
        flows[~is_pseudo(flows["origin_code"])].groupby("origin_code")["workers"].sum()
    )
    jobs = (
        flows[~is_pseudo(flows["destination_code"])]
        .groupby("destination_code")["workers"]
        .sum()
    )
    return residents.astype("float64"), jobs.astype("float64")


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
    reverse = flows.set_index(_PAIR)["workers"].groupby(level=[0, 1]).sum()
    keys = pd.MultiIndex.from_arrays([out["destination_code"], out["origin_code"]])
    pair = (
        ~is_pseudo(out["origin_code"])
        & ~is_pseudo(out["destination_code"])
        & (out["origin_code"] != out["destination_code"])
    ).to_numpy(dtype=bool)
    workers = out["workers"].to_numpy(dtype="float64")
    back = reverse.reindex(keys).fillna(0.0).to_numpy(dtype="float64")
    gross = workers + back
    net = workers - back
    residents, jobs = _sizes(flows)
    size = out["origin_code"].map(residents).to_numpy(dtype="float64") * out[
        "destination_code"
    ].map(jobs).to_numpy(dtype="float64")
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
    residents, jobs = _sizes(flows)
    records = []
    for metropole, part in members.groupby("metropole_code", sort=True):
        # Sorted, not a set's order: float sums must not change from run to run.
        inside = sorted(set(part["epci_code"]))
        within = flows[
            flows["origin_code"].isin(inside) & flows["destination_code"].isin(inside)
        ]
        between = within[within["origin_code"] != within["destination_code"]]
        crown = between[
            (between["origin_code"] != metropole)
            & (between["destination_code"] != metropole)
        ]
        system_residents = float(residents.reindex(inside).fillna(0.0).sum())
        system_jobs = float(jobs.reindex(inside).fillna(0.0).sum())
        internal = float(within["workers"].sum())
        between_flow = float(between["workers"].sum())
        records.append(
            {
                "metropole_code": metropole,
                "members": len(inside),
                "employed_residents": system_residents,
                "jobs": system_jobs,
                "internal_workers": internal,
                "between_epci_flow": between_flow,
                "between_crown_flow": float(crown["workers"].sum()),
                "polycentricity_share": _ratio(
                    float(crown["workers"].sum()), between_flow
                ),
                "self_containment_share": _ratio(internal, system_residents),
                "job_containment_share": _ratio(internal, system_jobs),
            }
        )
    out = pd.DataFrame.from_records(records)
    if not out.empty:
        out["metropole_code"] = out["metropole_code"].astype("string")
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")
