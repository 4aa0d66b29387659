"""The stage ``flow_systems``: systems drawn by the flows beside the contiguity crowns.

After the census flows are summed by EPCI, this stage computes on the current
vintage's whole-territory EPCI x EPCI flows (issue 15):

- the dominant flows (Nystuen & Dacey, :mod:`observatory.systems.dominant`);
- the functional crowns of each métropole under ``[territories] crown_rule``
  (:mod:`observatory.systems.functional`): the hidden crown, the nominal members,
  which rule placed each EPCI, the members of each system;
- the comparison with INSEE's attraction areas when ``[inputs] aav`` is given;
- polycentricity and self-containment of each system
  (:mod:`observatory.systems.pairs`);
- the indicators of the EPCI the flows (or the AAV) place outside the
  contiguity crowns, for both vintages, so that they are rows of
  ``epci_indicators`` like the others.

The layers' new columns and the ``dominant_flows`` layer are added by
:func:`with_flow_layers` (:mod:`observatory.layers.flow_layers`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from observatory.config import Config
from observatory.layers.flow_layers import (
    dominant_flow_lines,
    with_epci_flow_columns,
    with_metropole_flow_columns,
    with_pair_columns,
)
from observatory.readers.aav import read_aav
from observatory.runs.manifest import RunRecord
from observatory.runs.reading import InputTables
from observatory.runs.stages import (
    CensusFlows,
    Passage,
    RunLayers,
    Territories,
)
from observatory.sources.inputs import ResolvedInput
from observatory.systems.dominant import DominantFlows, dominant_flows
from observatory.systems.flows import compare_vintages
from observatory.systems.functional import (
    aav_shares,
    compare_with_aav,
    employed_residents_by_commune,
    functional_crowns,
    harmonise_aav,
    metropole_aav,
    system_members,
)
from observatory.systems.harmonise import harmonise_codes
from observatory.systems.indicators import (
    epci_totals,
    pair_flows,
    system_indicators,
    system_matrix,
)
from observatory.systems.pairs import system_measures

logger = logging.getLogger(__name__)

#: Crown given to the rows outside the contiguity crowns while their indicators
#: are computed (``system_indicators`` only tells the métropole, crown 0, apart);
#: the layers show these rows with an empty ``crown``.
OUTSIDE_CROWNS = -1

_KEYS = ["metropole_code", "epci_code"]


@dataclass(frozen=True, slots=True)
class AavComparison:
    """INSEE's attraction areas beside the systems (``[inputs] aav``)."""

    metropoles: (
        pd.DataFrame
    )  # metropole_code, aav_code, aav_name, metropole_in_aav_share
    overlap: pd.DataFrame  # systems.functional.aav_overlap
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowSystems:
    """What the flows say of the systems, beside their contiguity crowns.

    ``rows`` has one row per (métropole, EPCI) placed by contiguity, by the
    flows or (with an AAV) by the attraction area, with ``placed_by`` and the
    flags; ``members`` the EPCI of each system under ``crown_rule``;
    ``extra_indicators`` the indicators of the rows outside the contiguity
    crowns; ``matrix`` the flow matrix of the systems under a rule other than
    contiguity (None: the census stage's is kept).
    """

    flows: pd.DataFrame  # EPCI x EPCI flows of the current vintage, whole territory
    dominant: DominantFlows
    rows: pd.DataFrame
    members: pd.DataFrame
    measures: pd.DataFrame
    extra_indicators: pd.DataFrame
    matrix: pd.DataFrame | None
    aav: AavComparison | None
    report: dict[str, Any]
    warnings: list[str]

    def indicators(self, census: pd.DataFrame) -> pd.DataFrame:
        """Return the census stage's indicators followed by those of the extra rows."""
        if self.extra_indicators.empty:
            return census
        return pd.concat([census, self.extra_indicators], ignore_index=True)

    def territories(self, territories: Territories) -> Territories:
        """Return ``territories`` with the systems' members as crowns (``crown_rule``)."""
        if self.matrix is None:  # crown_rule = contiguity: the crowns themselves
            return territories
        # Float crowns: NaN (beyond the contiguity crowns) matches no crown test.
        crowns = self.members[[*_KEYS, "crown"]].astype({"crown": "float64"})
        return replace(territories, crowns=crowns)

    def recorded(self, record: RunRecord) -> RunRecord:
        """Return the run's record with this stage's report and warnings."""
        return replace(
            record,
            flow_systems=self.report,
            warnings=[*record.warnings, *self.warnings],
        )

    def census(self, census: CensusFlows) -> CensusFlows:
        """Return ``census`` with the matrix of the systems under ``crown_rule``."""
        return census if self.matrix is None else replace(census, matrix=self.matrix)


