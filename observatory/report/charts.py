"""Bar charts of a system's key indicators, EPCI by EPCI (pure, no ``pyplot``).

- :func:`dependence_chart`: dependence (share of an EPCI's working residents
  who work in the métropole) and attraction (share of its jobs held by
  residents of the métropole), horizontal bars in the class colours of the
  maps, EPCI grouped by crown and sorted;
- :func:`flows_chart`: workers going to the métropole and coming from it,
  diverging bars, fragile values (under INSEE's usable threshold) pale.

Both return a :class:`matplotlib.figure.Figure` with the page's header, the
synthetic notice when it applies and the sources line; numbers and labels
are French (``12,5 %``, ``13 391``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.layers.captions import census_text
from observatory.layers.codes import class_labels
from observatory.layers.styles import FLOW_GROUPS, class_colours
from observatory.report.mapdata import (
    MapSystem,
    count_text,
    percent_fr,
    short_name,
    territory_text,
)
from observatory.report.mapframe import CHART_DPI, page_figure, page_texts
from observatory.systems.classify import NO_DATA_CLASS
from observatory.systems.flows import ORDER_OF_MAGNITUDE

#: Bars of the flows to the métropole (the maps' colour) and from it.
TO_COLOUR, FROM_COLOUR = FLOW_GROUPS[0][2], "#3f8fc5"


#: Height of a row of bars, and of the page above and under the axes (inches).
ROW_INCHES, TOP_INCHES, BOTTOM_INCHES = 0.27, 1.75, 1.2


#: Left edge of the bars (figure fraction): EPCI names go on its left.
AXES_LEFT = 0.23


@dataclass(frozen=True)
class Rows:
    """The rows of a chart: EPCI grouped by crown, a heading row before each crown."""

    epci: pd.DataFrame
    y: npt.NDArray[np.float64]
    headings: list[tuple[float, str]]


def crown_name(crown: int) -> str:
    """Return a crown's French name: ``1re couronne``, ``2e couronne``."""
    return f"{crown}{'re' if crown == 1 else 'e'} couronne"


def chart_rows(system: MapSystem, key: pd.Series) -> Rows:
    """Order the EPCI of the crowns by crown, then by ``key`` (decreasing)."""
    crowns = system.epci[system.epci["crown"] > 0]
    crowns = crowns.assign(_key=key.reindex(crowns.index).fillna(0).to_numpy())
    ordered = crowns.sort_values(
        ["crown", "_key", "epci_code"], ascending=[True, False, True]
    )
    ys: list[float] = []
    headings: list[tuple[float, str]] = []
    y = 0.0
    for crown, part in ordered.groupby("crown", sort=True):
        headings.append((y, crown_name(int(str(crown)))))
        y -= 1
        for _ in range(len(part)):
            ys.append(y)
            y -= 1
    return Rows(ordered, np.array(ys, dtype=float), headings)


def _chart_page(
    rows: Rows, title: str, subtitle: str, manifest: Mapping[str, Any]
) -> Figure:
    count = len(rows.y) + len(rows.headings)
    height = TOP_INCHES + BOTTOM_INCHES + ROW_INCHES * count
    fig = page_figure((12.0, max(height, 4.5)), CHART_DPI)
    page_texts(fig, title, subtitle, manifest)
    return fig


def _axes(fig: Figure, left: float, width: float, rows: Rows, names: bool) -> Axes:
    """Add the axes of a panel: a row per EPCI, crowns headed and separated."""
    height = fig.get_size_inches()[1]
    bottom, top = BOTTOM_INCHES / height, 1 - TOP_INCHES / height
    ax = fig.add_axes((left, bottom, width, top - bottom))
    ax.set_ylim(min(rows.y, default=-1) - 0.7, 0.7)
    ax.set_yticks([])
    if not len(rows.y) and names:
        ax.text(
            0.5,
            0.5,
            "Aucun EPCI dans les couronnes de ce pôle",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
            color="#404040",
        )
    # Names as plain texts beside the axis: lighter to draw than tick labels.
    beside = ax.get_yaxis_transform()
    if names:
        for y, name in zip(rows.y, rows.epci["epci_name"], strict=True):
            ax.text(
                -0.012,
                y,
                textwrap.fill(short_name(str(name)), 30),
                transform=beside,
                ha="right",
                va="center",
                fontsize=8,
                linespacing=0.95,
            )
    ax.tick_params(axis="x", labelsize=7.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    for y, text in rows.headings:
        if names:
            ax.text(
                -0.012,
                y,
                text,
                transform=beside,
                ha="right",
                va="center",
                fontsize=8.5,
                fontweight="bold",
            )
        ax.axhline(y - 0.5, color="#bdbdbd", linewidth=0.5)
    return ax


def _bottom_legend(fig: Figure, handles: list[Patch], labels: list[str]) -> None:
    # Under the axes and their tick labels, above the sources line.
    if not handles:
        return
    height = fig.get_size_inches()[1]
    fig.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(AXES_LEFT - 0.01, 0.42 / height),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
        handlelength=1.4,
        columnspacing=1.4,
    )


def _share_bars(
    ax: Axes, rows: Rows, column: str, colours: list[str], xmax: float
) -> None:
    values = rows.epci[column].to_numpy(float)
    ax.barh(
        rows.y,
        np.nan_to_num(values),
        height=0.72,
        color=colours,
        edgecolor="#6e6e6e",
        linewidth=0.4,
    )
    for y, value in zip(rows.y, values, strict=True):
        end = value if np.isfinite(value) else 0.0
        ax.text(end + xmax * 0.01, y, percent_fr(value), va="center", fontsize=7)
    ax.set_xlim(0, xmax)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: percent_fr(v, 0)))


