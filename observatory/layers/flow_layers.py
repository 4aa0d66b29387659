"""The columns and the layer of the systems drawn by the flows (pure functions).

:mod:`observatory.runs.flow_systems` computes the dominant flows, the functional
crowns and the AAV comparison; these functions put them on the layers of
:mod:`observatory.layers.build`: placement flags, dominant flow and AAV shares on
``epci_indicators``, pair measures on ``flows``, system measures and overlaps on
``metropoles``, and the ``dominant_flows`` lines. Their columns are
:mod:`observatory.layers.flow_schemas`'; every column is present whatever the
config (null when its input is missing), so the layers keep one schema.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.config import ReliabilitySection
from observatory.systems.codebook import is_in
from observatory.systems.flows import reliability_class
from observatory.systems.pairs import pair_measures

_KEYS = ["metropole_code", "epci_code"]

#: Placement columns of the functional rows, copied to ``epci_indicators``.
PLACEMENT_COLUMNS = ("placed_by", "in_system", "hidden_crown", "nominal_member")

#: AAV columns of the functional rows (null without ``[inputs] aav``).
AAV_SHARE_COLUMNS = (
    "aav_pole_share",
    "aav_crown_share",
    "aav_share",
    "aav_matched_share",
)


def _geo(frame: pd.DataFrame, like: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    # Back to a GeoDataFrame with the layer's geometry and CRS, rows in order.
    return gpd.GeoDataFrame(
        frame, geometry=like.geometry.to_numpy(), crs=like.crs
    ).set_geometry("geometry")


def with_epci_flow_columns(
    epci: gpd.GeoDataFrame,
    rows: pd.DataFrame,
    nodes: pd.DataFrame,
    names: pd.Series,
    aav: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Add placement, dominant flow and AAV columns to ``epci_indicators``.

    Parameters
    ----------
    epci
        The layer (one row per métropole and EPCI).
    rows
        :func:`observatory.systems.functional.functional_crowns` (or
        :func:`~observatory.systems.functional.compare_with_aav`) rows.
    nodes
        :attr:`observatory.systems.dominant.DominantFlows.nodes`.
    names
        EPCI names by SIREN.
    aav
        The métropoles' attraction areas (``metropole_code``, ``aav_code``), or
        None without ``[inputs] aav``: every row of a system gets its AAV code.
    """
    keys = epci[_KEYS].astype("string")
    found = rows.assign(
        metropole_code=rows["metropole_code"].astype("string"),
        epci_code=rows["epci_code"].astype("string"),
    )
    wanted = [*PLACEMENT_COLUMNS, "aav_code", *AAV_SHARE_COLUMNS, "in_aav"]
    found = found.reindex(columns=[*_KEYS, *wanted])
    placed = keys.merge(found, on=_KEYS, how="left")
    out = pd.DataFrame(epci.drop(columns=epci.geometry.name)).reset_index(drop=True)
    out["placed_by"] = placed["placed_by"].astype("string").to_numpy()
    for flag in ("in_system", "hidden_crown", "nominal_member"):
        out[flag] = placed[flag].astype("boolean").fillna(False).to_numpy(dtype=bool)
    node = nodes.set_index(nodes["epci_code"].astype("string"))
    at = node.reindex(keys["epci_code"])
    out["dominant_destination_code"] = at["dominant_destination_code"].to_numpy()
    out["dominant_destination_name"] = (
        at["dominant_destination_code"].map(names).to_numpy()
    )
    out["dominant_flow"] = at["dominant_flow"].to_numpy(dtype="float64")
    out["dominant_share"] = at["dominant_share"].to_numpy(dtype="float64")
    out["dominated"] = at["dominated"].astype("boolean").to_numpy()
    out["terminal_code"] = at["terminal_code"].to_numpy()
    out["terminal_name"] = at["terminal_code"].map(names).to_numpy()
    out["dominant_level"] = at["level"].astype("Int32").to_numpy()
    out["node_role"] = at["node_role"].to_numpy()
    terminal = at["terminal_code"].astype("string").reset_index(drop=True)
    same = terminal == keys["metropole_code"].reset_index(drop=True)
    out["in_metropole_tree"] = same.fillna(False).to_numpy(dtype=bool)
    areas = pd.Series(dtype="string")
    if aav is not None:
        areas = aav.set_index(aav["metropole_code"].astype("string"))["aav_code"]
    out["aav_code"] = keys["metropole_code"].map(areas).astype("string").to_numpy()
    for column in AAV_SHARE_COLUMNS:
        out[column] = placed[column].to_numpy(dtype="float64", na_value=np.nan)
    out["in_aav"] = placed["in_aav"].astype("boolean").to_numpy()
    return _geo(out, epci)


