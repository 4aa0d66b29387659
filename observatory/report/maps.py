"""The figure of each system's map, its land panel and the atlas page layout.

Each map is an A4 landscape page (12 x 8.5 inches, 2400 x 1700 pixels at 200
dpi): the EPCI of the system filled by class with the QGIS style's palette
(:func:`observatory.layers.styles.class_colours`), the métropole outlined bold,
the EPCI named, the flow lines drawn as the style draws them (half arrows, width
classes of workers, largest on top, fragile flows faint, none without workers),
a legend, a scale bar, a north arrow, the title, the sources and, when the
flows are synthetic, a notice saying so. Files, keyed by their name in the run
folder (drawn by :func:`observatory.report.render.render_maps`):

- ``maps/<metropole_code>.png``: one map per system (overseas ones in their
  territory's CRS);
- ``atlas.pdf``: a first page listing the systems, then one page per map;
- ``charts/<metropole_code>_dependance.png``: dependence and attraction of the
  EPCI of the crowns (:func:`observatory.report.charts.dependence_chart`);
- ``charts/<metropole_code>_flux.png``: flows to and from the métropole
  (:func:`observatory.report.charts.flows_chart`).

Every file is a function of its inputs: no timestamp, so two renders of the
same run give the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.layers.captions import census_text
from observatory.layers.codes import class_labels
from observatory.layers.styles import (
    EPCI_OUTLINE,
    FLOW_GROUPS,
    FLOW_TRIM,
    FRAGILE_ALPHA,
    METROPOLE_OUTLINE,
    class_colours,
)
from observatory.report.mapdata import (
    MapSystem,
    count_text,
    flow_class_index,
    flow_classes_of,
    short_name,
    territory_text,
)
from observatory.report.mapdraw import (
    Label,
    MapScale,
    draw_flows,
    draw_north_arrow,
    draw_polygons,
    draw_scale_bar,
    half_arrows,
    place_labels,
)
from observatory.report.mapflows import disagreement_legend, draw_disagreements
from observatory.report.mapframe import (
    LEGEND_BOX,
    MAP_BOX,
    page_figure,
    page_texts,
)
from observatory.report.mapland import (
    draw_farmland,
    draw_land_charts,
    farmland_legend,
    land_notice,
    land_sources_line,
    land_subtitle,
)
from observatory.report.maplegend import (
    ArrowKey,
    LegendSection,
    SwatchKey,
    draw_legend,
)
from observatory.systems.classify import METROPOLE_CLASS, NO_DATA_CLASS

#: Colours of the flows with the métropole and between EPCI of the crowns.
WITH_METROPOLE, BETWEEN_CROWNS = FLOW_GROUPS[0][2], FLOW_GROUPS[1][2]


#: The smallest flow class drawn between EPCI of the crowns (2: from INSEE's
#: reliable threshold); every flow with the métropole is drawn.
BETWEEN_CROWNS_MIN_CLASS = 2


#: Gap (mm) between the arrows and the métropole's point they start or end at.
HUB_CLEARANCE_MM = 5.0


#: Fill of the EPCI of other systems around a system (context, not classified).
CONTEXT_FILL = "#ececec"


def _extent(system: MapSystem, aspect: float) -> tuple[float, float, float, float]:
    # The system's bounds with a margin, widened to the map frame's aspect; the
    # EPCI placed beyond its crowns (hidden crown, AAV only) are in it.
    shown = [system.epci.geometry]
    if system.outside is not None and len(system.outside):
        shown.append(system.outside.geometry)
    x0, y0, x1, y1 = pd.concat(shown).total_bounds
    pad = 0.04 * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    width, height = x1 - x0, y1 - y0
    if width / height < aspect:
        grow = (height * aspect - width) / 2
        x0, x1 = x0 - grow, x1 + grow
    else:
        grow = (width / aspect - height) / 2
        y0, y1 = y0 - grow, y1 + grow
    return float(x0), float(x1), float(y0), float(y1)


def _simplified(geometries: gpd.GeoSeries, scale: MapScale) -> list[BaseGeometry]:
    # A quarter of a millimetre on paper: invisible, and a lighter drawing.
    simple = shapely.simplify(np.asarray(geometries.values), scale.metres(0.25))
    return list(simple)


def _draw_epci(
    ax: Axes, system: MapSystem, scale: MapScale, colours: dict[str, str]
) -> bool:
    """Draw the context, the system's EPCI by class and the métropole's outline."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    frame = shapely.box(x0, y0, x1, y1)
    context = system.context[system.context.intersects(frame)]
    if len(context):
        draw_polygons(
            ax,
            _simplified(context.geometry, scale),
            CONTEXT_FILL,
            edgecolor="white",
            linewidth=0.6,
            zorder=1,
        )
    classes = system.epci["epci_class"].fillna(NO_DATA_CLASS).to_numpy()
    fills = [colours.get(str(c), "#ffffff") for c in classes]
    outline = scale.points(0.2)
    draw_polygons(
        ax,
        _simplified(system.epci.geometry, scale),
        fills,
        edgecolor=EPCI_OUTLINE,
        linewidth=outline,
        zorder=2,
    )
    empty = system.epci[classes == NO_DATA_CLASS]
    if len(empty):
        draw_polygons(
            ax,
            _simplified(empty.geometry, scale),
            "none",
            edgecolor="#9a9a9a",
            linewidth=0.0,
            zorder=3,
            hatch="////",
        )
    draw_disagreements(ax, system, scale, colours, _simplified)
    draw_polygons(
        ax,
        _simplified(gpd.GeoSeries([system.outline]), scale),
        "none",
        edgecolor=METROPOLE_OUTLINE,
        linewidth=scale.points(0.9),
        zorder=6,
    )
    return bool(len(context))


