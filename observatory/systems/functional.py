"""Systems drawn by the flows beside the contiguity crowns, and INSEE's AAV 2020 (pure).

A métropole's contiguity crowns (:mod:`observatory.systems.crowns`) are what elected
officials negotiate with; the flows draw another system: the EPCI whose
*dependence* on the métropole (share of their employed residents working in it,
``dependence_share`` of ``epci_indicators``) reaches ``[territories]
hidden_crown_min_share``. Each EPCI of either system gets one row saying which
rule placed it (``placed_by``): the ``hidden_crown`` lies beyond the contiguity
crowns, the ``nominal_member`` is a crown EPCI whose dependence is under
``nominal_member_max_share``. ``[territories] crown_rule`` says which rows make
the system (``in_system``).

The flows rule is direct: an EPCI joins when its own flow to the métropole
reaches the threshold, whatever lies between them. It needs no contiguity,
because water is not a border: an EPCI across a bay (the Presqu'île de Crozon
across the Rade de Brest) is no neighbour of the métropole, and requiring a
chain of neighbours would drop exactly the links the flows reveal. INSEE's AAV
2020 applies the same direct rule to communes: 15 % of the employed residents to
the pole itself, not to the pole and its crown together.

INSEE's attraction areas (AAV 2020, read by :mod:`observatory.readers.aav`) are
compared by EPCI: the share of its population (or of any weight given by
commune, e.g. employed residents) living in the métropole's AAV, pole and crown
apart.
"""

from __future__ import annotations

import logging
from typing import TypedDict

import numpy as np
import pandas as pd
import pyarrow as pa

from observatory.config.territories import CROWN_RULES, TerritoriesSection
from observatory.core.errors import DataError
from observatory.geography import (
    is_pseudo,
    listed_codes,
    rollup_arrondissements,
    text_array,
    text_series,
)
from observatory.systems.codebook import group_sum, positions, sorted_distinct
from observatory.systems.harmonise import harmonise_codes

logger = logging.getLogger(__name__)

#: Which rule placed an EPCI in a métropole's system (``placed_by``): the
#: métropole itself, both rules, contiguity only, the flows only; ``aav`` marks an
#: EPCI inside the métropole's AAV that neither rule placed (:func:`compare_with_aav`).
PLACEMENTS = ("metropole", "both", "contiguity", "flows", "aav")

#: The placements each ``crown_rule`` keeps in the system.
RULE_PLACEMENTS = {
    "contiguity": ("metropole", "both", "contiguity"),
    "flows": ("metropole", "both", "flows"),
    "both": ("metropole", "both", "contiguity", "flows"),
}

#: INSEE's CATEAAV2020: 11 commune-centre, 12 other commune of the main pole,
#: 13 commune of a secondary pole (all three: the AAV's poles), 20 crown, 30
#: outside any attraction area (AAV code ``000``).
POLE_CATEGORIES = ("11", "12", "13")
CROWN_CATEGORY = "20"
OUTSIDE_CATEGORY = "30"

_KEYS = ["metropole_code", "epci_code"]


# --------------------------------------------------------------------- dependence
def employed_residents(flows: pd.DataFrame) -> pd.Series:
    """Workers living in each EPCI, wherever they work (``employed_residents``).

    Abroad and unmatched destinations count, as in ``epci_indicators``.
    """
    origin = flows["origin_code"]
    return (
        flows[~is_pseudo(origin)]
        .groupby("origin_code")["workers"]
        .sum()
        .astype("float64")
        .rename("employed_residents")
    )


def dependence_on_metropoles(
    flows: pd.DataFrame, metropole_codes: list[str]
) -> pd.DataFrame:
    """Dependence of every EPCI sending workers to each métropole.

    Parameters
    ----------
    flows
        EPCI flows of the whole territory (``origin_code``, ``destination_code``,
        ``workers``), from :func:`observatory.systems.flows.flows_epci`.
    metropole_codes
        SIREN of the métropoles.

    Returns
    -------
    pandas.DataFrame
        ``metropole_code``, ``epci_code``, ``flow_to_metropole``,
        ``employed_residents``, ``dependence_share`` (flow over employed
        residents): one row per EPCI other than the métropole with a flow to it.
    """
    return _dependence(flows, metropole_codes, employed_residents(flows))


