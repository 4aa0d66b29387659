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
import pyarrow as pa
import pyarrow.compute as pc

from observatory.config import ReliabilitySection
from observatory.core.errors import DataError
from observatory.geography import (
    ABROAD_PREFIX,
    UNMATCHED,
    is_abroad,
    is_abroad_code,
    on_distinct,
    rollup_arrondissements,
    text_array,
    text_values,
)
from observatory.systems.codebook import (
    CodedFlows,
    positions,
    positions_in,
    sorted_distinct,
)

logger = logging.getLogger(__name__)


RELIABLE = "reliable"
USABLE = "usable"
ORDER_OF_MAGNITUDE = "order_of_magnitude"


_CLASSES = pa.array([RELIABLE, USABLE, ORDER_OF_MAGNITUDE], pa.large_string())


def reliability_class(workers: pd.Series, thresholds: ReliabilitySection) -> pd.Series:
    """Flag weighted counts with INSEE's rule.

    Returns ``"reliable"`` from ``reliable_min`` (500) workers, ``"usable"`` from
    ``usable_min`` (200), ``"order_of_magnitude"`` below: such a count is only an
    order of magnitude and must not be presented as exact.
    """
    classes = reliability_classes(workers, thresholds)
    return pd.Series(classes, index=workers.index)


def reliability_classes(
    workers: pd.Series | np.ndarray,
    thresholds: ReliabilitySection,
    missing: np.ndarray | None = None,
) -> pd.api.extensions.ExtensionArray:
    """:func:`reliability_class` as a string array, missing where ``missing`` says."""
    rank = np.select(
        [workers >= thresholds.reliable_min, workers >= thresholds.usable_min],
        [0, 1],
        default=2,
    )
    at = pa.array(rank, mask=missing)
    return pd.arrays.ArrowStringArray(_CLASSES.take(at))


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
    at = positions_in(commune_epci["commune_code"], communes)
    epci = pd.Series(
        commune_epci["epci_code"].astype("string").array.take(at, allow_fill=True),
        index=communes.index,
    )
    return (
        epci.mask(is_abroad_code(communes), ABROAD_PREFIX + communes.astype("string"))
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
    touching = at[:, 0] | at[:, 1]  # rows with an end unmatched
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
    # Each row's row in ``previous`` (-1: none), by its (métropole, EPCI) pair.
    at = np.full(len(indicators), -1)
    figures = np.full((1, len(CHANGE_COLUMNS)), np.nan)  # the row at -1
    if previous is not None:
        at = positions(_system_pairs(indicators), _system_pairs(previous))
        then = previous[list(CHANGE_COLUMNS)].to_numpy(dtype="float64")
        figures = np.vstack([then, figures])
    columns = {}
    for column, before in zip(CHANGE_COLUMNS, figures[at].T, strict=True):
        columns[f"{column}_previous"] = before
        columns[f"{column}_change"] = (
            indicators[column].to_numpy(dtype="float64") - before
        )
    added = pd.DataFrame(columns, index=indicators.index)
    return pd.concat([indicators, added], axis=1)


def _system_pairs(indicators: pd.DataFrame) -> pa.Array:
    # The (métropole, EPCI) pair of each row as one string.
    codes = (text_array(indicators[c]) for c in ("metropole_code", "epci_code"))
    return pc.binary_join_element_wise(*codes, pa.scalar("|", pa.large_string()))


def flows_with_previous(
    flows: pd.DataFrame, previous: pd.DataFrame | None
) -> pd.DataFrame:
    """Put the flows of an earlier vintage beside the current ones, pair by pair.

    Both tables have one row per pair: ``origin_code``, ``destination_code``,
    ``workers`` (as :func:`flows_epci` gives them). Returns the union of the
    pairs of both vintages, sorted by codes, with ``workers`` (0 for a pair gone
    since), ``workers_previous`` (0 for a new pair; missing when there is no
    earlier vintage) and ``workers_change``.

    Raises
    ------
    DataError
        A pair on several rows of one vintage.
    """
    keys = ["origin_code", "destination_code"]
    if previous is None:
        out = flows.copy()
        out["workers_previous"] = np.nan
        out["workers_change"] = out["workers"] - out["workers_previous"]
        return out.sort_values(keys, ignore_index=True)
    # Pairs as integer keys in one sorted book of both vintages' codes: sorted
    # keys are pairs sorted by codes.
    ends = [text_array(table[c]) for table in (flows, previous) for c in keys]
    book = sorted_distinct(pa.concat_arrays(ends))
    size = max(len(book), 1)
    now, then = (
        positions(ends[i], book) * size + positions(ends[i + 1], book) for i in (0, 2)
    )
    pairs = np.sort(np.concatenate([now, then]))
    pairs = pairs[np.append(True, pairs[1:] != pairs[:-1])]
    out = pd.DataFrame(
        {
            c: pd.Series(text_values(book.take(at)), dtype=flows[c].dtype).array
            for c, at in zip(keys, (pairs // size, pairs % size), strict=True)
        }
    )
    out["workers"] = _on_pairs(pairs, now, flows["workers"])
    out["workers_previous"] = _on_pairs(pairs, then, previous["workers"])
    out["workers_change"] = out["workers"] - out["workers_previous"]
    return out


def _on_pairs(pairs: np.ndarray, keys: np.ndarray, workers: pd.Series) -> np.ndarray:
    # The workers of each of ``pairs`` (sorted): those of its row, else 0.
    ordered = np.sort(keys)
    if (ordered[1:] == ordered[:-1]).any():
        msg = "flows: a pair (origin_code, destination_code) on several rows"
        raise DataError(msg)
    out = np.zeros(len(pairs))
    values = workers.to_numpy(dtype="float64")
    out[np.searchsorted(pairs, keys)] = np.where(np.isnan(values), 0.0, values)
    return out
