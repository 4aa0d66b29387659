"""Commune flows to EPCI flows, system matrices and indicators (pure functions).

Flows are a long table ``(origin_code, destination_code) -> workers``; a matrix is
only a view of it. Besides EPCI SIREN, a place can be one of the pseudo-codes
``ABROAD-<country>`` (work place outside France, see :func:`abroad_code`), :data:`UNMATCHED` (a commune code
found in no EPCI of the composition: counted and reported, never dropped) and,
in a métropole system's matrix, :data:`REST_OF_FRANCE`.

Indicators follow ``docs/indicators.md``: for an EPCI ``e`` around a métropole
``M``, ``dependence_share = F(e->M) / employed residents of e``,
``attraction_share = F(M->e) / jobs in e``, ``reciprocity = min/max`` of the two
flows, ``self_containment_share = F(e->e) / employed residents of e``. Flows by
mode (FD_MOBPRO) give each EPCI pair its modal shares and distances
(:func:`pair_modes`), and the flows to and from the métropole theirs.
"""

from __future__ import annotations

import logging
from typing import TypedDict

import numpy as np
import pandas as pd

from observatory.config import ReliabilitySection
from observatory.geography import (
    ABROAD_PREFIX,
    REST_OF_FRANCE,
    UNMATCHED,
    is_abroad,
    is_abroad_code,
    is_pseudo,
    on_distinct,
    rollup_arrondissements,
)

logger = logging.getLogger(__name__)


RELIABLE = "reliable"
USABLE = "usable"
ORDER_OF_MAGNITUDE = "order_of_magnitude"


def reliability_class(workers: pd.Series, thresholds: ReliabilitySection) -> pd.Series:
    """Flag weighted counts with INSEE's rule.

    Returns ``"reliable"`` from ``reliable_min`` (500) workers, ``"usable"`` from
    ``usable_min`` (200), ``"order_of_magnitude"`` below: such a count is only an
    order of magnitude and must not be presented as exact.
    """
    values = np.select(
        [workers >= thresholds.reliable_min, workers >= thresholds.usable_min],
        [RELIABLE, USABLE],
        default=ORDER_OF_MAGNITUDE,
    )
    return pd.Series(values, index=workers.index, dtype="string")


def epci_places(
    origin_commune: pd.Series,
    destination_commune: pd.Series,
    commune_epci: pd.DataFrame,
) -> pd.DataFrame:
    """Place each end of commune flows in its EPCI (or abroad, or unmatched).

    Arrondissements roll up to their commune first. Returns the rolled-up
    ``origin_commune`` and ``destination_commune`` and the places
    ``origin_code`` and ``destination_code``, on the input's index.
    """
    origin = rollup_arrondissements(origin_commune)
    destination = rollup_arrondissements(destination_commune)
    lookup = pd.Series(
        commune_epci["epci_code"].to_numpy(),
        index=commune_epci["commune_code"].to_numpy(),
    )

    def place(codes: pd.Series) -> pd.Series:
        return (
            codes.map(lookup)
            .mask(is_abroad_code(codes), ABROAD_PREFIX + codes.astype("string"))
            .fillna(UNMATCHED)
            .astype("string")
        )

    return pd.DataFrame(
        {
            "origin_commune": origin,
            "destination_commune": destination,
            "origin_code": on_distinct(origin, place),
            "destination_code": on_distinct(destination, place),
        }
    )


def flows_epci_by_mode(
    commune_flows: pd.DataFrame, commune_epci: pd.DataFrame
) -> pd.DataFrame:
    """Aggregate commune flows by mode into EPCI flows by mode.

    Parameters
    ----------
    commune_flows
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers`` and
        ``person_km`` (:func:`observatory.systems.distances.person_km`).
    commune_epci
        ``commune_code``, ``epci_code``.

    Returns
    -------
    pandas.DataFrame
        ``origin_code``, ``destination_code``, ``mode``, ``workers``,
        ``person_km`` (places as in :func:`flows_epci`).
    """
    places = epci_places(
        commune_flows["origin_commune"],
        commune_flows["destination_commune"],
        commune_epci,
    )
    table = places[["origin_code", "destination_code"]].assign(
        mode=commune_flows["mode"].astype("string"),
        workers=commune_flows["workers"].astype("float64"),
        person_km=commune_flows["person_km"].astype("float64"),
    )
    return table.groupby(
        ["origin_code", "destination_code", "mode"], as_index=False, sort=True
    )[["workers", "person_km"]].sum(min_count=1)