def current_flows(pairs: pd.DataFrame, column: str = "workers") -> pd.DataFrame:
    """Return one vintage's EPCI flows from :func:`flows_with_previous` (pairs with workers)."""
    keep = (pairs[column].fillna(0) > 0).to_numpy()
    # Codes stay Arrow strings: no Python string object per row.
    return pd.DataFrame(
        {
            "origin_code": pairs["origin_code"].array[keep].astype("str"),
            "destination_code": pairs["destination_code"].array[keep].astype("str"),
            "workers": pairs[column].to_numpy(dtype="float64")[keep],
        }
    )


def outside_indicators(
    config: Config, rows: pd.DataFrame, pairs: pd.DataFrame
) -> pd.DataFrame:
    """Compute both vintages' indicators of the rows outside the contiguity crowns.

    Their ``crown`` is missing: NaN, which no crown test (``== 0``, ``> 0``) matches.
    """
    outside = rows.loc[rows["crown"].isna(), _KEYS].reset_index(drop=True)
    if outside.empty:
        return pd.DataFrame()
    crowns = outside.assign(crown=OUTSIDE_CROWNS)
    has_previous = bool(pairs["workers_previous"].notna().any())
    # An EPCI's indicators read only the flows from or to it (its totals, its
    # main destinations, its flows with the métropole): the pairs touching these
    # few EPCI, in their order, give the same sums as the whole table.
    epci = pd.Index(pd.unique(outside["epci_code"].astype("string")))
    touching = pairs["origin_code"].isin(epci) | pairs["destination_code"].isin(epci)
    near = pairs[touching.to_numpy(dtype=bool)]

    def vintage(column: str) -> pd.DataFrame:
        flows = current_flows(near, column)
        return system_indicators(
            pair_flows(flows), epci_totals(flows), crowns, config.reliability
        )

    out = compare_vintages(
        vintage("workers"), vintage("workers_previous") if has_previous else None
    )
    out["crown"] = np.nan
    return out


def commune_weights(tables: InputTables, passage: Passage) -> pd.Series:
    """Employed residents by commune of the run's geography (the AAV shares' weight)."""
    flows = tables.flows
    weights = employed_residents_by_commune(flows.codes, flows.origin, flows.workers)
    if passage.passage is None or passage.target is None:
        return weights
    codes = harmonise_codes(
        pd.Series(weights.index, dtype="string"), passage.passage, passage.target
    )
    return weights.groupby(codes.to_numpy()).sum().rename_axis("commune_code")


def compare_aav(
    config: Config,
    resolved: ResolvedInput,
    tables: InputTables,
    passage: Passage,
    functional: pd.DataFrame,
) -> tuple[pd.DataFrame, AavComparison, list[str]]:
    """Read the AAV, take it to the run's geography, compare it with both rules."""
    areas = read_aav(resolved.path)
    composition = tables.composition.composition
    target = passage.target or set(composition["commune_code"].astype(str))
    table, harmonisation = harmonise_aav(areas.communes, passage.passage, target)
    weights = commune_weights(tables, passage)
    metropoles = sorted(set(functional["metropole_code"]))
    chosen = metropole_aav(table, composition, weights, metropoles)
    names = areas.areas.set_index("aav_code")["aav_name"]
    chosen["aav_name"] = chosen["aav_code"].map(names).astype("string")
    shares = aav_shares(table, composition, weights, chosen)
    rows, overlap = compare_with_aav(functional, shares, config.territories)
    warnings = []
    if outside := harmonisation["codes_outside_target"]:
        warnings.append(
            f"{resolved.path}: {len(outside)} commune code(s) of the attraction areas "
            f"are not in the geography of {config.inputs.geography or 'the run'} "
            f"(e.g. {', '.join(outside[:5])}); give a commune_passage to take them there"
        )
    for code in chosen.loc[chosen["aav_code"].isna(), "metropole_code"]:
        warnings.append(
            f"{resolved.path}: no commune of métropole {code} is in an AAV pole"
        )
    report = {
        "path": str(resolved.path),
        "communes": len(areas.communes),
        "areas": int(areas.areas["aav_code"].nunique()),
        "member_min_share": config.territories.aav_member_min_share,
        "weight": "employed residents (base flux, current vintage)",
        "harmonisation": dict(harmonisation),
        "metropoles": {
            str(r["metropole_code"]): {
                "aav_code": _text(r["aav_code"]),
                "aav_name": _text(r["aav_name"]),
                "metropole_in_aav_share": _number(r["metropole_in_aav_share"]),
            }
            for r in chosen.to_dict("records")
        },
    }
    return rows, AavComparison(chosen, overlap, report), warnings