def _dependence(
    flows: pd.DataFrame, metropole_codes: list[str], residents: pd.Series
) -> pd.DataFrame:
    # dependence_on_metropoles, given the employed residents of every EPCI.
    to_metropole = flows[
        flows["destination_code"].isin(metropole_codes)
        & (flows["origin_code"] != flows["destination_code"])
        & ~is_pseudo(flows["origin_code"])
        & (flows["workers"] > 0)
    ]
    out = pd.DataFrame(
        {
            "metropole_code": to_metropole["destination_code"].astype("string"),
            "epci_code": to_metropole["origin_code"].astype("string"),
            "flow_to_metropole": to_metropole["workers"].astype("float64"),
        }
    )
    out = out.groupby(_KEYS, as_index=False, sort=True)[["flow_to_metropole"]].sum()
    out["employed_residents"] = out["epci_code"].map(residents).astype("float64")
    out["dependence_share"] = out["flow_to_metropole"] / out["employed_residents"]
    return out


def functional_crowns(
    flows: pd.DataFrame, crowns: pd.DataFrame, territories: TerritoriesSection
) -> pd.DataFrame:
    """Place every EPCI of each métropole's system by contiguity and by the flows.

    Parameters
    ----------
    flows
        EPCI flows of the whole territory (:func:`dependence_on_metropoles`).
    crowns
        The contiguity crowns (``metropole_code``, ``epci_code``, ``crown``; 0 for
        the métropole), from :func:`observatory.systems.crowns.build_crowns`.
    territories
        ``hidden_crown_min_share``, ``nominal_member_max_share``, ``crown_rule``.

    Returns
    -------
    pandas.DataFrame
        One row per (métropole, EPCI) in its contiguity crowns or at or above the
        threshold: ``metropole_code``, ``epci_code``, ``crown`` (nullable: missing
        beyond the contiguity crowns), ``flow_to_metropole``,
        ``employed_residents``, ``dependence_share`` (missing for the métropole
        and for an EPCI without employed residents), ``by_contiguity``,
        ``by_flows``, ``placed_by`` (:data:`PLACEMENTS`), ``hidden_crown``,
        ``nominal_member`` and ``in_system`` (kept by ``crown_rule``).
    """
    if territories.crown_rule not in CROWN_RULES:
        msg = f"crown_rule must be one of {list(CROWN_RULES)}, got {territories.crown_rule!r}"
        raise DataError(msg)
    contiguity = crowns[[*_KEYS, "crown"]].astype(
        {"metropole_code": "string", "epci_code": "string"}
    )
    metropoles = sorted(set(contiguity["metropole_code"]))
    everyone = employed_residents(flows)
    dependence = _dependence(flows, metropoles, everyone)
    rows = contiguity.merge(dependence, on=_KEYS, how="outer")
    is_metropole = rows["epci_code"] == rows["metropole_code"]
    residents = rows["epci_code"].map(everyone).astype("float64")
    rows["employed_residents"] = residents.to_numpy()
    rows["flow_to_metropole"] = (
        rows["flow_to_metropole"].fillna(0.0).mask(is_metropole).astype("float64")
    )
    rows["dependence_share"] = (
        rows["flow_to_metropole"] / rows["employed_residents"].where(residents > 0)
    ).astype("float64")
    rows["crown"] = rows["crown"].astype("Int8")
    placed = _placements(rows, is_metropole, territories.hidden_crown_min_share).assign(
        nominal_member=lambda f: (
            (
                f["by_contiguity"]
                & (f["placed_by"] != "metropole")
                & (f["dependence_share"] < territories.nominal_member_max_share)
            )
            .fillna(False)
            .astype(bool)
        ),
        in_system=lambda f: (
            f["placed_by"].isin(RULE_PLACEMENTS[territories.crown_rule]).astype(bool)
        ),
    )
    order = {name: i for i, name in enumerate(PLACEMENTS)}
    placed = placed.sort_values(
        ["metropole_code", "placed_by", "epci_code"],
        key=lambda c: c.map(order) if c.name == "placed_by" else c,
        ignore_index=True,
    )
    logger.info(
        "functional crowns (%s): %d hidden-crown and %d nominal-member row(s) in %d system(s)",
        territories.crown_rule,
        int(placed["hidden_crown"].sum()),
        int(placed["nominal_member"].sum()),
        len(metropoles),
    )
    return placed


