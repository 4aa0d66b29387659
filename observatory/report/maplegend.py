"""The legend of a system's map: classes of the EPCI, flow colours and widths.

The legend draws the same symbols as the map: class fills with the QGIS
style's palette and French labels, half arrows of the flow width classes at
their width on paper. :func:`draw_legend` stacks its sections from the top of
a frame of the page; it places every symbol itself, in inches on the page
(matplotlib's ``Legend`` costs a third of a map's drawing time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from observatory.report.mapdraw import MM_PER_POINT, half_arrows

RGBA = tuple[float, float, float, float]


#: Sizes of the legend, in points: text, titles, a row's height, the symbols.
TEXT_PT, TITLE_PT, ROW_PT, KEY_WIDTH_PT, KEY_HEIGHT_PT = 8.0, 8.5, 14.0, 26.0, 10.0


@dataclass(frozen=True)
class ArrowKey:
    """A half arrow in the legend: body width (mm), colour, white edge or not."""

    width_mm: float
    colour: RGBA
    edged: bool


@dataclass(frozen=True)
class SwatchKey:
    """A class swatch in the legend: fill, bold outline (métropole), hatching.

    ``edge`` and ``linestyle`` draw a coloured outline (and the hatching's
    colour), as the marks of the hidden crown or the nominal members.
    """

    colour: str
    metropole: bool = False
    hatch: str | None = None
    edge: str | None = None
    linestyle: str = "solid"


@dataclass(frozen=True)
class LegendSection:
    """One stacked section of the legend: a bold title and its entries."""

    title: str
    keys: Sequence[ArrowKey | SwatchKey]
    labels: Sequence[str]


def _points(value: float) -> float:
    # Points to inches, the unit the legend is placed in.
    return value / 72


def _swatch(fig: Figure, key: SwatchKey, x: float, y: float) -> None:
    fig.add_artist(
        Rectangle(
            (x, y - _points(KEY_HEIGHT_PT) / 2),
            _points(KEY_WIDTH_PT),
            _points(KEY_HEIGHT_PT),
            transform=fig.dpi_scale_trans,
            facecolor=key.colour,
            edgecolor=key.edge or ("#1a1a1a" if key.metropole else "#8c8c8c"),
            linewidth=1.8 if key.metropole or key.edge else 0.5,
            linestyle=key.linestyle,
            hatch=key.hatch,
        )
    )


def _arrow(fig: Figure, key: ArrowKey, x: float, y: float) -> None:
    body = key.width_mm / 25.4
    head = max(1.6, 1.8 * key.width_mm) / 25.4
    polygon = half_arrows(
        np.array([[x, y - body / 2]]),
        np.array([[x + _points(KEY_WIDTH_PT), y - body / 2]]),
        np.array([body]),
        np.array([head]),
        (np.zeros(1), np.zeros(1)),
        0.0,
    )[0]
    fig.add_artist(
        Polygon(
            polygon,
            closed=True,
            transform=fig.dpi_scale_trans,
            facecolor=key.colour,
            edgecolor="white" if key.edged else "none",
            linewidth=0.12 / MM_PER_POINT if key.edged else 0.0,
        )
    )


def _row_height(key: ArrowKey | SwatchKey) -> float:
    # A row holds its symbol: the widest arrows (body and head) need more.
    if isinstance(key, SwatchKey):
        return ROW_PT
    head = max(1.6, 1.8 * key.width_mm)
    return max(ROW_PT, (key.width_mm + 0.5 * head) / MM_PER_POINT + 4)


def draw_legend(
    fig: Figure,
    frame: tuple[float, float, float, float],
    sections: Sequence[LegendSection],
    note: str,
) -> float:
    """Stack the legend's sections from the top of ``frame``, then a note.

    Parameters
    ----------
    fig
        The page.
    frame
        Left, bottom, width, height of the legend, in fractions of the page.
    sections
        The sections, drawn top down.
    note
        Small italic text under the last section.

    Returns
    -------
    float
        The height (fraction of the page) of the bottom of the note's top line.
    """
    width, height = fig.get_size_inches()
    x = frame[0] * width
    y = (frame[1] + frame[3]) * height - _points(TITLE_PT)
    text_x = x + _points(KEY_WIDTH_PT + 7)
    for section in sections:
        fig.text(
            x / width,
            y / height,
            section.title,
            fontsize=TITLE_PT,
            fontweight="bold",
            va="center",
        )
        y -= _points(ROW_PT + 3)
        for key, label in zip(section.keys, section.labels, strict=True):
            lines = label.count("\n") + 1
            centre = y - _points(TEXT_PT * 1.25) * (lines - 1) / 2
            if isinstance(key, ArrowKey):
                _arrow(fig, key, x, centre)
            else:
                _swatch(fig, key, x, centre)
            fig.text(
                text_x / width,
                centre / height,
                label,
                fontsize=TEXT_PT,
                va="center",
                linespacing=1.15,
            )
            y -= _points(_row_height(key)) + _points(TEXT_PT * 1.25) * (lines - 1)
        y -= _points(ROW_PT * 0.6)
    fig.text(
        x / width,
        y / height,
        note,
        fontsize=7,
        color="#404040",
        style="italic",
        va="top",
        linespacing=1.3,
    )
    return y / height
