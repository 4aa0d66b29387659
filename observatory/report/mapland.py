"""The land-use panel of a system (issue 14): its crowns' farmland against its people.

One A4 landscape page per métropole, ``maps/<code>_sols.png``, drawn when the
run has land rasters: on the left, the EPCI of the métropole and its crowns
filled by their share of farmland; on the right, the land cover of the
métropole and of each crown (stacked shares) and the hectares of farmland of
each for every inhabitant of the métropole: what the crowns have (farmland)
against what the métropole has (inhabitants). The map frame, scale and
outlines are :mod:`observatory.report.maps`'s (:func:`land_figure` there).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from shapely.geometry.base import BaseGeometry

from observatory.layers.codes import count_fr
from observatory.report.mapdata import MapSystem, percent_fr
from observatory.report.mapdraw import MapScale, draw_polygons
from observatory.report.maplegend import LegendSection, SwatchKey

#: Upper bounds of the classes of farmland share the map fills (the last is open).
FARMLAND_BREAKS = (0.2, 0.4, 0.6, 0.8)

#: Wheat tones from little to much farmland (the bars' farmland colour is the 4th).
FARMLAND_COLOURS = ("#fff7dc", "#f6e3a1", "#e9c75a", "#c99a2e", "#8a6414")

#: Fill of an EPCI the land cover does not reach (OSO overseas).
NOT_COVERED = "#ffffff"

#: Colours and French names of the land groups in the stacked bars.
GROUP_BARS = (
    ("artificialised", "#a6617a", "Artificialisé"),
    ("agricultural", FARMLAND_COLOURS[3], "Agricole"),
    ("forest_seminatural", "#2f7d4a", "Forêts et milieux semi-naturels"),
    ("other", "#d9d9d9", "Eau, zones humides, autres"),
)

#: The parts of a system, their column suffix on ``metropoles`` and their name.
PARTS = (("_own", "Métropole"), ("_crown1", "1re couronne"), ("_crown2", "2e couronne"))

#: The notice of a page whose rasters are synthetic (the demo's).
LAND_NOTICE = (
    "DONNÉES SYNTHÉTIQUES : les rasters d'occupation du sol, de bâti et de "
    "population de ce run sont fictifs (démonstration)"
)

Simplify = Callable[[gpd.GeoSeries, MapScale], Sequence[BaseGeometry]]


Summary = pd.Series | Mapping[str, Any]


def _value(summary: Summary, column: str) -> float:
    value = summary.get(column)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return number


def has_land(system: MapSystem) -> bool:
    """Tell whether the system's row carries land figures (the run had land rasters)."""
    return any(
        np.isfinite(_value(system.summary, c))
        for c in ("agricultural_ha_own", "metropole_grid_population")
    )


def farmland_class(share: float) -> int | None:
    """Return the class (0-4) of a farmland share, None when unknown."""
    if share is None or not np.isfinite(share):
        return None
    return int(np.searchsorted(FARMLAND_BREAKS, share, side="right"))


def farmland_labels() -> list[str]:
    """Return the legend's labels of the farmland classes, in French."""
    bounds = [percent_fr(b, 0) for b in FARMLAND_BREAKS]
    return [
        f"Moins de {bounds[0]}",
        *(f"{a} à {b}" for a, b in itertools.pairwise(bounds)),
        f"{bounds[-1]} et plus",
    ]


def draw_farmland(
    ax: Axes, system: MapSystem, scale: MapScale, simplify: Simplify
) -> None:
    """Fill the system's EPCI by their share of farmland (white: not covered)."""
    shares = system.epci["agricultural_share"].astype(float)
    fills = []
    for share in shares:
        k = farmland_class(share)
        fills.append(NOT_COVERED if k is None else FARMLAND_COLOURS[k])
    draw_polygons(
        ax,
        simplify(system.epci.geometry, scale),
        fills,
        edgecolor="#6e6e6e",
        linewidth=scale.points(0.25),
        zorder=2,
    )


