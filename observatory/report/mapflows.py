"""What a system's map shows of the flows' disagreements with its contiguity crowns.

The same marks as the QGIS style (:mod:`observatory.layers.flow_styles`), same
colours: the hidden crown (EPCI the flows place beyond the contiguity crowns)
filled by class and outlined with long magenta dashes, the nominal members
(crown EPCI with almost no dependence) hatched dark teal, and the EPCI of the
métropole's attraction area that no rule placed outlined with orange dots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
from matplotlib.axes import Axes
from shapely.geometry.base import BaseGeometry

from observatory.layers.flow_styles import (
    AAV_ONLY_COLOUR,
    HIDDEN_CROWN_COLOUR,
    NOMINAL_MEMBER_COLOUR,
)
from observatory.report.mapdata import MapSystem, percent_fr
from observatory.report.mapdraw import MapScale, draw_polygons
from observatory.report.maplegend import LegendSection, SwatchKey
from observatory.systems.classify import NO_DATA_CLASS

#: Hatching of the nominal members (matplotlib's, drawn in the edge colour).
NOMINAL_HATCH = "\\\\"

Simplify = Callable[[gpd.GeoSeries, MapScale], Sequence[BaseGeometry]]


def _flag(frame: pd.DataFrame | None, column: str) -> pd.Series:
    # A flag column read back from Parquet may hold None: missing is False.
    if frame is None or column not in frame:
        return pd.Series(False, index=[] if frame is None else frame.index)
    return frame[column].fillna(False).astype(bool)


def outside_rows(system: MapSystem, kind: str) -> gpd.GeoDataFrame:
    """Return the system's rows beyond its crowns placed by ``kind`` (flows or aav)."""
    outside = system.outside
    if outside is None or outside.empty or "placed_by" not in outside:
        return gpd.GeoDataFrame(geometry=[], crs=system.epci.crs)
    return outside[outside["placed_by"] == kind]


def nominal_rows(system: MapSystem) -> gpd.GeoDataFrame:
    """Return the nominal members among the system's crown EPCI."""
    return system.epci[_flag(system.epci, "nominal_member").to_numpy()]


def draw_disagreements(
    ax: Axes,
    system: MapSystem,
    scale: MapScale,
    colours: Mapping[str, str],
    simplify: Simplify,
) -> None:
    """Draw the hidden crown and AAV-only EPCI by class with their outline, hatch nominal members."""
    for kind, colour, style in (
        ("flows", HIDDEN_CROWN_COLOUR, (0, (6, 3))),
        ("aav", AAV_ONLY_COLOUR, (0, (1, 2))),
    ):
        rows = outside_rows(system, kind)
        if rows.empty:
            continue
        classes = rows["epci_class"].fillna(NO_DATA_CLASS).astype(str)
        draw_polygons(
            ax,
            simplify(rows.geometry, scale),
            [colours.get(c, "#ffffff") for c in classes],
            edgecolor="#8c8c8c",
            linewidth=scale.points(0.2),
            zorder=2,
        )
        draw_polygons(
            ax,
            simplify(rows.geometry, scale),
            "none",
            edgecolor=colour,
            linewidth=scale.points(0.9 if kind == "flows" else 0.7),
            zorder=5,
            linestyle=style,
        )
    nominal = nominal_rows(system)
    if len(nominal):
        draw_polygons(
            ax,
            simplify(nominal.geometry, scale),
            "none",
            edgecolor=NOMINAL_MEMBER_COLOUR,
            linewidth=0.0,
            zorder=3,
            hatch=NOMINAL_HATCH,
        )


def _shares(manifest: Mapping[str, Any]) -> tuple[str, str]:
    # The thresholds the run used, as the manifest's flow_systems records them.
    report = manifest.get("flow_systems") or {}
    return (
        percent_fr(report.get("hidden_crown_min_share", 0.15), 0),
        percent_fr(report.get("nominal_member_max_share", 0.05), 1),
    )


def disagreement_legend(
    system: MapSystem, manifest: Mapping[str, Any]
) -> LegendSection | None:
    """Return the legend of the marks drawn on this map (None when there is none)."""
    hidden, nominal = _shares(manifest)
    keys: list[SwatchKey] = []
    labels: list[str] = []
    if len(outside_rows(system, "flows")):
        keys.append(SwatchKey("#ffffff", edge=HIDDEN_CROWN_COLOUR, linestyle="--"))
        labels.append(f"Couronne cachée : hors couronnes,\ndépendance ≥ {hidden}")
    if len(nominal_rows(system)):
        keys.append(
            SwatchKey("#ffffff", edge=NOMINAL_MEMBER_COLOUR, hatch=NOMINAL_HATCH)
        )
        labels.append(f"Membre nominal : couronne,\ndépendance < {nominal}")
    if len(outside_rows(system, "aav")):
        keys.append(SwatchKey("#ffffff", edge=AAV_ONLY_COLOUR, linestyle=":"))
        labels.append("Dans l'aire d'attraction\nseulement")
    if not keys:
        return None
    return LegendSection("Contiguïté et flux", keys, labels)
