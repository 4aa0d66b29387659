"""The drawing parts of a system's map, on matplotlib axes (no ``pyplot``).

A map's axes hold data coordinates of the territory's CRS (metres) at a known
scale, :class:`MapScale`: sizes given in millimetres on paper (line widths,
arrow heads, the QGIS style's) become metres with :meth:`MapScale.metres`.

- :func:`draw_polygons`: filled polygons from shapely geometries;
- :func:`half_arrows` and :func:`draw_flows`: the flow lines as half arrows on
  the left of their direction (the two flows of a pair lie side by side), as
  the QGIS style draws them;
- :func:`place_labels`: names placed without overlapping each other nor the
  map's edge;
- :func:`draw_scale_bar`, :func:`draw_north_arrow`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.patches import PathPatch, Polygon, Rectangle
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from shapely.geometry.base import BaseGeometry

Float = npt.NDArray[np.float64]

#: Millimetres in a typographic point.
MM_PER_POINT = 25.4 / 72


#: The ``gid`` of the names placed on a map (SVG ids; tests find them by it).
LABEL_GID = "epci-label"


#: The white halo around labels, so they read over any fill or arrow.
HALO = [patheffects.withStroke(linewidth=2.2, foreground="white", alpha=0.9)]


@dataclass(frozen=True)
class MapScale:
    """The scale of a map's axes: metres of the CRS per millimetre on paper."""

    metres_per_mm: float

    def metres(self, mm: float) -> float:
        """Return the length in the CRS of ``mm`` millimetres on paper."""
        return mm * self.metres_per_mm

    def points(self, mm: float) -> float:
        """Return ``mm`` millimetres in typographic points (matplotlib's line widths)."""
        return mm / MM_PER_POINT


def geometry_path(geometry: BaseGeometry) -> Path:
    """Return a (multi)polygon as one matplotlib path (holes included)."""
    vertices: list[Float] = []
    codes: list[npt.NDArray[np.uint8]] = []
    for ring in shapely.get_rings(shapely.get_parts(geometry)):
        xy = shapely.get_coordinates(ring)
        code = np.full(len(xy), Path.LINETO, dtype=np.uint8)
        code[0], code[-1] = Path.MOVETO, Path.CLOSEPOLY
        vertices.append(xy)
        codes.append(code)
    if not vertices:
        return Path(np.zeros((0, 2)))
    return Path(np.concatenate(vertices), np.concatenate(codes))


def draw_polygons(
    ax: Axes,
    geometries: Sequence[BaseGeometry],
    facecolors: Sequence[str] | str,
    *,
    edgecolor: str,
    linewidth: float,
    zorder: float,
    hatch: str | None = None,
    linestyle: str | tuple[float, tuple[float, ...]] = "solid",
) -> PatchCollection:
    """Draw polygons filled with ``facecolors`` (one or one each); width in points.

    ``linestyle`` is matplotlib's (``"solid"``, ``"--"``, or an offset and dash
    pattern in line widths), for outlines that mark a kind of EPCI.
    """
    patches = [PathPatch(geometry_path(g)) for g in geometries]
    collection = PatchCollection(
        patches,
        facecolors=facecolors,
        edgecolors=edgecolor,
        linewidths=linewidth,
        zorder=zorder,
        hatch=hatch,
        linestyles=linestyle,
    )
    ax.add_collection(collection)
    return collection