def flow_colour(central: bool, fragile: bool) -> tuple[float, float, float, float]:
    """Return the colour of a flow: dark with the métropole, lighter between crowns.

    Fragile flows are faint (the QGIS style's :data:`FRAGILE_ALPHA`); flows
    between EPCI of the crowns are lighter than in the style, so the flows with
    the métropole stand out on a printed page.
    """
    if fragile:
        return to_rgba(
            WITH_METROPOLE if central else BETWEEN_CROWNS, FRAGILE_ALPHA / 255
        )
    return (
        to_rgba(WITH_METROPOLE, 235 / 255) if central else to_rgba(BETWEEN_CROWNS, 0.55)
    )


def _drawn_flows(system: MapSystem, reliability: ReliabilitySection) -> pd.DataFrame:
    """Return the flows a map draws, in drawing order, with their class.

    Every flow with the métropole; between EPCI of the crowns, the flows of
    :data:`BETWEEN_CROWNS_MIN_CLASS` and above only (the fragile ones would
    hide the map under a mesh). Flows with the métropole are drawn above the
    others, each group by increasing workers (the largest on top).
    """
    lines = system.flows.assign(
        central=system.flows["flow_type"].isin(["to_metropole", "from_metropole"]),
        flow_class=flow_class_index(
            system.flows["workers"], system.flows["reliability"], reliability
        ),
    )
    lines = lines[lines["central"] | (lines["flow_class"] >= BETWEEN_CROWNS_MIN_CLASS)]
    return lines.sort_values(["central", "workers", "origin_code", "destination_code"])


def _draw_flow_lines(
    ax: Axes, system: MapSystem, scale: MapScale, reliability: ReliabilitySection
) -> None:
    """Draw the system's flows as half arrows (:func:`_drawn_flows`)."""
    lines = _drawn_flows(system, reliability)
    if not len(lines):
        return
    classes = flow_classes_of(reliability)
    widths_mm = np.array([classes[i].width_mm for i in lines["flow_class"]])
    fragile = np.array([classes[i].fragile for i in lines["flow_class"]])
    xy = shapely.get_coordinates(np.asarray(lines.geometry.values)).reshape(-1, 2, 2)
    length = np.hypot(*(xy[:, 1] - xy[:, 0]).T)
    # Clear of the places at both ends, farther from the métropole's hub.
    trim = FLOW_TRIM * length
    hub = np.maximum(trim, scale.metres(HUB_CLEARANCE_MM))
    to_hub = (lines["flow_type"] == "to_metropole").to_numpy()
    from_hub = (lines["flow_type"] == "from_metropole").to_numpy()
    polygons = half_arrows(
        xy[:, 0],
        xy[:, 1],
        widths_mm * scale.metres_per_mm,
        np.maximum(1.6, 1.8 * widths_mm) * scale.metres_per_mm,
        (np.where(from_hub, hub, trim), np.where(to_hub, hub, trim)),
        scale.metres(0.15),
    )
    drawn = length - np.where(from_hub | to_hub, hub + trim, 2 * trim) > 0
    colours = [
        flow_colour(central, faint)
        for central, faint in zip(lines["central"], fragile, strict=True)
    ]
    draw_flows(
        ax,
        polygons,
        [c for c, d in zip(colours, drawn, strict=True) if d],
        list(~fragile[drawn]),
        scale.points(0.12),
        zorder=10,
    )