def _placements(
    rows: pd.DataFrame, is_metropole: pd.Series, threshold: float
) -> pd.DataFrame:
    # Which rule placed each row; rows placed by neither are left out.
    by_contiguity = rows["crown"].notna().to_numpy(dtype=bool)
    reaches = (rows["dependence_share"] >= threshold).fillna(False).to_numpy(bool)
    metropole = is_metropole.to_numpy(dtype=bool)
    by_flows = metropole | reaches
    placed_by = np.select(
        [metropole, by_contiguity & by_flows, by_contiguity, by_flows],
        list(PLACEMENTS[:4]),
        default="",
    )
    out = rows.assign(
        by_contiguity=by_contiguity,
        by_flows=by_flows,
        placed_by=pd.array(placed_by, dtype="string"),
        hidden_crown=by_flows & ~by_contiguity,
    )
    return out[out["placed_by"] != ""]


def system_members(functional: pd.DataFrame) -> pd.DataFrame:
    """Members of each system under the configured rule, as a crowns table.

    Returns ``metropole_code``, ``epci_code``, ``crown`` (missing for an EPCI the
    flows place beyond the contiguity crowns) and ``placed_by``, for the rows of
    :func:`functional_crowns` that are ``in_system``.
    """
    columns = [*_KEYS, "crown", "placed_by"]
    return functional.loc[functional["in_system"], columns].reset_index(drop=True)


# --------------------------------------------------------------------- AAV 2020
class AavHarmonisationReport(TypedDict):
    """What :func:`harmonise_aav` did to the AAV table (the manifest's record)."""

    geography_passage: bool
    codes_mapped: int
    communes_merged: int
    merged_with_different_areas: dict[str, list[str]]
    codes_outside_target: list[str]


def harmonise_aav(
    aav: pd.DataFrame,
    passage: pd.DataFrame | None,
    target_codes: set[str] | pd.Index | None,
) -> tuple[pd.DataFrame, AavHarmonisationReport]:
    """Take the AAV's commune codes (COG 2023 for INSEE's 2023 edition) to the run's.

    Parameters
    ----------
    aav
        ``commune_code``, ``aav_code``, ``aav_category`` (and other columns), from
        :func:`observatory.readers.aav.read_aav`.
    passage
        ``old_code``, ``new_code`` (:mod:`observatory.systems.harmonise`), or None:
        the codes are then kept, and those outside the target geography are
        reported; their communes find no EPCI and count in no share.
    target_codes
        Commune codes of the run's geography, or None to check nothing.

    Returns
    -------
    tuple
        The table with one row per commune of the target geography. Communes
        merged since carry the AAV of their most central part (lowest
        CATEAAV2020, then lowest AAV code); a merger of communes of different
        areas or categories is reported. And the report.
    """
    table = aav.copy()
    old = table["commune_code"].astype("string")
    if passage is not None and target_codes is not None:
        table["commune_code"] = harmonise_codes(old, passage, target_codes)
    mapped = int((table["commune_code"] != old).sum())
    ranked = table.sort_values(["commune_code", "aav_category", "aav_code"])
    labels = ranked["aav_code"] + "/" + ranked["aav_category"]
    distinct = labels.groupby(ranked["commune_code"]).agg(lambda s: sorted(set(s)))
    conflicts = distinct[distinct.map(len) > 1]
    merged = int(ranked["commune_code"].duplicated().sum())
    out = ranked.drop_duplicates("commune_code").reset_index(drop=True)
    outside: list[str] = []
    if target_codes is not None:
        targets = pd.Index(sorted(str(c) for c in target_codes), dtype="string")
        outside = sorted(out.loc[~out["commune_code"].isin(targets), "commune_code"])
    report: AavHarmonisationReport = {
        "geography_passage": passage is not None,
        "codes_mapped": mapped,
        "communes_merged": merged,
        "merged_with_different_areas": {str(k): v for k, v in conflicts.items()},
        "codes_outside_target": [str(c) for c in outside],
    }
    if outside:
        logger.warning(
            "AAV: %d commune code(s) outside the run's geography%s: %s",
            len(outside),
            "" if passage is not None else " (no commune passage given)",
            listed_codes(outside),
        )
    return out, report


