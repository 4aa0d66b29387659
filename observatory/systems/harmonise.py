"""Harmonise the commune codes of every input to one target geography.

INSEE publishes census vintage N in the communes of one 1 January: N+3 for
recent vintages (RP 2023 in the geography of 2026), N+2 for older ones (RP 2014
in that of 2016). Each input states its geography (catalogue entry or config):
none is computed from a vintage. Boundaries and EPCI of another year use other
codes wherever communes merged (communes nouvelles) or changed code. This module
resolves INSEE's commune passage information into an ``old_code -> new_code``
map and applies it to flows or code columns.

Recognised passage layouts (detected by their columns):

- INSEE COG "mouvements des communes" (``v_mvt_commune_YYYY.csv``,
  ``mvtcommune_YYYY.csv``): ``MOD, DATE_EFF, TYPECOM_AV, COM_AV, ...,
  TYPECOM_AP, COM_AP, ...``; events are replayed in ``DATE_EFF`` order;
- the etalab-derived table of historical codes: ``code_ancien, code_actuel``
  (plus ``nom_actuel, nom_ancien, source``).

Rules shared by :func:`harmonise_codes` and :func:`harmonise_flows`: the
arrondissements of Paris, Lyon and Marseille roll up to their commune; abroad
codes and codes already in the target geography are kept; other codes go through
the passage when it gives them a single new code. An old code that INSEE reused
(one old code, several new codes) is never split: it is kept and reported, as is
every code that is still outside the target geography.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pandas as pd
import pyarrow as pa

from observatory.core.errors import DataError
from observatory.geography import (
    PASSAGE_COLUMNS,
    is_abroad_code,
    listed_codes,
    on_distinct,
    resolve_code_chains,
    rollup_arrondissements,
    text_series,
)
from observatory.systems.codebook import CodedFlows, is_in, positions_in

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------- passage
_PASSAGE_COLUMNS = list(PASSAGE_COLUMNS)  # a list: pandas takes a tuple for one key


def passage_map(passage: pd.DataFrame) -> pd.DataFrame:
    """Resolve a passage into final codes and flag ambiguous old codes.

    Parameters
    ----------
    passage
        ``old_code``, ``new_code``; ``a -> b`` and ``b -> c`` give ``a -> c``.

    Returns
    -------
    pandas.DataFrame
        ``old_code``, ``new_code``, ``ambiguous`` (True on every row of an old code
        that has several new codes, e.g. codes INSEE reused), sorted by code.
        Raises :class:`DataError` on a cycle.
    """
    missing = [c for c in _PASSAGE_COLUMNS if c not in passage.columns]
    if missing:
        msg = f"commune passage: missing column(s) {missing}; expected {_PASSAGE_COLUMNS}, found {list(passage.columns)}"
        raise DataError(msg)
    pairs = pd.DataFrame(
        {c: passage[c].astype("string").str.strip() for c in _PASSAGE_COLUMNS}
    )
    empty = pairs.isna().any(axis=1) | (pairs == "").any(axis=1)
    if empty.any():
        msg = f"commune passage: {int(empty.sum())} row(s) without old_code or new_code"
        raise DataError(msg)
    resolved = resolve_code_chains(pairs)
    resolved["ambiguous"] = (
        resolved.groupby("old_code")["new_code"].transform("size") > 1
    )
    resolved = resolved.sort_values(_PASSAGE_COLUMNS).reset_index(drop=True)
    resolved[_PASSAGE_COLUMNS] = resolved[_PASSAGE_COLUMNS].astype("string")
    resolved["ambiguous"] = resolved["ambiguous"].astype(bool)
    return resolved


# --------------------------------------------------------------------- harmonise
def _targets(target_codes: set[str] | pd.Index) -> pd.Series:
    # The target codes as strings, for hash lookups (in no particular order).
    if isinstance(target_codes, pd.Index):
        return pd.Series(target_codes, dtype="string")
    codes = list(target_codes)
    try:  # the codes of a composition are strings: Arrow takes them as they are
        return text_series(pa.array(codes, pa.large_string()))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pd.Series([str(c) for c in codes], dtype="string")


def _plan(
    codes: pd.Series, mapping: pd.DataFrame, targets: pd.Series, roll_up: bool
) -> pd.DataFrame:
    # One row per distinct code: what it becomes and why.
    unique = pd.Series(codes.dropna().unique(), dtype="string")
    rolled = rollup_arrondissements(unique) if roll_up else unique
    single = mapping[~mapping["ambiguous"]]
    ambiguous = mapping.loc[mapping["ambiguous"], "old_code"]
    keep = is_in(rolled, targets) | is_abroad_code(rolled).to_numpy()
    # Where each rolled code is an old code of the passage (-1: it is not).
    at = np.where(keep, -1, positions_in(single["old_code"], rolled))
    in_passage = at >= 0
    new = rolled.mask(in_passage, single["new_code"].array.take(at, allow_fill=True))
    return pd.DataFrame(
        {
            "rolled": rolled.array,
            "new": new.array,
            "mapped": in_passage,
            "ambiguous": ~keep & is_in(rolled, ambiguous),
        },
        index=pd.Index(unique, dtype="string"),
    )


def harmonise_codes(
    codes: pd.Series,
    passage: pd.DataFrame,
    target_codes: set[str] | pd.Index,
    *,
    roll_up: bool = True,
) -> pd.Series:
    """Map commune codes to the target geography.

    Parameters
    ----------
    codes
        Commune codes as strings (any table: flows, composition, geometries).
    passage
        ``old_code``, ``new_code`` (raw, or from :func:`passage_map`).
    target_codes
        Commune codes of the target geography.
    roll_up
        Replace Paris, Lyon and Marseille arrondissements by their commune first.

    Returns
    -------
    pandas.Series
        Same index and name; codes in the target and abroad codes unchanged, other
        codes replaced by their single new code. Ambiguous and unknown codes are
        unchanged; missing values stay missing.
    """
    codes = codes.astype("string")
    plan = _plan(codes, passage_map(passage), _targets(target_codes), roll_up)
    return on_distinct(codes, lambda u: u.map(plan["new"]).astype("string"))


def harmonise_mode_flows(
    flows_by_mode: pd.DataFrame,
    passage: pd.DataFrame,
    target_codes: set[str] | pd.Index,
) -> pd.DataFrame:
    """Map the commune codes of flows by mode to the target geography and re-sum.

    Parameters
    ----------
    flows_by_mode
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers`` (the
        detailed file summed by pair and mode).
    passage, target_codes
        As :func:`harmonise_codes` takes them.

    Returns
    -------
    pandas.DataFrame
        The same columns, codes harmonised (:func:`harmonise_codes`), summed by
        (origin, destination, mode).
    """
    keys = ["origin_commune", "destination_commune", "mode"]
    return (
        flows_by_mode.assign(
            origin_commune=harmonise_codes(
                flows_by_mode["origin_commune"], passage, target_codes
            ),
            destination_commune=harmonise_codes(
                flows_by_mode["destination_commune"], passage, target_codes
            ),
        )
        .groupby(keys, as_index=False)[["workers"]]
        .sum()
    )


def _volume(flows: CodedFlows, codes: list[str]) -> dict[str, float]:
    # Workers on the rows that touch each code; an internal flow counts once.
    if not codes:  # the usual case: no row to look at
        return {}
    wanted = is_in(flows.codes, codes)
    at_o = wanted[flows.origin]
    at_d = wanted[flows.destination] & (flows.origin != flows.destination)
    as_origin = pd.Series(flows.workers[at_o]).groupby(flows.ends(at_o)[0]).sum()
    as_destination_only = (
        pd.Series(flows.workers[at_d]).groupby(flows.ends(at_d)[1]).sum()
    )
    total = as_origin.add(as_destination_only, fill_value=0.0).sort_index()
    return {str(k): float(v) for k, v in total.items()}


class HarmonisationReport(TypedDict):
    """What :func:`harmonise_flows` did to one flows table (the manifest's record)."""

    codes_mapped: dict[str, str]
    arrondissements_rolled_up: dict[str, str]
    workers_mapped: float
    unmapped_codes: dict[str, float]
    ambiguous_codes: dict[str, float]
    workers_total_before: float
    workers_total_after: float


_FLOW_COLUMNS = ["origin_commune", "destination_commune", "workers"]


def _require_columns(flows: pd.DataFrame) -> None:
    missing = [c for c in _FLOW_COLUMNS if c not in flows.columns]
    if missing:
        msg = f"flows: missing column(s) {missing}; expected {_FLOW_COLUMNS}, found {list(flows.columns)}"
        raise DataError(msg)


def harmonise_flows(
    flows: pd.DataFrame,
    passage: pd.DataFrame,
    target_codes: set[str] | pd.Index,
) -> tuple[pd.DataFrame, HarmonisationReport]:
    """Map the commune codes of flows to the target geography and re-aggregate.

    Parameters
    ----------
    flows
        ``origin_commune``, ``destination_commune`` (strings), ``workers``, as read
        from the base flux (arrondissements and abroad codes may appear).
    passage
        ``old_code``, ``new_code`` (raw, or from :func:`passage_map`).
    target_codes
        Commune codes of the target geography.

    Returns
    -------
    tuple
        The flows with harmonised codes, summed by (origin, destination), sorted;
        and a report: ``codes_mapped`` {old: new} (passage only),
        ``arrondissements_rolled_up`` {arrondissement: commune},
        ``workers_mapped`` (workers on rows with an end mapped through the
        passage), ``unmapped_codes`` and ``ambiguous_codes`` {code: workers on
        the rows touching it}, ``workers_total_before``, ``workers_total_after``.
    """
    _require_columns(flows)
    out, report = harmonise_coded_flows(
        CodedFlows.from_frame(flows), passage, target_codes
    )
    return out.frame(), report


@dataclass(frozen=True, slots=True)
class Harmonisation:
    """A commune passage resolved once (:func:`passage_map`) and the target codes.

    Made by :func:`harmonisation` for every census vintage of a run to share.
    """

    mapping: pd.DataFrame
    targets: pd.Series


def harmonisation(
    passage: pd.DataFrame, target_codes: set[str] | pd.Index
) -> Harmonisation:
    """Resolve ``passage`` and list ``target_codes`` once, for :func:`harmonise_coded_flows`."""
    return Harmonisation(passage_map(passage), _targets(target_codes))


def harmonise_coded_flows(
    flows: CodedFlows,
    passage: pd.DataFrame,
    target_codes: set[str] | pd.Index,
) -> tuple[CodedFlows, HarmonisationReport]:
    """:func:`harmonise_flows` on flows coded in a book (the pipeline's way).

    Each code of the book is planned once; the flows come back summed by pair,
    in a book of the harmonised codes.
    """
    return harmonise_resolved(flows, harmonisation(passage, target_codes))


def harmonise_resolved(
    flows: CodedFlows, resolved: Harmonisation
) -> tuple[CodedFlows, HarmonisationReport]:
    """:func:`harmonise_coded_flows` with a passage resolved once (:func:`harmonisation`)."""
    plan = _plan(flows.codes, resolved.mapping, resolved.targets, roll_up=True)
    mapped = plan["mapped"].to_numpy()
    through_passage = mapped[flows.origin] | mapped[flows.destination]
    out = flows.recoded(plan["new"]).summed()
    workers = pd.Series(flows.workers)
    report = _report(plan, resolved.targets, workers, through_passage, out)
    _log(report, len(flows), len(out))
    return out, report


def _report(
    plan: pd.DataFrame,
    targets: pd.Series,
    workers: pd.Series,
    through_passage: np.ndarray,
    out: CodedFlows,
) -> HarmonisationReport:
    # Masks as numpy arrays: a pandas Series as a mask hashes the plan's index.
    new = plan["new"]
    ambiguous = new[plan["ambiguous"].to_numpy()].unique().tolist()
    final = pd.Series(new.unique())
    outside = final[
        ~is_in(final, targets)
        & ~is_abroad_code(final).to_numpy()
        & ~is_in(final, ambiguous)
    ].tolist()
    rolled = (plan["rolled"].array != plan.index.array).to_numpy(dtype=bool)
    return {
        "codes_mapped": _listed(new[plan["mapped"].to_numpy()]),
        "arrondissements_rolled_up": _listed(plan["rolled"][rolled]),
        "workers_mapped": float(workers[through_passage].sum()),
        "unmapped_codes": _volume(out, outside),
        "ambiguous_codes": _volume(out, ambiguous),
        "workers_total_before": float(workers.sum()),
        "workers_total_after": float(pd.Series(out.workers).sum()),
    }


def _listed(codes: pd.Series) -> dict[str, str]:
    # {code in the index: code}, sorted by the index's code.
    ordered = codes.sort_index()
    return dict(
        zip(
            map(str, ordered.index.tolist()),
            map(str, ordered.tolist()),
            strict=True,
        )
    )


def _log(report: HarmonisationReport, pairs_before: int, pairs_after: int) -> None:
    logger.info(
        "harmonise: %d commune pairs -> %d; %d code(s) mapped (%.1f workers), "
        "%d arrondissement(s) rolled up",
        pairs_before,
        pairs_after,
        len(report["codes_mapped"]),
        report["workers_mapped"],
        len(report["arrondissements_rolled_up"]),
    )
    for found, what in (
        (
            report["ambiguous_codes"],
            "ambiguous old code(s) (several new codes) left unmapped",
        ),
        (
            report["unmapped_codes"],
            "code(s) outside the target geography left as they are",
        ),
    ):
        if found:
            logger.warning(
                "harmonise: %d %s (%.1f workers): %s",
                len(found),
                what,
                sum(found.values()),
                listed_codes(list(found)),
            )