class FlowsReport(TypedDict):
    """What :func:`flows_epci` summed, and what it could not place (the manifest's record)."""

    commune_pairs: int
    epci_pairs: int
    workers_total: float
    rows_with_arrondissements_rolled_up: int
    workers_abroad: float
    workers_abroad_by_code: dict[str, float]
    unmatched_origin_workers: float
    unmatched_origin_codes: dict[str, float]
    unmatched_destination_workers: float
    unmatched_destination_codes: dict[str, float]
    unmatched_workers: float  # on the rows with an end unmatched, counted once
    unmatched_share: float  # of workers_total
    unmatched_largest: dict[str, float]  # UNMATCHED_LISTED codes, largest first


#: How many unmatched codes the report lists in ``unmatched_largest``.
UNMATCHED_LISTED = 10


def _largest(
    origin: pd.Series, destination: pd.Series, workers: pd.Series, places: pd.DataFrame
) -> dict[str, float]:
    # Workers on the rows touching each unmatched code (an internal flow once).
    at_o = places["origin_code"] == UNMATCHED
    at_d = (places["destination_code"] == UNMATCHED) & ~(at_o & (origin == destination))
    codes = pd.concat([origin[at_o], destination[at_d]])
    sums = pd.concat([workers[at_o], workers[at_d]]).groupby(codes).sum()
    order = sorted(sums.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return {str(k): round(float(v), 3) for k, v in order[:UNMATCHED_LISTED]}


def unmatched(report: FlowsReport) -> list[tuple[str, dict[str, float], float]]:
    """Return ``(side, codes, workers)`` of the unmatched origin and destination codes."""
    r = report
    return [
        ("origin", r["unmatched_origin_codes"], r["unmatched_origin_workers"]),
        (
            "destination",
            r["unmatched_destination_codes"],
            r["unmatched_destination_workers"],
        ),
    ]


def flows_epci(
    commune_flows: pd.DataFrame, commune_epci: pd.DataFrame
) -> tuple[pd.DataFrame, FlowsReport]:
    """Aggregate commune-to-commune flows into EPCI-to-EPCI flows.

    Parameters
    ----------
    commune_flows
        ``origin_commune``, ``destination_commune``, ``workers``; arrondissements
        of Paris, Lyon and Marseille may appear and are rolled up to their commune.
    commune_epci
        ``commune_code``, ``epci_code`` (INSEE's composition).

    Returns
    -------
    tuple
        The long table (``origin_code``, ``destination_code``, ``workers``) with
        ``ABROAD-<country code>`` places (INSEE country code as given in the file,
        see :func:`abroad_code`) and :data:`UNMATCHED`, and a report: totals, rolled-up
        rows, workers abroad by code, unmatched codes with their workers.
    """
    places = epci_places(
        commune_flows["origin_commune"],
        commune_flows["destination_commune"],
        commune_epci,
    )
    origin, destination = places["origin_commune"], places["destination_commune"]
    rolled = int(
        (
            (origin != commune_flows["origin_commune"])
            | (destination != commune_flows["destination_commune"])
        ).sum()
    )
    abroad = is_abroad(places["destination_code"])
    unmatched_origin = places["origin_code"] == UNMATCHED
    unmatched_destination = places["destination_code"] == UNMATCHED
    workers = commune_flows["workers"].astype("float64")
    table = places[["origin_code", "destination_code"]].assign(workers=workers)
    flows = table.groupby(
        ["origin_code", "destination_code"], as_index=False, sort=True
    )[["workers"]].sum()
    total = float(workers.sum())
    lost = float(workers[unmatched_origin | unmatched_destination].sum())

    def _by_code(mask: pd.Series, codes: pd.Series) -> dict[str, float]:
        sums = workers[mask].groupby(codes[mask]).sum().sort_values(ascending=False)
        return {str(k): round(float(v), 3) for k, v in sums.items()}

    report: FlowsReport = {
        "commune_pairs": len(commune_flows),
        "epci_pairs": len(flows),
        "workers_total": round(total, 3),
        "rows_with_arrondissements_rolled_up": rolled,
        "workers_abroad": round(float(workers[abroad].sum()), 3),
        "workers_abroad_by_code": _by_code(abroad, destination),
        "unmatched_origin_workers": round(float(workers[unmatched_origin].sum()), 3),
        "unmatched_origin_codes": _by_code(unmatched_origin, origin),
        "unmatched_destination_workers": round(
            float(workers[unmatched_destination].sum()), 3
        ),
        "unmatched_destination_codes": _by_code(unmatched_destination, destination),
        "unmatched_workers": round(lost, 3),
        "unmatched_share": lost / total if total > 0 else 0.0,
        "unmatched_largest": _largest(origin, destination, workers, places),
    }
    for side, codes, side_workers in unmatched(report):
        if codes:
            logger.warning(
                "%d %s commune code(s) match no EPCI of the composition (%.1f workers kept as %s): %s",
                len(codes),
                side,
                side_workers,
                UNMATCHED,
                ", ".join(list(codes)[:10]),
            )
    return flows, report


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
    frames = []
    for metropole, members in crowns.groupby("metropole_code", sort=True):
        inside = set(members["epci_code"])
        o_in = flows["origin_code"].isin(inside)
        d_in = flows["destination_code"].isin(inside)
        part = flows[o_in | d_in]
        outside_o = ~part["origin_code"].isin(inside) & ~is_pseudo(part["origin_code"])
        outside_d = ~part["destination_code"].isin(inside) & ~is_pseudo(
            part["destination_code"]
        )
        frames.append(
            pd.DataFrame(
                {
                    "metropole_code": metropole,
                    "origin_code": part["origin_code"].mask(outside_o, REST_OF_FRANCE),
                    "destination_code": part["destination_code"].mask(
                        outside_d, REST_OF_FRANCE
                    ),
                    "workers": part["workers"],
                }
            )
        )
    columns = ["metropole_code", "origin_code", "destination_code", "workers"]
    if not frames:
        return pd.DataFrame(columns=columns)
    matrix = (
        pd.concat(frames, ignore_index=True)
        .groupby(columns[:3], as_index=False, sort=True)[["workers"]]
        .sum()
    )
    matrix[columns[:3]] = matrix[columns[:3]].astype("string")
    return matrix


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


def pair_flows(flows: pd.DataFrame) -> pd.Series:
    """Return the workers of :func:`flows_epci` indexed by (origin, destination)."""
    return flows.set_index(["origin_code", "destination_code"])["workers"]


def system_indicators(
    pairs: pd.Series,
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
    out = crowns[["metropole_code", "epci_code", "crown"]].copy()
    e, m = out["epci_code"], out["metropole_code"]
    for column in ("employed_residents", "jobs", "internal_flow", "flow_abroad"):
        out[column] = e.map(totals[column]).fillna(0.0).astype("float64")
    to_m = pairs.reindex(pd.MultiIndex.from_arrays([e, m])).fillna(0.0).to_numpy()
    from_m = pairs.reindex(pd.MultiIndex.from_arrays([m, e])).fillna(0.0).to_numpy()
    is_metropole = (out["crown"] == 0).to_numpy()
    out["flow_to_metropole"] = np.where(is_metropole, np.nan, to_m)
    out["flow_from_metropole"] = np.where(is_metropole, np.nan, from_m)

    def _share(num: pd.Series | np.ndarray, den: pd.Series) -> np.ndarray:
        den_v = den.to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den_v > 0, np.asarray(num, dtype="float64") / den_v, np.nan)

    out["dependence_share"] = _share(
        out["flow_to_metropole"], out["employed_residents"]
    )
    out["attraction_share"] = _share(out["flow_from_metropole"], out["jobs"])
    hi = np.fmax(to_m, from_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        reciprocity = np.where(hi > 0, np.fmin(to_m, from_m) / hi, np.nan)
    out["reciprocity"] = np.where(is_metropole, np.nan, reciprocity)
    out["self_containment_share"] = _share(
        out["internal_flow"], out["employed_residents"]
    )

    # The main "other" destination of e relative to M is its first that is not M.
    dest1 = e.map(totals["first_destination_code"])
    dest2 = e.map(totals["second_destination_code"])
    flow1 = e.map(totals["first_destination_flow"])
    flow2 = e.map(totals["second_destination_flow"])
    use_second = (dest1 == m).fillna(False).to_numpy()
    out["main_other_destination_code"] = dest1.mask(use_second, dest2).astype("string")
    out["main_other_destination_flow"] = (
        flow1.mask(use_second, flow2).fillna(0.0).astype("float64").to_numpy()
    )
    out.loc[
        out["main_other_destination_code"].isna(), "main_other_destination_flow"
    ] = np.nan
    out["main_other_destination_share"] = _share(
        out["main_other_destination_flow"], out["employed_residents"]
    )
    for column in ("flow_to_metropole", "flow_from_metropole"):
        out[f"{column}_reliability"] = reliability_class(
            out[column].fillna(0.0), thresholds
        ).mask(is_metropole)
    return out.reset_index(drop=True)


#: Indicators compared between two census vintages.
CHANGE_COLUMNS = (
    "employed_residents",
    "jobs",
    "flow_to_metropole",
    "flow_from_metropole",
    "dependence_share",
    "attraction_share",
    "self_containment_share",
)


def compare_vintages(
    indicators: pd.DataFrame, previous: pd.DataFrame | None
) -> pd.DataFrame:
    """Add each indicator of an earlier vintage and the change since then.

    Parameters
    ----------
    indicators
        Indicators of the current vintage (:func:`system_indicators`).
    previous
        Indicators of the earlier vintage computed on the same crowns and the same
        geography, or None: the columns are then present and empty, so that the
        layers keep the same columns whatever the config.

    Returns
    -------
    pandas.DataFrame
        ``indicators`` with ``<indicator>_previous`` and ``<indicator>_change``
        (now minus then; shares change in points of share) for
        :data:`CHANGE_COLUMNS`.
    """
    out = indicators.copy()
    keys = ["metropole_code", "epci_code"]
    if previous is None:
        then = pd.DataFrame(
            index=out.index, columns=list(CHANGE_COLUMNS), dtype="float64"
        )
    else:
        then = out[keys].merge(previous[[*keys, *CHANGE_COLUMNS]], on=keys, how="left")
    for column in CHANGE_COLUMNS:
        before = then[column].to_numpy(dtype="float64")
        out[f"{column}_previous"] = before
        out[f"{column}_change"] = out[column].to_numpy(dtype="float64") - before
    return out


def flows_with_previous(
    flows: pd.DataFrame, previous: pd.DataFrame | None
) -> pd.DataFrame:
    """Put the flows of an earlier vintage beside the current ones, pair by pair.

    Returns the union of the pairs of both vintages with ``workers`` (0 for a pair
    gone since), ``workers_previous`` (0 for a new pair; missing when there is no
    earlier vintage) and ``workers_change``.
    """
    keys = ["origin_code", "destination_code"]
    if previous is None:
        out = flows.copy()
        out["workers_previous"] = np.nan
    else:
        out = flows.merge(
            previous[[*keys, "workers"]].rename(
                columns={"workers": "workers_previous"}
            ),
            on=keys,
            how="outer",
        )
        out["workers"] = out["workers"].fillna(0.0)
        out["workers_previous"] = out["workers_previous"].fillna(0.0)
    out["workers_change"] = out["workers"] - out["workers_previous"]
    return out.sort_values(keys, ignore_index=True)