def farmland_legend(system: MapSystem) -> list[LegendSection]:
    """Return the legend of the farmland map: its classes, the métropole."""
    keys: list[SwatchKey] = [SwatchKey(c) for c in FARMLAND_COLOURS]
    labels = farmland_labels()
    if system.epci["agricultural_share"].isna().any():
        keys.append(SwatchKey(NOT_COVERED, hatch=None))
        labels.append("Non couvert par l'occupation du sol")
    keys.append(SwatchKey("#ffffff", metropole=True))
    labels.append("Contour de la métropole")
    return [LegendSection("Part agricole de l'EPCI", keys, labels)]


def land_table(summary: Summary) -> pd.DataFrame:
    """Return the métropole's and each crown's land, from its ``metropoles`` row.

    One row per part (métropole, 1re and 2e couronne) with the group shares,
    ``other`` (the rest of the covered area), ``agricultural_ha`` and
    ``per_inhabitant`` (farmland per inhabitant of the métropole, ha).
    """
    rows = []
    for suffix, name in PARTS:
        shares = {
            g: _value(summary, f"{g}_share{suffix}") for g, _, _ in GROUP_BARS[:3]
        }
        known = [v for v in shares.values() if np.isfinite(v)]
        per = (
            "agricultural_ha_per_inhabitant_own"
            if suffix == "_own"
            else f"agricultural_ha{suffix}_per_metropole_inhabitant"
        )
        rows.append(
            {
                "part": name,
                **shares,
                "other": max(0.0, 1.0 - sum(known)) if known else float("nan"),
                "agricultural_ha": _value(summary, f"agricultural_ha{suffix}"),
                "per_inhabitant": _value(summary, per),
            }
        )
    return pd.DataFrame(rows)


def hectares_fr(value: float, digits: int = 2) -> str:
    """Format hectares the French way: ``0,31 ha``; ``n.d.`` if missing."""
    if value is None or not np.isfinite(value):
        return "n.d."
    return f"{value:.{digits}f}".replace(".", ",") + "\u00a0ha"


def draw_shares(ax: Axes, table: pd.DataFrame) -> None:
    """Draw the land cover of each part as one bar of stacked shares (100 %)."""
    y = np.arange(len(table))[::-1].astype(float)
    left = np.zeros(len(table))
    for group, colour, _ in GROUP_BARS:
        values = np.nan_to_num(table[group].to_numpy(float))
        ax.barh(y, values, left=left, height=0.62, color=colour, edgecolor="white")
        for yi, x0, v in zip(y, left, values, strict=True):
            if v >= 0.08:
                dark = colour in ("#a6617a", "#2f7d4a", FARMLAND_COLOURS[3])
                ax.text(
                    x0 + v / 2,
                    yi,
                    percent_fr(v, 0),
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    color="white" if dark else "#262626",
                )
        left += values
    ax.set_yticks(y, table["part"])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: percent_fr(v, 0)))
    _plain(ax)


def draw_per_inhabitant(ax: Axes, table: pd.DataFrame) -> None:
    """Draw each part's farmland per inhabitant of the métropole (ha), its area beside."""
    y = np.arange(len(table))[::-1].astype(float)
    values = table["per_inhabitant"].to_numpy(float)
    ax.barh(y, np.nan_to_num(values), height=0.62, color=FARMLAND_COLOURS[3])
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    for yi, value, hectares in zip(y, values, table["agricultural_ha"], strict=True):
        ax.text(
            (value if np.isfinite(value) else 0.0) + top * 0.02,
            yi,
            f"{hectares_fr(value)}  ({count_fr(hectares) if np.isfinite(hectares) else 'n.d.'} ha)",
            va="center",
            fontsize=7.5,
        )
    ax.set_yticks(y, table["part"])
    ax.set_xlim(0, top * 1.75)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: hectares_fr(v, 1)))
    _plain(ax)


def _plain(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)