def _subtitle(system: MapSystem, manifest: Mapping[str, Any], more: str) -> str:
    where = territory_text(system.territory)
    text = census_text(manifest) + (f", {where}" if where else "") + more
    return text[:1].upper() + text[1:]


def dependence_chart(
    system: MapSystem,
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
) -> Figure:
    """Return the dependence and attraction of the system's EPCI, side by side.

    Bars take the class colour of their EPCI (the maps' palette); the EPCI are
    grouped by crown, most dependent first; both panels share one scale.
    """
    rows = chart_rows(system, system.epci["dependence_share"])
    fig = _chart_page(
        rows,
        f"{system.name} : dépendance et attraction des EPCI des couronnes",
        _subtitle(
            system,
            manifest,
            " ; couleur : lien de l'EPCI avec la métropole (classe des cartes)",
        ),
        manifest,
    )
    colours_of = class_colours(classification)
    classes = rows.epci["epci_class"].fillna(NO_DATA_CLASS)
    colours = [colours_of.get(str(c), "#ffffff") for c in classes]
    shares = rows.epci[["dependence_share", "attraction_share"]].to_numpy(float)
    xmax = max(float(np.nanmax(shares, initial=0.0)) * 1.18, 0.05)
    panels = (
        ("dependence_share", AXES_LEFT, DEPENDENCE_TITLE),
        ("attraction_share", AXES_LEFT + 0.395, ATTRACTION_TITLE),
    )
    for column, left, title in panels:
        ax = _axes(fig, left, 0.345, rows, names=left == AXES_LEFT)
        _share_bars(ax, rows, column, colours, xmax)
        ax.set_title(title, fontsize=9, loc="left", pad=6)
    labels = class_labels(classification)
    present = [c for c in colours_of if c in set(classes)]
    _bottom_legend(
        fig,
        [
            Patch(facecolor=colours_of[c], edgecolor="#6e6e6e", linewidth=0.4)
            for c in present
        ],
        [labels[c] for c in present],
    )
    return fig


#: Titles of the two panels of :func:`dependence_chart`.
DEPENDENCE_TITLE = (
    "Dépendance : part des actifs résidents\nqui travaillent dans la métropole"
)
ATTRACTION_TITLE = (
    "Attraction : part des emplois de l'EPCI\noccupés par des résidents de la métropole"
)


def _flow_bars(
    ax: Axes, rows: Rows, column: str, sign: float, colour: str, xmax: float
) -> None:
    values = rows.epci[column].to_numpy(float)
    fragile = (rows.epci[f"{column}_reliability"] == ORDER_OF_MAGNITUDE).to_numpy()
    colours = [to_rgba(colour, 0.35 if f else 1.0) for f in fragile]
    ax.barh(rows.y, sign * np.nan_to_num(values), height=0.72, color=colours)
    for y, value in zip(rows.y, values, strict=True):
        end = sign * (value if np.isfinite(value) else 0.0)
        ax.text(
            end + sign * xmax * 0.01,
            y,
            count_text(value),
            va="center",
            ha="left" if sign > 0 else "right",
            fontsize=7,
        )


def flows_chart(
    system: MapSystem, manifest: Mapping[str, Any], reliability: ReliabilitySection
) -> Figure:
    """Return the workers going to the métropole (left) and coming from it (right).

    One row per EPCI of the crowns, grouped by crown, the largest exchanges
    first; values under INSEE's usable threshold are pale (an order of
    magnitude only).
    """
    epci = system.epci
    rows = chart_rows(
        system,
        epci["flow_to_metropole"].fillna(0) + epci["flow_from_metropole"].fillna(0),
    )
    fig = _chart_page(
        rows,
        f"{system.name} : actifs entre la métropole et les EPCI des couronnes",
        _subtitle(
            system, manifest, " ; EPCI par couronne, les plus grands échanges d'abord"
        ),
        manifest,
    )
    flows = rows.epci[["flow_to_metropole", "flow_from_metropole"]].to_numpy(float)
    xmax = max(float(np.nanmax(flows, initial=0.0)) * 1.22, 10.0)
    ax = _axes(fig, AXES_LEFT, 0.73, rows, names=True)
    _flow_bars(ax, rows, "flow_to_metropole", -1, TO_COLOUR, xmax)
    _flow_bars(ax, rows, "flow_from_metropole", 1, FROM_COLOUR, xmax)
    ax.set_xlim(-xmax, xmax)
    ax.axvline(0, color="#404040", linewidth=0.8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: count_text(abs(v))))
    ax.set_xlabel("Nombre d'actifs (trajets domicile → travail)", fontsize=8)
    ax.set_title(
        "◀ Vers la métropole : actifs résidant dans l'EPCI",
        loc="left",
        fontsize=9,
        color=TO_COLOUR,
    )
    ax.set_title(
        "Depuis la métropole : actifs y résidant ▶",
        loc="right",
        fontsize=9,
        color=FROM_COLOUR,
    )
    usable = count_text(reliability.usable_min)
    _bottom_legend(
        fig,
        [
            Patch(color=TO_COLOUR),
            Patch(color=FROM_COLOUR),
            Patch(color=to_rgba("#808080", 0.35)),
        ],
        [
            "Vers la métropole",
            "Depuis la métropole",
            f"Moins de {usable} actifs : ordre de grandeur seulement (INSEE)",
        ],
    )
    return fig