def with_pair_columns(lines: gpd.GeoDataFrame, flows: pd.DataFrame) -> gpd.GeoDataFrame:
    """Add the pair measures (gross, net, asymmetry, intensity) to the ``flows`` lines.

    ``flows`` are the EPCI flows of the whole territory (current vintage): reverse
    flows and sizes are looked up there.
    """
    measured = pair_measures(flows, lines=pd.DataFrame(lines))
    return _geo(measured.drop(columns=lines.geometry.name), lines)


def _system_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Count each system's placements and the Jaccard index of both rules."""

    def flag(column: str) -> np.ndarray:
        # A missing flag counts as False, as a sum skips it.
        return rows[column].astype("boolean").fillna(False).to_numpy(dtype=bool)

    c, f = flag("by_contiguity"), flag("by_flows")
    flags = pd.DataFrame(
        {
            "n_epci_in_system": flag("in_system"),
            "n_epci_hidden_crown": flag("hidden_crown"),
            "n_epci_nominal_member": flag("nominal_member"),
            "n_epci_contiguity": c,
            "n_epci_flows": f,
            "n_epci_contiguity_and_flows": c & f,
            "either": c | f,
        }
    )
    systems = rows["metropole_code"].astype("str").to_numpy()
    counts = flags.groupby(systems, sort=True).sum().astype("int64")
    either = counts.pop("either")
    both = counts["n_epci_contiguity_and_flows"]
    counts["jaccard_contiguity_flows"] = (both / either.where(either > 0)).astype(
        "float64"
    )
    return counts


#: Columns of :func:`observatory.systems.pairs.system_measures` and their names
#: on the ``metropoles`` layer.
MEASURE_COLUMNS = {
    "employed_residents": "system_employed_residents",
    "jobs": "system_jobs",
    "internal_workers": "system_internal_workers",
    "between_epci_flow": "between_epci_flow",
    "between_crown_flow": "between_crown_flow",
    "polycentricity_share": "polycentricity_share",
    "self_containment_share": "system_self_containment_share",
    "job_containment_share": "system_job_containment_share",
}

#: Overlap columns of :func:`observatory.systems.functional.aav_overlap` kept,
#: and their names on the ``metropoles`` layer.
OVERLAP_COLUMNS = {
    "epci_aav": "n_epci_aav",
    "epci_contiguity_and_aav": "n_epci_contiguity_and_aav",
    "epci_flows_and_aav": "n_epci_flows_and_aav",
    "epci_all_three": "n_epci_all_three",
    "jaccard_contiguity_aav": "jaccard_contiguity_aav",
    "jaccard_flows_aav": "jaccard_flows_aav",
    "aav_weight_in_contiguity_share": "aav_weight_in_contiguity_share",
    "aav_weight_in_flows_share": "aav_weight_in_flows_share",
}


def _metropole_nodes(nodes: pd.DataFrame, codes: pd.Series) -> pd.DataFrame:
    """Give the métropole's role in the dominant flows and the size of its tree."""
    node = nodes.set_index(nodes["epci_code"].astype("string"))
    tree = nodes.groupby(nodes["terminal_code"].astype("string")).size()
    at = node.reindex(codes)
    return pd.DataFrame(
        {
            "metropole_node_role": at["node_role"].to_numpy(),
            "metropole_terminal_code": at["terminal_code"].to_numpy(),
            "metropole_tree_epci": codes.map(tree).fillna(0).astype("int64").to_numpy(),
        }
    )


