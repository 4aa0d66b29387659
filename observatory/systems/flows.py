"""Commune flows to EPCI flows, the reliability of counts, two vintages side by side.

Flows are a long table ``(origin_code, destination_code) -> workers``; a matrix is
only a view of it. Besides EPCI SIREN, a place can be one of the pseudo-codes
``ABROAD-<country>`` (work place outside France, see :func:`abroad_code`), :data:`UNMATCHED` (a commune code
found in no EPCI of the composition: counted and reported, never dropped) and,
in a métropole system's matrix, ``REST_OF_FRANCE``. The matrix and indicators
of each system are :mod:`observatory.systems.indicators`'.

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
    UNMATCHED,
    is_abroad,
    is_abroad_code,
    on_distinct,
    rollup_arrondissements,
)
from observatory.systems.codebook import CodedFlows

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

    def place(codes: pd.Series) -> pd.Series:
        return _place_of(codes, commune_epci)

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
    origin: pd.Series, destination: pd.Series, workers: pd.Series, at: np.ndarray
) -> dict[str, float]:
    # Workers on the rows touching each unmatched code (an internal flow once);
    # the rows are those with an unmatched end, ``at`` says which end (o, d).
    at_o = at[:, 0]
    at_d = at[:, 1] & ~(at_o & (origin == destination).to_numpy())
    codes = pd.concat([origin[at_o], destination[at_d]], ignore_index=True)
    sums = (
        pd.concat([workers[at_o], workers[at_d]], ignore_index=True)
        .groupby(codes)
        .sum()
    )
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
    flows, report = coded_flows_epci(CodedFlows.from_frame(commune_flows), commune_epci)
    return flows.frame("origin_code", "destination_code"), report


def _place_of(communes: pd.Series, commune_epci: pd.DataFrame) -> pd.Series:
    # The place of each (rolled-up) commune code: its EPCI, abroad or unmatched.
    lookup = pd.Series(
        commune_epci["epci_code"].to_numpy(),
        index=commune_epci["commune_code"].to_numpy(),
    )
    return (
        communes.map(lookup)
        .mask(is_abroad_code(communes), ABROAD_PREFIX + communes.astype("string"))
        .fillna(UNMATCHED)
        .astype("string")
    )


def coded_flows_epci(
    flows: CodedFlows, commune_epci: pd.DataFrame
) -> tuple[CodedFlows, FlowsReport]:
    """:func:`flows_epci` of commune flows coded in a book (the pipeline's way).

    Codes are rolled up and placed once per code of the book. Returns the EPCI
    flows coded in a book of places, summed (one row per pair, sorted), and the
    report: the figures :func:`flows_epci` gives on the same flows as a table.
    """
    rolled = rollup_arrondissements(flows.codes)
    communes = flows.recoded(rolled)
    places = flows.recoded(_place_of(rolled, commune_epci))
    epci = places.summed()
    changed = (rolled != flows.codes).to_numpy()
    unmatched_place = (places.codes == UNMATCHED).to_numpy()
    at = np.column_stack(
        [unmatched_place[places.origin], unmatched_place[places.destination]]
    )
    abroad = is_abroad(places.codes).to_numpy()[places.destination]
    touching = np.asarray(at.any(axis=1), dtype=bool)  # rows with an end unmatched
    workers = pd.Series(flows.workers)
    total = float(workers.sum())
    lost = float(workers[touching].sum())

    def _by_code(mask: np.ndarray, side: int) -> dict[str, float]:
        codes = communes.ends(mask)[side]
        sums = (
            pd.Series(flows.workers[mask])
            .groupby(codes)
            .sum()
            .sort_values(ascending=False)
        )
        return {str(k): round(float(v), 3) for k, v in sums.items()}

    report: FlowsReport = {
        "commune_pairs": len(flows),
        "epci_pairs": len(epci),
        "workers_total": round(total, 3),
        "rows_with_arrondissements_rolled_up": int(
            (changed[flows.origin] | changed[flows.destination]).sum()
        ),
        "workers_abroad": round(float(workers[abroad].sum()), 3),
        "workers_abroad_by_code": _by_code(abroad, 1),
        "unmatched_origin_workers": round(float(workers[at[:, 0]].sum()), 3),
        "unmatched_origin_codes": _by_code(at[:, 0], 0),
        "unmatched_destination_workers": round(float(workers[at[:, 1]].sum()), 3),
        "unmatched_destination_codes": _by_code(at[:, 1], 1),
        "unmatched_workers": round(lost, 3),
        "unmatched_share": lost / total if total > 0 else 0.0,
        "unmatched_largest": _largest(
            *communes.ends(touching),
            pd.Series(flows.workers[touching]),
            at[touching],
        ),
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
    return epci, report


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