def employed_residents_by_commune(
    codes: pa.Array, origin: np.ndarray, workers: np.ndarray
) -> pd.Series:
    """Workers living in each commune (arrondissements rolled up), a weight for AAV shares.

    ``codes`` is a book of commune codes (Arrow strings, any order), ``origin``
    each flow's number in it and ``workers`` its workers. The sums are those of
    a pandas groupby of the flows by rolled-up origin, to the last bit
    (:func:`~observatory.systems.codebook.group_sum`): the codes are rolled up
    and sorted once each, the rows only summed by position.
    """
    communes = text_array(rollup_arrondissements(text_series(codes)))
    book = sorted_distinct(communes)
    keys, sums = group_sum(positions(communes, book)[origin], workers)
    # Inferred as a groupby's keys are (pandas' ``str``).
    index = pd.Index(
        book.take(keys).to_numpy(zero_copy_only=False), name="commune_code"
    )
    return pd.Series(sums, index=index, name="weight")


def _weighted_communes(
    aav: pd.DataFrame, commune_epci: pd.DataFrame, commune_weight: pd.Series
) -> pd.DataFrame:
    # commune_code, epci_code, weight, aav_code (missing when unmatched), aav_category.
    table = commune_epci[["commune_code", "epci_code"]].astype("string")
    table["weight"] = (
        table["commune_code"].map(commune_weight).fillna(0.0).astype("float64")
    )
    areas = aav[["commune_code", "aav_code", "aav_category"]].astype("string")
    return table.merge(areas, on="commune_code", how="left")


def metropole_aav(
    aav: pd.DataFrame,
    commune_epci: pd.DataFrame,
    commune_weight: pd.Series,
    metropole_codes: list[str],
) -> pd.DataFrame:
    """Find the attraction area of each métropole: the AAV whose poles hold most of it.

    Returns ``metropole_code``, ``aav_code`` (missing when none of its communes is
    in a pole) and ``metropole_in_aav_share`` (share of the métropole's weight in
    that AAV, pole and crown).
    """
    communes = _weighted_communes(aav, commune_epci, commune_weight)
    mine = communes[communes["epci_code"].isin(metropole_codes)]
    in_pole = mine[mine["aav_category"].isin(POLE_CATEGORIES)]
    pole_weight = in_pole.groupby(["epci_code", "aav_code"])["weight"].sum()
    best = (
        pole_weight.reset_index()
        .sort_values(["epci_code", "weight", "aav_code"], ascending=[True, False, True])
        .drop_duplicates("epci_code")
        .set_index("epci_code")["aav_code"]
    )
    codes = pd.Series(sorted(set(metropole_codes)), dtype="string")
    chosen = codes.map(best).astype("string")
    total = mine.groupby("epci_code")["weight"].sum()
    same = mine[mine["aav_code"] == mine["epci_code"].map(best)]
    inside = same.groupby("epci_code")["weight"].sum()
    return pd.DataFrame(
        {
            "metropole_code": codes,
            "aav_code": chosen,
            "metropole_in_aav_share": (
                codes.map(inside).fillna(0.0)
                / codes.map(total).where(codes.map(total) > 0)
            ).astype("float64"),
        }
    )