def draw_land_charts(
    fig: Figure, system: MapSystem, box: tuple[float, float, float, float]
) -> None:
    """Draw, in ``box`` of the page, the shares and the farmland per inhabitant."""
    left, bottom, width, height = box
    table = land_table(system.summary)
    people = _value(system.summary, "metropole_grid_population")
    shares_ax = fig.add_axes((left, bottom + 0.56 * height, width, 0.3 * height))
    draw_shares(shares_ax, table)
    shares_ax.set_title(
        "Occupation du sol (part de la surface couverte)",
        loc="left",
        fontsize=9,
        fontweight="bold",
    )
    shares_ax.legend(
        [Patch(facecolor=c) for _, c, _ in GROUP_BARS],
        [n for _, _, n in GROUP_BARS],
        loc="upper left",
        bbox_to_anchor=(-0.02, -0.16),
        ncol=2,
        fontsize=7.5,
        frameon=False,
        handlelength=1.2,
    )
    per_ax = fig.add_axes((left, bottom + 0.04 * height, width, 0.3 * height))
    draw_per_inhabitant(per_ax, table)
    per_ax.set_title(
        "Terres agricoles par habitant de la métropole",
        loc="left",
        fontsize=9,
        fontweight="bold",
        pad=16,
    )
    per_ax.text(
        0.0,
        1.03,
        f"{count_fr(people) if np.isfinite(people) else 'n.d.'} habitants "
        "(grille GHS-POP) ; entre parenthèses, la surface agricole",
        transform=per_ax.transAxes,
        fontsize=7.5,
        color="#404040",
        va="bottom",
    )


#: Who publishes each land product, as the sources line names it.
PUBLISHERS = {
    "OSO": "Theia / CESBIO, carte d'occupation des sols OSO",
    "GHS-BUILT-S": "JRC, GHSL R2023A",
    "GHS-POP": "JRC, GHSL R2023A",
}


def land_sources_line(manifest: Mapping[str, Any]) -> str:
    """Return the land page's sources: the rasters (product, year), the boundaries."""
    rasters = (manifest.get("land") or {}).get("rasters") or []
    by_publisher: dict[str, dict[str, Any]] = {}
    for record in rasters:
        product = str(record.get("product") or record.get("role"))
        entry = by_publisher.setdefault(
            PUBLISHERS.get(product, product),
            {"products": [], "years": set(), "synthetic": False},
        )
        if product not in entry["products"] and product in ("GHS-BUILT-S", "GHS-POP"):
            entry["products"].append(product)
        if record.get("vintage"):
            entry["years"].add(str(record["vintage"]))
        entry["synthetic"] |= bool(record.get("synthetic"))
    parts = []
    for publisher, entry in by_publisher.items():
        products = f" ({', '.join(entry['products'])})" if entry["products"] else ""
        years = " et ".join(sorted(entry["years"]))
        synthetic = " (SYNTHÉTIQUE)" if entry["synthetic"] else ""
        parts.append(f"{publisher}{products} {years}{synthetic}".strip())
    geography = manifest.get("geography")
    on = f" au 1er janvier {geography}" if geography else ""
    parts += [f"IGN, ADMIN EXPRESS (communes{on})", f"INSEE, EPCI{on}"]
    version = (manifest.get("package") or {}).get("version", "")
    return f"Sources : {' ; '.join(parts)}. Traitement : observatory {version}."


def land_notice(manifest: Mapping[str, Any]) -> str | bool:
    """Return the page's notice: :data:`LAND_NOTICE` when a raster is synthetic."""
    rasters = (manifest.get("land") or {}).get("rasters") or []
    return LAND_NOTICE if any(r.get("synthetic") for r in rasters) else False


def land_subtitle(manifest: Mapping[str, Any]) -> str:
    """Return the land page's subtitle: the land cover's year, the GHSL epoch."""
    rasters = (manifest.get("land") or {}).get("rasters") or []
    year = {str(r.get("role")): r.get("vintage") for r in rasters}
    words = ["Terres agricoles des couronnes et habitants de la métropole"]
    if year.get("land_cover"):
        words.append(f"occupation du sol {year['land_cover']}")
    if year.get("population_grid"):
        words.append(f"population {year['population_grid']} (grille GHS-POP)")
    return ", ".join(words)