def with_metropole_flow_columns(
    metropoles: gpd.GeoDataFrame,
    rows: pd.DataFrame,
    measures: pd.DataFrame,
    aav: pd.DataFrame | None,
    overlap: pd.DataFrame | None,
    nodes: pd.DataFrame,
    crown_rule: str,
    names: pd.Series,
) -> gpd.GeoDataFrame:
    """Add the system's measures, placements, dominant flows and AAV overlap to ``metropoles``.

    Parameters
    ----------
    metropoles
        The layer (one row per métropole).
    rows
        The functional rows (:func:`with_epci_flow_columns`).
    measures
        :func:`observatory.systems.pairs.system_measures` of the systems' members.
    aav, overlap
        The métropoles' AAV (``aav_code``, ``aav_name``, ``metropole_in_aav_share``)
        and :func:`observatory.systems.functional.aav_overlap`; None without AAV.
    nodes
        The dominant flows' nodes.
    crown_rule
        ``[territories] crown_rule``.
    names
        EPCI names by SIREN.
    """
    codes = metropoles["metropole_code"].astype("string").reset_index(drop=True)
    out = pd.DataFrame(metropoles.drop(columns=metropoles.geometry.name))
    out = out.reset_index(drop=True)
    out["crown_rule"] = crown_rule
    counts = _system_counts(rows).reindex(codes)
    for column in counts.columns:
        out[column] = counts[column].to_numpy()
    measured = measures.set_index(measures["metropole_code"].astype("string"))
    measured = measured.reindex(codes)
    for source, target in MEASURE_COLUMNS.items():
        out[target] = measured[source].to_numpy(dtype="float64")
    roles = _metropole_nodes(nodes, codes)
    for column in roles.columns:
        out[column] = roles[column].to_numpy()
    out["metropole_terminal_name"] = out["metropole_terminal_code"].map(names)
    chosen = aav if aav is not None else pd.DataFrame(columns=["metropole_code"])
    chosen = chosen.set_index(chosen["metropole_code"].astype("string")).reindex(codes)
    for column in ("aav_code", "aav_name"):
        values = chosen[column] if column in chosen else pd.Series(pd.NA, index=codes)
        out[column] = values.astype("string").to_numpy()
    share = chosen.get("metropole_in_aav_share", pd.Series(np.nan, index=codes))
    out["metropole_in_aav_share"] = share.to_numpy(dtype="float64", na_value=np.nan)
    both = overlap if overlap is not None else pd.DataFrame(columns=["metropole_code"])
    both = both.set_index(both["metropole_code"].astype("string")).reindex(codes)
    for source, target in OVERLAP_COLUMNS.items():
        values = both[source] if source in both else pd.Series(np.nan, index=codes)
        out[target] = values.to_numpy(dtype="float64", na_value=np.nan)
    return _geo(out, metropoles)


def dominant_flow_lines(
    edges: pd.DataFrame,
    epci: gpd.GeoDataFrame,
    names: pd.Series,
    labels: tuple[int | None, str],
    thresholds: ReliabilitySection,
) -> gpd.GeoDataFrame:
    """Draw the dominant flows between the EPCI of one territory.

    Parameters
    ----------
    edges
        :attr:`observatory.systems.dominant.DominantFlows.edges`.
    epci
        Every EPCI polygon of the territory; an edge with an end outside them
        (another territory, an EPCI without polygon) is left out.
    names
        EPCI names by SIREN.
    labels
        The census vintage and ``[territories] dominant_weight``.
    thresholds
        INSEE's reliability thresholds (``reliability``).
    """
    points = epci.set_index("epci_code").geometry.representative_point()
    drawn = pd.Series(points.index)
    inside = is_in(edges["origin_code"], drawn) & is_in(
        edges["destination_code"], drawn
    )
    lines = edges[inside].reset_index(drop=True).copy()
    lines["origin_name"] = lines["origin_code"].map(names)
    lines["destination_name"] = lines["destination_code"].map(names)
    lines["terminal_name"] = lines["terminal_code"].map(names)
    lines["reliability"] = reliability_class(lines["workers"], thresholds)
    lines["vintage"], lines["dominant_weight"] = labels
    start = np.column_stack(
        [points.x.reindex(lines["origin_code"]), points.y.reindex(lines["origin_code"])]
    )
    end = np.column_stack(
        [
            points.x.reindex(lines["destination_code"]),
            points.y.reindex(lines["destination_code"]),
        ]
    )
    geometry = shapely.linestrings(np.stack([start, end], axis=1).reshape(-1, 2, 2))
    return gpd.GeoDataFrame(lines, geometry=geometry, crs=epci.crs)