def _labels(system: MapSystem, frame: BaseGeometry) -> list[Label]:
    """Return the names of the system's EPCI, the métropole's bold, at their centres."""
    out = []
    epci = system.epci
    if system.outside is not None and len(system.outside):
        # Beyond the crowns (empty crown): named last, as a third crown would be.
        epci = pd.concat([epci, system.outside.assign(crown=3)])
    for geometry, crown, epci_name in zip(
        epci.geometry, epci["crown"], epci["epci_name"], strict=True
    ):
        part = shapely.intersection(geometry, frame)
        if part.is_empty:
            continue
        largest = max(shapely.get_parts(part), key=lambda g: g.area)
        point = polylabel(largest, tolerance=max(largest.length / 500, 1))
        metropole = bool(crown == 0)
        name = short_name(system.name if metropole else str(epci_name))
        out.append(
            Label(
                text=textwrap.fill(name, 16 if metropole else 18),
                x=point.x,
                y=point.y,
                size=9.5 if metropole else 7.5,
                bold=metropole,
                priority=1e12 if metropole else (3 - int(crown)) * 1e11 + largest.area,
            )
        )
    return out


def _legend_sections(
    classification: ClassificationSection,
    reliability: ReliabilitySection,
    present: set[str],
    context: bool,
) -> list[LegendSection]:
    colours, labels = class_colours(classification), class_labels(classification)
    codes = [c for c in colours if c != NO_DATA_CLASS or c in present]
    keys: list[ArrowKey | SwatchKey] = [
        SwatchKey(
            colours[c],
            metropole=c == METROPOLE_CLASS,
            hatch="////" if c == NO_DATA_CLASS else None,
        )
        for c in codes
    ]
    names = [labels[c] for c in codes]
    if context:
        keys.append(SwatchKey(CONTEXT_FILL))
        names.append("EPCI d'un autre système")
    mid = 1.6
    groups: list[ArrowKey | SwatchKey] = [
        ArrowKey(mid, flow_colour(True, False), True),
        ArrowKey(mid, flow_colour(False, False), True),
    ]
    widths: list[ArrowKey | SwatchKey] = [
        ArrowKey(c.width_mm, flow_colour(True, c.fragile), not c.fragile)
        for c in flow_classes_of(reliability)
    ]
    return [
        LegendSection("Lien des EPCI avec la métropole", keys, names),
        LegendSection(
            "Flux domicile-travail",
            groups,
            [
                "Vers ou depuis la métropole",
                "Entre EPCI des couronnes\n"
                f"(à partir de {count_text(reliability.reliable_min)} actifs)",
            ],
        ),
        LegendSection(
            "Actifs par flux",
            widths,
            [textwrap.fill(c.label, 30) for c in flow_classes_of(reliability)],
        ),
    ]


def legend_note(reliability: ReliabilitySection) -> str:
    """Return the note under the legend: how to read an arrow, INSEE's thresholds."""
    usable = count_text(reliability.usable_min)
    return "\n".join(
        [
            "Chaque flèche va du lieu de résidence",
            "au lieu de travail ; les deux sens",
            "d'une paire d'EPCI sont côte à côte.",
            f"Flux pâles : moins de {usable} actifs,",
            "ordre de grandeur seulement (INSEE).",
            "Couronnes : EPCI contigus à la métropole",
            "(1re), puis à la 1re couronne (2e).",
        ]
    )


def _map_axes(
    fig: Figure, box: tuple[float, float, float, float], system: MapSystem
) -> tuple[Any, tuple[float, float, float, float], MapScale]:
    """Add the framed map axes at ``box``, fitted to the system: axes, extent, scale."""
    ax = fig.add_axes(box)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#9a9a9a")
        spine.set_linewidth(0.6)
    box_w, box_h = fig.get_size_inches() * np.array(box[2:])
    extent = _extent(system, box_w / box_h)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    return ax, extent, MapScale((extent[1] - extent[0]) / (box_w * 25.4))