def half_arrows(
    starts: Float,
    ends: Float,
    widths: Float,
    heads: Float,
    trims: tuple[Float, Float],
    gap: float,
) -> list[Float]:
    """Return the polygon of a half arrow for each line, in the lines' units.

    Parameters
    ----------
    starts, ends
        ``(n, 2)`` coordinates of each line's start and end.
    widths, heads
        Width of each arrow's body and length of its head (shortened to fit a
        short line); the head flares out by half its length beyond the body.
    trims
        Length left out of each line at its start and at its end (heads clear
        of the places they join).
    gap
        Space between the line and the arrow, on the left of its direction: the
        opposite flow of a pair lies on the other side.

    Lines shorter than their trims give no polygon.
    """
    vector = ends - starts
    length = np.hypot(vector[:, 0], vector[:, 1])
    usable = length - trims[0] - trims[1]
    keep = usable > 0
    along = vector[keep] / length[keep, None]
    left = np.stack([-along[:, 1], along[:, 0]], axis=1)
    start = starts[keep] + along * trims[0][keep, None]
    end = ends[keep] - along * trims[1][keep, None]
    head = np.minimum(heads[keep], 0.45 * usable[keep])
    flare = 0.5 * head
    base = end - along * head[:, None]
    g, w = gap, widths[keep, None]
    points = np.stack(
        [
            start + left * g,
            end + left * g,
            base + left * (g + w + flare[:, None]),
            base + left * (g + w),
            start + left * (g + w),
        ],
        axis=1,
    )
    return list(points)


def draw_flows(
    ax: Axes,
    polygons: Sequence[Float],
    facecolors: Sequence[tuple[float, float, float, float]],
    edged: Sequence[bool],
    edge_width: float,
    zorder: float,
) -> PolyCollection:
    """Draw half arrows in the given order (the last on top); white edge if ``edged``."""
    collection = PolyCollection(
        list(polygons),
        facecolors=list(facecolors),
        edgecolors=[(1, 1, 1, 0.8) if e else (1, 1, 1, 0) for e in edged],
        linewidths=[edge_width if e else 0.0 for e in edged],
        zorder=zorder,
        joinstyle="miter",
    )
    ax.add_collection(collection)
    return collection


@dataclass(frozen=True)
class Label:
    """A name to place on the map: where, how big, in what order."""

    text: str
    x: float
    y: float
    size: float
    bold: bool = False
    priority: float = 0.0


def _fits(box: Bbox, frame: Bbox, taken: Sequence[Bbox]) -> bool:
    inside = (
        box.x0 >= frame.x0
        and box.x1 <= frame.x1
        and box.y0 >= frame.y0
        and box.y1 <= frame.y1
    )
    return inside and not any(box.overlaps(other) for other in taken)


def place_labels(
    ax: Axes, renderer: RendererBase, labels: Sequence[Label], keep_out: Sequence[Bbox]
) -> list[Text]:
    """Place labels by priority, each where it overlaps no other nor the edge.

    Each label tries its point, then positions around it at growing distances
    (up to about four lines of text away), then a smaller size; a label with no
    free position stays at its point, smaller, pushed inside the map.
    ``keep_out`` are display boxes already taken (scale bar, north arrow).

    Returns the texts, in the order they were placed.
    """
    frame = ax.get_window_extent(renderer).padded(-4)
    taken = list(keep_out)
    placed = []
    pixels = float(np.asarray(renderer.points_to_pixels(1.0)))
    for label in sorted(labels, key=lambda lb: -lb.priority):
        text = ax.text(
            label.x,
            label.y,
            label.text,
            ha="center",
            va="center",
            fontsize=label.size,
            fontweight="bold" if label.bold else "normal",
            color="#1a1a1a" if label.bold else "#262626",
            zorder=30 if label.bold else 29,
            path_effects=HALO,
            linespacing=1.0,
            gid=LABEL_GID,
        )
        box = _position(text, renderer, frame, taken, label, pixels)
        taken.append(box.padded(1.5 * pixels))
        placed.append(text)
    return placed


def _candidates(step: float) -> list[tuple[float, float]]:
    moves = [(0.0, 0.0)]
    for k in (1, 2, 3, 4):
        d = k * step
        moves += [(0, d), (0, -d), (d, 0), (-d, 0), (d, d), (-d, d), (d, -d), (-d, -d)]
    return moves


