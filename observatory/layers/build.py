"""Build the map layers of a run from its systems (pure functions on (Geo)DataFrames).

Each territory gets three layers, in its own CRS: ``epci_indicators`` (the EPCI
polygons with their indicators), ``flows`` (one line per pair of distinct EPCI of
a system) and ``metropoles`` (one row per system, on the métropole's polygon). The
flow matrix stays a plain table. Their columns are :mod:`observatory.layers.schemas`'s.
"""

from __future__ import annotations

import itertools
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.geography import on_distinct, place_names
from observatory.systems.classify import NO_DATA_CLASS
from observatory.systems.codebook import is_in
from observatory.systems.flows import ORDER_OF_MAGNITUDE, reliability_class
from observatory.systems.modes import MODES

#: Layers of each territory, in the order they are written; ``dominant_flows``
#: is added by :func:`observatory.layers.flow_layers.dominant_flow_lines`.
TERRITORY_LAYERS = ("epci_indicators", "flows", "metropoles", "dominant_flows")


#: Columns the detailed file adds to each flow line (null without it).
PAIR_MODE_COLUMNS = (
    *(f"{m}_share" for m in MODES),
    "distance_km",
    "person_km",
    *(f"{m}_person_km" for m in MODES if m != "none"),
)


def epci_names(epci: pd.DataFrame) -> pd.Series:
    """Return the EPCI names indexed by SIREN (``epci_code``, ``epci_name``)."""
    return pd.Series(epci["epci_name"].to_numpy(), index=epci["epci_code"].to_numpy())


def named_indicators(
    indicators: pd.DataFrame,
    names: pd.Series,
    attributes: pd.DataFrame,
    vintages: tuple[int | None, int | None],
) -> pd.DataFrame:
    """Add the vintages, the names and the EPCI attributes the layers show.

    Parameters
    ----------
    indicators
        Classified indicators of every system.
    names
        EPCI names by SIREN (:func:`epci_names`).
    attributes
        ``epci_code``, ``epci_nature``, ``n_communes`` of every EPCI with a polygon.
    vintages
        The census vintage of the flows and the earlier one compared with (or None).
    """
    out = indicators.copy()
    props = attributes.set_index("epci_code")
    out["vintage"], out["previous_vintage"] = vintages
    out["metropole_name"] = out["metropole_code"].map(names)
    out["epci_name"] = out["epci_code"].map(names)
    out["epci_nature"] = out["epci_code"].map(props["epci_nature"])
    out["n_communes"] = out["epci_code"].map(props["n_communes"])
    out["main_other_destination_name"] = out["main_other_destination_code"].map(names)
    return out