def map_figure(
    system: MapSystem,
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
    reliability: ReliabilitySection,
) -> Figure:
    """Return the map of one system as a Figure (drawn by Agg, not yet saved).

    Parameters
    ----------
    system
        The system (:func:`observatory.report.mapdata.map_systems`).
    manifest
        The run's manifest (vintages, inputs for the sources, synthetic flows).
    classification, reliability
        The rules (class colours and labels) and INSEE's thresholds (flow classes).
    """
    fig = page_figure()
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax, (x0, x1, y0, y1), scale = _map_axes(fig, MAP_BOX, system)
    colours = class_colours(classification)
    context = _draw_epci(ax, system, scale, colours)
    _draw_flow_lines(ax, system, scale, reliability)
    keep_out = [draw_scale_bar(ax, scale), draw_north_arrow(ax, scale)]
    place_labels(ax, renderer, _labels(system, shapely.box(x0, y0, x1, y1)), keep_out)
    present = set(system.epci["epci_class"].fillna(NO_DATA_CLASS))
    if system.outside is not None:
        present |= set(system.outside["epci_class"].fillna(NO_DATA_CLASS))
    sections = _legend_sections(classification, reliability, present, context)
    if (marks := disagreement_legend(system, manifest)) is not None:
        sections.insert(1, marks)
    draw_legend(fig, LEGEND_BOX, sections, legend_note(reliability))
    where = territory_text(system.territory)
    page_texts(
        fig,
        system.name + (f" ({where})" if where else ""),
        "Lien des EPCI avec la métropole et flux domicile-travail, "
        + census_text(manifest),
        manifest,
    )
    return fig


#: Frames of the land-use panel: its map, the legend and the charts beside it.
LAND_MAP_BOX = (0.015, 0.07, 0.52, 0.79)
LAND_LEGEND_BOX = (0.565, 0.60, 0.42, 0.26)
LAND_CHARTS_BOX = (0.64, 0.07, 0.34, 0.55)


def land_figure(system: MapSystem, manifest: Mapping[str, Any]) -> Figure:
    """Return the land-use panel of one system (:mod:`observatory.report.mapland`).

    The EPCI of the métropole and its crowns by share of farmland, beside the
    land cover of each crown and its farmland per inhabitant of the métropole.
    """
    system = replace(system, outside=None)  # the crowns' land, not the flows'
    fig = page_figure()
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax, (x0, x1, y0, y1), scale = _map_axes(fig, LAND_MAP_BOX, system)
    draw_farmland(ax, system, scale, _simplified)
    draw_polygons(
        ax,
        _simplified(gpd.GeoSeries([system.outline]), scale),
        "none",
        edgecolor=METROPOLE_OUTLINE,
        linewidth=scale.points(0.9),
        zorder=6,
    )
    keep_out = [draw_scale_bar(ax, scale), draw_north_arrow(ax, scale)]
    place_labels(ax, renderer, _labels(system, shapely.box(x0, y0, x1, y1)), keep_out)
    draw_legend(
        fig,
        LAND_LEGEND_BOX,
        farmland_legend(system),
        "Part de la surface couverte par l'occupation\n"
        "du sol classée en cultures, prairies, vergers\n"
        "ou vignes (docs/indicators.md, « Land »).",
    )
    draw_land_charts(fig, system, LAND_CHARTS_BOX)
    page_texts(
        fig,
        f"{system.name} : occupation du sol et complémentarité",
        land_subtitle(manifest),
        manifest,
        sources=land_sources_line(manifest),
        notice=land_notice(manifest),
    )
    return fig


#: The atlas's PDF metadata: no creation date, so the same pages give the same bytes.
ATLAS_METADATA = {
    "CreationDate": None,
    "Creator": "observatory",
    "Title": "Atlas des systèmes domicile-travail des métropoles",
}


def atlas_pdf(figures: list[Figure]) -> bytes:
    """Return the figures as the pages of one PDF, without a creation date."""
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata=ATLAS_METADATA) as pdf:
        for fig in figures:
            pdf.savefig(fig)
    return buffer.getvalue()