def _text(value: object) -> str | None:
    return None if value is None or value is pd.NA or value != value else str(value)


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if np.isnan(number) else round(number, 6)


def _report(
    config: Config, dominant: DominantFlows, rows: pd.DataFrame
) -> dict[str, Any]:
    """Return what the manifest says of the stage: settings, forest, placements."""
    t = config.territories
    nodes = dominant.nodes
    systems = {}
    for metropole, part in rows.groupby("metropole_code", sort=True):
        placed = part["placed_by"].value_counts()
        systems[str(metropole)] = {
            "placed_by": {str(k): int(v) for k, v in placed.items()},
            "hidden_crown": int(part["hidden_crown"].sum()),
            "nominal_member": int(part["nominal_member"].sum()),
            "members": int(part["in_system"].sum()),
        }
    return {
        "crown_rule": t.crown_rule,
        "hidden_crown_min_share": t.hidden_crown_min_share,
        "nominal_member_max_share": t.nominal_member_max_share,
        "dominant_weight": t.dominant_weight,
        "dominant_flows": {
            "epci": len(nodes),
            "dominated": int(nodes["dominated"].sum()),
            "terminal_poles": int((nodes["node_role"] == "dominant").sum()),
        },
        "systems": systems,
    }


def flow_systems(
    config: Config,
    inputs: dict[str, ResolvedInput],
    tables: InputTables,
    territories: Territories,
    passage: Passage,
    census: CensusFlows,
) -> FlowSystems:
    """Compute the dominant flows, the functional crowns and the AAV comparison."""
    flows = current_flows(census.pairs)
    t = config.territories
    dominant = dominant_flows(flows, t.dominant_weight)
    functional = functional_crowns(flows, territories.crowns, t)
    rows, aav, warnings = functional, None, list[str]()
    if "aav" in inputs:
        rows, aav, warnings = compare_aav(
            config, inputs["aav"], tables, passage, functional
        )
    members = system_members(functional)
    matrix = None
    if t.crown_rule != "contiguity":
        matrix = system_matrix(flows, members)
    report = _report(config, dominant, rows)
    report["aav"] = aav.report if aav is not None else None
    return FlowSystems(
        flows=flows,
        dominant=dominant,
        rows=rows,
        members=members,
        measures=system_measures(flows, members),
        extra_indicators=outside_indicators(config, rows, census.pairs),
        matrix=matrix,
        aav=aav,
        report=report,
        warnings=warnings,
    )


def with_flow_layers(
    config: Config,
    layers: RunLayers,
    systems: FlowSystems,
    territories: Territories,
    vintage: int | None,
) -> RunLayers:
    """Add the flow systems' columns to the layers, and each territory's ``dominant_flows``.

    The dominant flows are drawn between the EPCI of each territory (all of
    them, not only those of a system), between their representative points.
    """
    out = {}
    for territory, part in layers.territories.items():
        epci = with_epci_flow_columns(
            part["epci_indicators"],
            systems.rows,
            systems.dominant.nodes,
            layers.names,
            systems.aav.metropoles if systems.aav is not None else None,
        )
        metropoles = with_metropole_flow_columns(
            part["metropoles"],
            systems.rows,
            systems.measures,
            systems.aav.metropoles if systems.aav is not None else None,
            systems.aav.overlap if systems.aav is not None else None,
            systems.dominant.nodes,
            config.territories.crown_rule,
            layers.names,
        )
        out[territory] = {
            **part,
            "epci_indicators": epci,
            "flows": with_pair_columns(part["flows"], systems.flows),
            "metropoles": metropoles,
            "dominant_flows": dominant_flow_lines(
                systems.dominant.edges,
                territories.epci[territory],
                layers.names,
                (vintage, config.territories.dominant_weight),
                config.reliability,
            ),
        }
    return replace(layers, territories=out)