def named_matrix(matrix: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """Name the origin and destination of every row of the flow matrix."""
    out = matrix.copy()
    # A few hundred places over thousands of rows: name each place once.
    for end in ("origin", "destination"):
        out[f"{end}_name"] = on_distinct(
            out[f"{end}_code"], lambda codes: place_names(codes, names)
        )
    return out


def flow_lines(
    flows: pd.DataFrame,
    crowns: pd.DataFrame,
    epci: gpd.GeoDataFrame,
    thresholds: ReliabilitySection,
) -> gpd.GeoDataFrame:
    """Draw each flow between two EPCI of a system as a line between their points.

    Parameters
    ----------
    flows
        EPCI pairs with ``workers`` and ``workers_previous``
        (:func:`observatory.systems.flows.flows_with_previous`); pairs with no
        worker in either vintage are left out.
    crowns
        ``metropole_code``, ``epci_code``, ``crown`` of the systems drawn.
    epci
        EPCI polygons; lines join their representative points, in their CRS.
    thresholds
        INSEE's reliability thresholds (the ``reliability`` column).
    """
    points = epci.set_index("epci_code").geometry.representative_point()
    xy = pd.DataFrame({"x": points.x, "y": points.y})
    # The pairs of the whole territory with both ends in these systems, found
    # by hashing before any string comparison or merge.
    members = crowns["epci_code"]
    pairs = flows[
        is_in(flows["origin_code"], members) & is_in(flows["destination_code"], members)
    ]
    present = (pairs["workers"] > 0) | (pairs["workers_previous"].fillna(0) > 0)
    pairs = pairs[(pairs["origin_code"] != pairs["destination_code"]) & present]
    o = crowns.rename(columns={"epci_code": "origin_code", "crown": "origin_crown"})
    d = crowns.rename(
        columns={"epci_code": "destination_code", "crown": "destination_crown"}
    )
    lines = pairs.merge(o, on="origin_code").merge(
        d, on=["metropole_code", "destination_code"]
    )
    # Crowns may be missing (NaN): EPCI the flows place beyond the contiguity crowns.
    lines["flow_type"] = np.select(
        [
            (lines["destination_crown"] == 0).to_numpy(dtype=bool),
            (lines["origin_crown"] == 0).to_numpy(dtype=bool),
        ],
        ["to_metropole", "from_metropole"],
        default="between_crowns",
    )
    lines["reliability"] = reliability_class(lines["workers"], thresholds)
    if not len(lines):
        return gpd.GeoDataFrame(lines, geometry=[], crs=epci.crs)
    start = xy.reindex(lines["origin_code"]).to_numpy()
    end = xy.reindex(lines["destination_code"]).to_numpy()
    geometry = shapely.linestrings(np.stack([start, end], axis=1))
    return gpd.GeoDataFrame(lines, geometry=geometry, crs=epci.crs)


def with_pair_modes(
    lines: gpd.GeoDataFrame, pair_modes: pd.DataFrame | None
) -> gpd.GeoDataFrame:
    """Add the modal shares and distances of each line's pair (null without them)."""
    columns = list(PAIR_MODE_COLUMNS)
    if pair_modes is None:
        return lines.assign(**dict.fromkeys(columns, np.nan))
    keys = ["origin_code", "destination_code"]
    merged = lines.merge(pair_modes[[*keys, *columns]], on=keys, how="left")
    return gpd.GeoDataFrame(merged, geometry=lines.geometry.name, crs=lines.crs)


def epci_layer(indicators: pd.DataFrame, epci: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Put each indicators row on its EPCI's polygon."""
    geometry = (
        epci.set_index("epci_code").geometry.reindex(indicators["epci_code"]).values
    )
    return gpd.GeoDataFrame(indicators, geometry=geometry, crs=epci.crs)


def _sums(labels: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sum ``values`` by label in ``range(size)`` as ``Series.sum`` sums each group.

    Missing values count as 0 and each group's values are summed by numpy in
    row order, as pandas sums a filtered Series: the same float, to the bit.
    """
    order = np.argsort(labels, kind="stable")
    values = np.where(np.isnan(values), 0.0, values)[order]
    bounds = np.searchsorted(labels[order], np.arange(size + 1))
    return np.array(
        [values[start:end].sum() for start, end in itertools.pairwise(bounds)],
        dtype="float64",
    )


def _counts(labels: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    # Number of ``rows`` (a mask) with each label in range(size).
    return np.bincount(labels[rows], minlength=size).astype("int64")


def _system_rows(
    indicators: pd.DataFrame, lines: pd.DataFrame, class_codes: list[str]
) -> pd.DataFrame:
    """One row per system: the métropole's own figures, then crown by crown, then counts."""
    rows = indicators[indicators["metropole_code"].notna()]
    labels, codes = pd.factorize(rows["metropole_code"].astype("string"), sort=True)
    size = len(codes)
    crown = rows["crown"].to_numpy(dtype="float64", na_value=np.nan)
    # The métropole's own row: the first of its system with crown 0.
    mine = np.flatnonzero(crown == 0)
    found, first = np.unique(labels[mine], return_index=True)
    me = np.full(size, -1)
    me[found] = mine[first]
    out: dict[str, Any] = {
        "metropole_code": codes.astype("str"),
        "metropole_name": rows["metropole_name"].array.take(me, allow_fill=True),
    }
    for column in ("employed_residents", "jobs", "self_containment_share"):
        values = rows[column].to_numpy(dtype="float64", na_value=np.nan)
        out[column] = np.where(me >= 0, values[me], np.nan)
    for k in (1, 2):
        ring = crown == k
        residents, to_m, from_m = (
            _sums(
                labels[ring],
                rows[c].to_numpy(dtype="float64", na_value=np.nan)[ring],
                size,
            )
            for c in ("employed_residents", "flow_to_metropole", "flow_from_metropole")
        )
        out[f"n_epci_crown{k}"] = _counts(labels, ring, size)
        out[f"employed_residents_crown{k}"] = residents
        out[f"flow_crown{k}_to_metropole"] = to_m
        out[f"flow_metropole_to_crown{k}"] = from_m
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"dependence_share_crown{k}"] = np.where(
                residents > 0, to_m / residents, np.nan
            )
    at = pd.Index(codes).get_indexer(pd.Index(lines["metropole_code"].astype("string")))
    drawn = at >= 0
    fragile = (lines["reliability"] == ORDER_OF_MAGNITUDE).fillna(False).to_numpy(bool)
    out["n_flows"] = _counts(at, drawn, size)
    out["n_flows_order_of_magnitude"] = _counts(at, drawn & fragile, size)
    classes = rows["epci_class"].astype("string")
    for code in class_codes:
        of_class = (classes == code).fillna(False).to_numpy(dtype=bool)
        out[f"n_class_{code}"] = _counts(labels, (crown > 0) & of_class, size)
    frame = pd.DataFrame(out)
    frame["metropole_name"] = frame["metropole_name"].astype("str")
    return frame


def metropoles_layer(
    indicators: pd.DataFrame,
    lines: pd.DataFrame,
    epci: gpd.GeoDataFrame,
    classification: ClassificationSection,
) -> gpd.GeoDataFrame:
    """Sum each system by crown, count its flows and classes, on the métropole's polygon.

    Parameters
    ----------
    indicators
        Classified indicators of the systems (:func:`epci_layer`'s rows).
    lines
        The flow lines of the same systems (:func:`flow_lines`).
    epci
        EPCI polygons of the territory.
    classification
        The rules: one class count per class, and one for EPCI without data.
    """
    class_codes = [r.class_code for r in classification.rules] + [NO_DATA_CLASS]
    frame = _system_rows(pd.DataFrame(indicators), lines, class_codes)
    geometry = (
        epci.set_index("epci_code").geometry.reindex(frame["metropole_code"]).values
    )
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=epci.crs)


def territory_layers(
    epci: gpd.GeoDataFrame,
    crowns: pd.DataFrame,
    indicators: pd.DataFrame,
    pairs: pd.DataFrame,
    pair_modes: pd.DataFrame | None,
    names: pd.Series,
    vintages: tuple[int | None, int | None],
    thresholds: ReliabilitySection,
    classification: ClassificationSection,
) -> dict[str, gpd.GeoDataFrame]:
    """Build the layers of the systems of one territory, in its CRS.

    Parameters
    ----------
    epci
        The territory's EPCI polygons.
    crowns, indicators
        Crowns and named indicators (:func:`named_indicators`) of its systems.
    pairs
        EPCI flows of both vintages (``flows_with_previous``), all territories.
    pair_modes
        Modal shares and distances by EPCI pair, or None without the detailed file.
    names
        EPCI names by SIREN.
    vintages
        The census vintage of the flows and the earlier one compared with (or None).
    thresholds, classification
        INSEE's reliability thresholds and the classification rules.

    Returns
    -------
    dict
        The layers of :data:`TERRITORY_LAYERS`, by name.
    """
    lines = with_pair_modes(flow_lines(pairs, crowns, epci, thresholds), pair_modes)
    lines["vintage"], lines["previous_vintage"] = vintages
    lines["metropole_name"] = lines["metropole_code"].map(names)
    lines["origin_name"] = lines["origin_code"].map(names)
    lines["destination_name"] = lines["destination_code"].map(names)
    lines = lines.sort_values(
        ["metropole_code", "origin_code", "destination_code"], ignore_index=True
    )
    polygons = epci_layer(indicators, epci)
    return {
        "epci_indicators": polygons,
        "flows": lines,
        "metropoles": metropoles_layer(polygons, lines, epci, classification),
    }