def aav_shares(
    aav: pd.DataFrame,
    commune_epci: pd.DataFrame,
    commune_weight: pd.Series,
    metropole_aavs: pd.DataFrame,
) -> pd.DataFrame:
    """Share of each EPCI's weight living in each métropole's attraction area.

    Parameters
    ----------
    aav
        The AAV table in the run's geography (:func:`harmonise_aav`).
    commune_epci
        ``commune_code``, ``epci_code`` (INSEE's composition).
    commune_weight
        Weight by commune code: its population, or its employed residents
        (:func:`employed_residents_by_commune`); communes without one weigh 0.
    metropole_aavs
        :func:`metropole_aav`.

    Returns
    -------
    pandas.DataFrame
        One row per (métropole, EPCI) with some weight in the métropole's AAV:
        ``metropole_code``, ``epci_code``, ``aav_code``, ``aav_pole_share`` and
        ``aav_crown_share`` (of the EPCI's weight in communes the AAV table
        lists), ``aav_share`` (their sum), ``aav_matched_share`` (share of the
        EPCI's weight in communes the AAV table lists: below 1 when codes were
        not found) and ``weight_in_aav``. An EPCI absent has none of its weight
        in the AAV.
    """
    communes = _weighted_communes(aav, commune_epci, commune_weight)
    matched = communes["aav_code"].notna()
    total = communes.groupby("epci_code")["weight"].sum()
    listed = communes[matched].groupby("epci_code")["weight"].sum()
    areas = metropole_aavs.dropna(subset=["aav_code"])
    inside = communes[matched].merge(
        areas[["metropole_code", "aav_code"]], on="aav_code", how="inner"
    )
    inside["pole"] = inside["weight"].where(
        inside["aav_category"].isin(POLE_CATEGORIES), 0.0
    )
    inside["crown_weight"] = inside["weight"].where(
        inside["aav_category"] == CROWN_CATEGORY, 0.0
    )
    out = inside.groupby([*_KEYS, "aav_code"], as_index=False, sort=True)[
        ["pole", "crown_weight"]
    ].sum()
    denominator = out["epci_code"].map(listed)
    denominator = denominator.where(denominator > 0)
    out["aav_pole_share"] = (out["pole"] / denominator).astype("float64")
    out["aav_crown_share"] = (out["crown_weight"] / denominator).astype("float64")
    # Rounding may push a whole EPCI's share a hair above 1.
    out["aav_share"] = (out["aav_pole_share"] + out["aav_crown_share"]).clip(upper=1.0)
    out["aav_matched_share"] = (
        out["epci_code"].map(listed)
        / out["epci_code"].map(total).where(lambda t: t > 0)
    ).astype("float64")
    out["weight_in_aav"] = (out["pole"] + out["crown_weight"]).astype("float64")
    out = out[out["weight_in_aav"] > 0]
    columns = [
        *_KEYS,
        "aav_code",
        "aav_pole_share",
        "aav_crown_share",
        "aav_share",
        "aav_matched_share",
        "weight_in_aav",
    ]
    return out[columns].reset_index(drop=True)


