"""The page around the maps and charts: size, header, synthetic notice, sources.

Every page is a :class:`matplotlib.figure.Figure` of its own (no ``pyplot``):
:func:`page_figure` makes an A4 landscape one, :func:`page_texts` writes its
title, subtitle, the synthetic-data notice when the run's flows are synthetic
and the sources line; :func:`contents_figure` is the atlas's first page.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.typing import RcKeyType
from PIL import Image

from observatory.config import ClassificationSection
from observatory.layers.captions import census_text, is_synthetic
from observatory.layers.codes import class_labels
from observatory.layers.styles import class_colours
from observatory.report.mapdata import (
    SYNTHETIC_NOTICE,
    MapSystem,
    count_text,
    percent_fr,
    rule_text,
    sources_line,
    territory_text,
)

#: Page size in inches (A4 landscape proportions), resolution of the maps' and
#: the charts' PNGs (charts hold text and bars only: 150 dpi prints sharp).
PAGE_SIZE, DPI, CHART_DPI = (12.0, 8.5), 200, 150


#: The matplotlib settings every picture is drawn with, whatever the user's
#: matplotlibrc says: DejaVu Sans (shipped with matplotlib, so the same glyphs
#: everywhere) and no font hinting (hinting is for screens at 96 dpi; at 200
#: dpi it changes nothing visible and costs a sixth of the drawing time).
DRAWING_PARAMS: dict[RcKeyType, Any] = {
    "font.family": ["DejaVu Sans"],
    "text.hinting": "no_hinting",
}


def drawing() -> contextlib.AbstractContextManager[None]:
    """Return the context the pictures are drawn in (:data:`DRAWING_PARAMS`).

    matplotlib's ``rc_context``: the settings hold inside the ``with`` block
    only and are restored after it (it is not meant for threads drawing at the
    same time).
    """
    return matplotlib.rc_context(DRAWING_PARAMS)


#: zlib level of the PNGs (1 fastest, 9 smallest): 3 is near 6's size, faster.
PNG_COMPRESSION = 3


#: Map and legend frames, in figure fractions (left, bottom, width, height).
MAP_BOX = (0.015, 0.07, 0.70, 0.79)
LEGEND_BOX = (0.735, 0.07, 0.25, 0.79)


#: Colours of the synthetic notice: text and its pale band.
NOTICE_RED, NOTICE_BAND = "#b2182b", "#fde0dd"


def page_figure(size: tuple[float, float] = PAGE_SIZE, dpi: int = DPI) -> Figure:
    """Return an empty white page of ``size`` inches at ``dpi`` dots per inch."""
    return Figure(figsize=size, dpi=dpi, facecolor="white")


def synthetic_notice(fig: Figure, y: float, text: str = SYNTHETIC_NOTICE) -> None:
    """Write the synthetic-data notice across the page, centred on height ``y``."""
    fig.text(
        0.5,
        y,
        text,
        ha="center",
        va="center",
        fontsize=10,
        fontweight="bold",
        color=NOTICE_RED,
        bbox={
            "boxstyle": "square,pad=0.45",
            "facecolor": NOTICE_BAND,
            "edgecolor": NOTICE_RED,
            "linewidth": 1.0,
        },
        gid="synthetic-notice",
    )


def page_texts(
    fig: Figure,
    title: str,
    subtitle: str,
    manifest: Mapping[str, Any],
    *,
    top: float = 0.975,
    sources: str | None = None,
    notice: str | bool = True,
) -> None:
    """Write the title, subtitle, synthetic notice (when it applies) and sources.

    The header takes the page's top (to about 0.87 of its height on an A4
    page); the sources line sits under everything, at the page's bottom.
    ``sources`` replaces the census's sources line (:func:`sources_line`);
    ``notice`` is True for the synthetic flows' notice when the run's flows are
    synthetic, False for none, or the text of another notice.
    """
    height = fig.get_size_inches()[1]
    step = 0.3 / height  # a line of the header, in figure fraction
    fig.text(0.015, top, title, ha="left", va="top", fontsize=16, fontweight="bold")
    fig.text(
        0.015,
        top - 1.05 * step,
        subtitle,
        ha="left",
        va="top",
        fontsize=10,
        color="#404040",
    )
    if isinstance(notice, str):
        synthetic_notice(fig, top - 2.35 * step, notice)
    elif notice and is_synthetic(manifest):
        synthetic_notice(fig, top - 2.35 * step)
    fig.text(
        0.015,
        0.1 / height,
        textwrap.fill(sources or sources_line(manifest), 230),
        ha="left",
        va="bottom",
        fontsize=6.5,
        color="#404040",
        linespacing=1.3,
    )


@dataclass(frozen=True, slots=True)
class DrawnPage:
    """A figure drawn by Agg: its RGBA pixels (a copy), size in pixels and dpi."""

    rgba: bytes
    width: int
    height: int
    dpi: float


def drawn(fig: Figure) -> DrawnPage:
    """Draw a figure with Agg and keep a copy of its pixels (holds the GIL)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    return DrawnPage(bytes(canvas.buffer_rgba()), width, height, fig.dpi)