def _position(
    text: Text,
    renderer: RendererBase,
    frame: Bbox,
    taken: Sequence[Bbox],
    label: Label,
    pixels: float,
) -> Bbox:
    # Moves are in display pixels, applied to the label's anchor point.
    anchor = text.get_transform().transform((label.x, label.y))
    inverse = text.get_transform().inverted()
    for size in (label.size, label.size * 0.85):
        text.set_fontsize(size)
        for dx, dy in _candidates(size * pixels * 0.9):
            text.set_position(tuple(inverse.transform(anchor + np.array([dx, dy]))))
            box = text.get_window_extent(renderer)
            if _fits(box, frame, taken):
                return box
    # Nowhere free: stay at the point, pushed inside the map.
    text.set_fontsize(label.size * 0.85)
    text.set_position((label.x, label.y))
    box = text.get_window_extent(renderer)
    shift = (
        max(frame.x0 - box.x0, 0) - max(box.x1 - frame.x1, 0),
        max(frame.y0 - box.y0, 0) - max(box.y1 - frame.y1, 0),
    )
    text.set_position(tuple(inverse.transform(anchor + shift)))
    return text.get_window_extent(renderer)


def nice_length(span: float) -> float:
    """Return a round length (1, 2 or 5 times a power of ten) about a fifth of ``span``."""
    target = span / 5
    power = 10 ** np.floor(np.log10(target))
    best = max(m * power for m in (1, 2, 5) if m * power <= target)
    return float(best)


def draw_scale_bar(ax: Axes, scale: MapScale, zorder: float = 40) -> Bbox:
    """Draw a scale bar in kilometres at the map's lower left; return its display box."""
    x0, x1 = ax.get_xlim()
    y0, _ = ax.get_ylim()
    length = nice_length(x1 - x0)
    left, bottom = x0 + scale.metres(8), y0 + scale.metres(8)
    height = scale.metres(1.6)
    backing = Rectangle(
        (left - scale.metres(3), bottom - scale.metres(3)),
        length + scale.metres(12),
        height + scale.metres(9),
        facecolor="white",
        edgecolor="#9a9a9a",
        linewidth=0.4,
        alpha=0.85,
        zorder=zorder,
    )
    ax.add_patch(backing)
    for i in range(4):
        ax.add_patch(
            Rectangle(
                (left + i * length / 4, bottom),
                length / 4,
                height,
                facecolor="#1a1a1a" if i % 2 == 0 else "white",
                edgecolor="#1a1a1a",
                linewidth=0.6,
                zorder=zorder + 1,
            )
        )
    km = length / 1000
    for value, x in ((0.0, left), (km / 2, left + length / 2), (km, left + length)):
        text = f"{value:g}".replace(".", ",") + (" km" if value == km else "")
        ax.text(
            x,
            bottom + height + scale.metres(1),
            text,
            ha="left" if value == km else "center",
            va="bottom",
            fontsize=7,
            zorder=zorder + 1,
        )
    return backing.get_window_extent()


def draw_north_arrow(ax: Axes, scale: MapScale, zorder: float = 40) -> Bbox:
    """Draw a north arrow at the map's upper right; return its display box.

    The map is in a projected CRS whose grid north is close to true north at a
    system's scale (a few degrees at most in Lambert-93).
    """
    _, x1 = ax.get_xlim()
    _, y1 = ax.get_ylim()
    cx, top = x1 - scale.metres(10), y1 - scale.metres(6)
    w, h = scale.metres(3.2), scale.metres(9)
    west = Polygon(
        [(cx, top), (cx - w, top - h), (cx, top - 0.72 * h)],
        closed=True,
        facecolor="white",
        edgecolor="#1a1a1a",
        linewidth=0.8,
        zorder=zorder,
    )
    east = Polygon(
        [(cx, top), (cx + w, top - h), (cx, top - 0.72 * h)],
        closed=True,
        facecolor="#1a1a1a",
        edgecolor="#1a1a1a",
        linewidth=0.8,
        zorder=zorder,
    )
    ax.add_patch(west)
    ax.add_patch(east)
    ax.text(
        cx,
        top - h - scale.metres(1),
        "N",
        ha="center",
        va="top",
        fontsize=10,
        fontweight="bold",
        zorder=zorder,
        path_effects=HALO,
    )
    box = Bbox.union([west.get_window_extent(), east.get_window_extent()])
    return box.padded(18)