def compare_with_aav(
    functional: pd.DataFrame, shares: pd.DataFrame, territories: TerritoriesSection
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Put the AAV beside both rules, by EPCI and by métropole.

    Parameters
    ----------
    functional
        :func:`functional_crowns`.
    shares
        :func:`aav_shares`.
    territories
        ``aav_member_min_share``: an EPCI is in the AAV from this share.

    Returns
    -------
    tuple
        The rows of ``functional`` with ``aav_pole_share``, ``aav_crown_share``,
        ``aav_share`` (0 when none of the EPCI's weight is in the AAV),
        ``aav_matched_share`` and ``in_aav``, plus a row ``placed_by = "aav"``
        for each EPCI in the AAV that neither rule placed; and the overlap per
        métropole (:func:`aav_overlap`).
    """
    share_columns = ["aav_pole_share", "aav_crown_share", "aav_share"]
    rows = functional.merge(
        shares[[*_KEYS, *share_columns, "aav_matched_share", "weight_in_aav"]],
        on=_KEYS,
        how="outer",
    )
    rows[share_columns] = rows[share_columns].fillna(0.0)
    rows["weight_in_aav"] = rows["weight_in_aav"].fillna(0.0)
    rows["in_aav"] = rows["aav_share"] >= territories.aav_member_min_share
    only_aav = rows["placed_by"].isna()
    rows = rows[~only_aav | rows["in_aav"]].copy()
    only_aav = rows["placed_by"].isna()
    rows["placed_by"] = rows["placed_by"].fillna("aav").astype("string")
    for flag in (
        "by_contiguity",
        "by_flows",
        "hidden_crown",
        "nominal_member",
        "in_system",
    ):
        rows[flag] = rows[flag].astype("boolean").fillna(False).astype(bool)
    rows.loc[only_aav, "crown"] = pd.NA
    rows = rows.sort_values(_KEYS, ignore_index=True)
    # The AAV's whole weight, including EPCI below aav_member_min_share that
    # no rule places (dropped from the rows above).
    totals = shares.groupby("metropole_code")["weight_in_aav"].sum()
    return rows, aav_overlap(rows, totals)


def _jaccard(a: pd.Series, b: pd.Series) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else float("nan")


def aav_overlap(rows: pd.DataFrame, aav_weights: pd.Series) -> pd.DataFrame:
    """Overlap of the contiguity system, the flow system and the AAV, per métropole.

    ``aav_weights`` is the weight of each métropole's AAV (by ``metropole_code``:
    every EPCI's ``weight_in_aav`` from :func:`aav_shares`, not only the rows).
    Returns, from the rows of :func:`compare_with_aav`: ``metropole_code``, the
    EPCI counts ``epci_contiguity``, ``epci_flows``, ``epci_aav``,
    ``epci_contiguity_and_flows``, ``epci_contiguity_and_aav``,
    ``epci_flows_and_aav``, ``epci_all_three``, the Jaccard indices (shared EPCI
    over EPCI in either) ``jaccard_contiguity_flows``, ``jaccard_contiguity_aav``,
    ``jaccard_flows_aav``, and the shares of the AAV's weight living in the EPCI
    of each system, ``aav_weight_in_contiguity_share`` and
    ``aav_weight_in_flows_share``.
    """
    records = []
    for metropole, part in rows.groupby("metropole_code", sort=True):
        c, f, a = part["by_contiguity"], part["by_flows"], part["in_aav"]
        weight = part["weight_in_aav"]
        total = float(aav_weights.get(metropole, 0.0))
        records.append(
            {
                "metropole_code": metropole,
                "epci_contiguity": int(c.sum()),
                "epci_flows": int(f.sum()),
                "epci_aav": int(a.sum()),
                "epci_contiguity_and_flows": int((c & f).sum()),
                "epci_contiguity_and_aav": int((c & a).sum()),
                "epci_flows_and_aav": int((f & a).sum()),
                "epci_all_three": int((c & f & a).sum()),
                "jaccard_contiguity_flows": _jaccard(c, f),
                "jaccard_contiguity_aav": _jaccard(c, a),
                "jaccard_flows_aav": _jaccard(f, a),
                "aav_weight_in_contiguity_share": (
                    float(weight[c].sum()) / total if total else float("nan")
                ),
                "aav_weight_in_flows_share": (
                    float(weight[f].sum()) / total if total else float("nan")
                ),
            }
        )
    out = pd.DataFrame.from_records(records)
    if not out.empty:
        out["metropole_code"] = out["metropole_code"].astype("string")
    return out