def png_bytes(page: DrawnPage) -> bytes:
    """Encode drawn pixels as PNG bytes: RGB (pages are opaque), their dpi recorded.

    Encoded by Pillow (matplotlib's own dependency) without the alpha channel
    and at a lighter compression than matplotlib's: a third less time to
    encode, files about as small. No timestamp nor software name: the same
    figure gives the same bytes. Pillow lets the GIL go while it converts and
    compresses, so this can run in a thread while the next figure is drawn.
    """
    image = Image.frombuffer("RGBA", (page.width, page.height), page.rgba)
    buffer = io.BytesIO()
    image.convert("RGB").save(
        buffer,
        format="png",
        compress_level=PNG_COMPRESSION,
        dpi=(page.dpi, page.dpi),
    )
    return buffer.getvalue()


def figure_png(fig: Figure) -> bytes:
    """Return a figure as PNG bytes (:func:`drawn`, then :func:`png_bytes`)."""
    return png_bytes(drawn(fig))


def _crowns(system: MapSystem) -> str:
    counts = system.epci["crown"].value_counts()
    return " / ".join(str(int(counts.get(k, 0))) for k in (1, 2))


#: Columns of the atlas's list of systems: (left edge, heading, right-aligned).
CONTENTS_COLUMNS = (
    (0.02, "N°", False),
    (0.055, "Métropole", False),
    (0.32, "Territoire", False),
    (0.50, "EPCI des couronnes\n(1re / 2e)", False),
    (0.70, "Actifs\nrésidents", True),
    (0.79, "Emplois", True),
    (0.90, "Dépendance de\nla 1re couronne", True),
    (0.975, "Page", True),
)


def _contents_row(index: int, system: MapSystem) -> tuple[str, ...]:
    summary = system.summary
    return (
        str(index),
        system.name,
        territory_text(system.territory) or "France métropolitaine",
        _crowns(system),
        count_text(summary.get("employed_residents", np.nan)),
        count_text(summary.get("jobs", np.nan)),
        percent_fr(summary.get("dependence_share_crown1", np.nan)),
        str(index + 1),
    )


def _table(
    fig: Figure, systems: Sequence[MapSystem], top: float, bottom: float
) -> float:
    """Write the list of systems between heights ``top`` and ``bottom``.

    Returns the height of its last row.
    """
    step = min(0.032, (top - bottom) / (len(systems) + 1.5))
    size = 9.5 if step >= 0.026 else 7.5
    for x, heading, right in CONTENTS_COLUMNS:
        fig.text(
            x,
            top,
            heading,
            fontsize=size,
            fontweight="bold",
            va="bottom",
            ha="right" if right else "left",
        )
    fig.add_artist(
        Line2D(
            [0.02, 0.98],
            [top - 0.25 * step] * 2,
            transform=fig.transFigure,
            color="#8c8c8c",
            linewidth=0.8,
        )
    )
    for i, system in enumerate(systems, start=1):
        y = top - (i + 0.2) * step
        cells = _contents_row(i, system)
        for (x, _, right), cell in zip(CONTENTS_COLUMNS, cells, strict=True):
            fig.text(
                x,
                y,
                cell,
                fontsize=size,
                va="baseline",
                ha="right" if right else "left",
            )
    return top - (len(systems) + 0.2) * step


def _reading(fig: Figure, classification: ClassificationSection, top: float) -> None:
    """Write how to read the maps: each class and its rule, the indicators."""
    fig.text(0.02, top, "Lecture des cartes", fontsize=11, fontweight="bold", va="top")
    colours, labels = class_colours(classification), class_labels(classification)
    y = top - 0.055
    fig.text(
        0.02,
        y,
        "Lien des EPCI avec la métropole (règles appliquées dans\n"
        "l'ordre, la première vérifiée donne la classe) :",
        fontsize=8.5,
        va="center",
    )
    for rule in classification.rules:
        y -= 0.032
        fig.add_artist(
            Rectangle(
                (0.025, y - 0.009),
                0.022,
                0.018,
                transform=fig.transFigure,
                facecolor=colours[rule.class_code],
                edgecolor="#8c8c8c",
                linewidth=0.5,
            )
        )
        fig.text(
            0.055,
            y,
            f"{labels[rule.class_code]} : {rule_text(rule)}",
            fontsize=8.5,
            va="center",
        )
    fig.text(0.56, top - 0.035, READING, fontsize=8.5, va="top", linespacing=1.45)


#: The indicators and symbols of the maps, in words.
READING = "\n".join(
    [
        "Dépendance : part des actifs résidant dans l'EPCI qui travaillent",
        "dans la métropole.",
        "Attraction : part des emplois de l'EPCI occupés par des résidents",
        "de la métropole.",
        "Réciprocité : le plus petit des deux flux (vers et depuis la",
        "métropole) divisé par le plus grand (0 : à sens unique, 1 : équilibré).",
        "Couronnes : EPCI contigus à la métropole (1re), puis à la 1re",
        "couronne (2e).",
        "Flèches : du lieu de résidence vers le lieu de travail, épaisseur",
        "selon le nombre d'actifs ; pâles sous le seuil de fiabilité de l'INSEE.",
    ]
)


def contents_figure(
    systems: Sequence[MapSystem],
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
) -> Figure:
    """Return the atlas's first page: the systems and how to read their maps."""
    fig = page_figure()
    page_texts(
        fig,
        "Atlas des systèmes domicile-travail des métropoles",
        f"{len(systems)} système(s), {census_text(manifest)}",
        manifest,
    )
    last = _table(fig, systems, top=0.79, bottom=0.40)
    _reading(fig, classification, top=max(last - 0.08, 0.36))
    return fig
