"""What the maps and charts of a run show, ready to draw (pure, no drawing).

- :func:`map_systems`: each system's EPCI, flow lines, métropole outline and
  the other EPCI of its territory around it, from the run's layers;
- :func:`flow_classes_of` and :func:`flow_class_index`: the width classes of the
  flow lines, the same as the QGIS style's (:func:`observatory.layers.styles.flow_classes`);
- :func:`short_name`, :func:`percent_fr`: names and numbers as a French reader
  expects them;
- :func:`sources_line` (and :func:`observatory.layers.captions.census_text`): what every
  picture says about its data, from the run's manifest (with
  :mod:`observatory.layers.captions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from shapely.geometry.base import BaseGeometry

from observatory import __version__
from observatory.config import ClassRule, ReliabilitySection
from observatory.geography import MAINLAND, TERRITORY_NAMES
from observatory.layers.captions import (
    input_role,
    input_vintages,
    is_synthetic,
)
from observatory.layers.codes import count_fr
from observatory.layers.styles import FLOW_BREAKS, flow_classes
from observatory.systems.flows import ORDER_OF_MAGNITUDE

#: The legal form an EPCI's name starts with, left out of its label on maps (the
#: same rule as the QGIS labels, :data:`observatory.layers.styles.SHORT_EPCI_NAME`).
LEGAL_FORM = re.compile(
    r"^(Communauté (de communes|d['’]agglomération|urbaine)|CC|CA|CU) "
    r"(du |de la |des |de l['’]|d['’]|de )?"
)


#: What every picture of a run with synthetic flows says, in capitals first.
SYNTHETIC_NOTICE = (
    "DONNÉES SYNTHÉTIQUES : les flux de ce run sont fictifs (démonstration), "
    "ils ne décrivent pas des déplacements réels"
)


Frame = TypeVar("Frame", pd.DataFrame, gpd.GeoDataFrame)


@dataclass(frozen=True)
class MapSystem:
    """One system as its map draws it, in its territory's CRS.

    Attributes
    ----------
    territory
        Territory code (``FXX``, ``REU``...).
    code, name
        SIREN and name of the métropole (or pole).
    epci
        The system's rows of ``epci_indicators`` in its contiguity crowns (the
        métropole's included), ``crown`` as integers.
    flows
        The system's flow lines with at least one worker in this vintage.
    outline
        The métropole's polygon.
    context
        The other EPCI of the territory's layer (of other systems), drawn grey.
    summary
        The system's row of the ``metropoles`` layer (totals by crown).
    outside
        The system's rows beyond the contiguity crowns (empty ``crown``): its
        hidden crown (``placed_by = flows``) and the EPCI of its attraction area
        that no rule placed (``aav``); drawn with their own marks.
    """

    territory: str
    code: str
    name: str
    epci: gpd.GeoDataFrame
    flows: gpd.GeoDataFrame
    outline: BaseGeometry
    context: gpd.GeoDataFrame
    summary: pd.Series
    outside: gpd.GeoDataFrame | None = None


def contiguity_rows(epci: Frame) -> Frame:
    """Return the rows of ``epci_indicators`` in the contiguity crowns, crowns as integers.

    The rows the flows (or the AAV) place beyond the crowns have an empty
    ``crown``; every crown test (``== 0``, ``> 0``) and chart by crown uses the rest.
    """
    inside = epci[epci["crown"].notna()]
    return inside.astype({"crown": "int64"})


@dataclass(frozen=True)
class FlowClass:
    """A width class of the flow lines: its legend label, width (mm), faintness."""

    label: str
    width_mm: float
    fragile: bool


#: A brand word an EPCI's name may start or end with, left out of map labels
#: ("Communauté Lesneven Côte des Légendes", "Vitré Communauté", "Dinan
#: Agglomération"; "Pornic Agglo Pays de Retz" keeps its inner "Agglo").
BRAND_WORDS = re.compile(r"\bCommunauté\b|\s(Agglomération|Agglo)$")


#: An acronym in brackets at the end of a name: ``(CARENE)``.
ACRONYM = re.compile(r"\(([A-ZÉÈ0-9][A-ZÉÈ0-9&' -]{1,14})\)\s*$")


def short_name(name: str) -> str:
    """Return an EPCI's name as maps label it: without legal form nor brand word.

    ``Communauté de communes du Pays de Craon`` is ``Pays de Craon``, ``Vitré
    Communauté`` is ``Vitré``, a name ending with its acronym in brackets is
    the acronym (``CARENE``); the attribute tables keep the full name.
    """
    acronym = ACRONYM.search(name)
    if acronym:
        return acronym.group(1)
    short = BRAND_WORDS.sub("", LEGAL_FORM.sub("", name).strip())
    short = re.sub(r"\s+", " ", short).strip(" -")
    return short[:1].upper() + short[1:] if short else name


def percent_fr(share: float, digits: int = 1) -> str:
    """Format a share (0.125) as a French percentage: ``12,5 %`` (no-break space)."""
    if share is None or not np.isfinite(share):
        return "n.d."
    text = f"{100 * share:.{digits}f}".replace(".", ",")
    return f"{text}\u00a0%"


def flow_classes_of(reliability: ReliabilitySection) -> list[FlowClass]:
    """Return the flow width classes of the QGIS style, the fragile one first."""
    return [
        FlowClass(label, width, index == 0)
        for index, (_, label, width) in enumerate(flow_classes(reliability))
    ]


def flow_class_index(
    workers: pd.Series, reliability_codes: pd.Series, reliability: ReliabilitySection
) -> npt.NDArray[np.int_]:
    """Return the index in :func:`flow_classes_of` of each flow line.

    Lines INSEE marks as an order of magnitude only are class 0 (fragile); the
    others are placed by their workers between ``reliable_min`` and
    :data:`~observatory.layers.styles.FLOW_BREAKS`, as the QGIS style does.
    """
    bounds = [
        reliability.reliable_min,
        *(b for b in FLOW_BREAKS if b > reliability.reliable_min),
    ]
    robust = np.searchsorted(np.asarray(bounds), workers.to_numpy(float), "right") + 1
    fragile = (reliability_codes == ORDER_OF_MAGNITUDE).to_numpy()
    return np.where(fragile, 0, robust).astype(np.int_)


def _system_order(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    manifest: Mapping[str, Any],
) -> list[tuple[str, str]]:
    # The manifest's order (the config's), else mainland first then by SIREN.
    listed = [
        (str(s.get("territory", MAINLAND)), str(s["metropole_code"]))
        for s in manifest.get("systems", [])
    ]
    present = {
        (territory, str(code))
        for territory, layers in territory_layers.items()
        for code in layers["metropoles"]["metropole_code"]
    }
    rest = sorted(present - set(listed), key=lambda t: (t[0] != MAINLAND, t))
    return [item for item in listed if item in present] + rest


def map_systems(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    manifest: Mapping[str, Any],
) -> list[MapSystem]:
    """Return every system of the run as its map draws it, in the manifest's order.

    Parameters
    ----------
    territory_layers
        The run's layers by territory, then by name (``epci_indicators``,
        ``flows``, ``metropoles``), each in its territory's CRS.
    manifest
        The run's manifest (``systems`` gives the order).
    """
    out = []
    for territory, code in _system_order(territory_layers, manifest):
        layers = territory_layers[territory]
        epci, lines = layers["epci_indicators"], layers["flows"]
        metropoles = layers["metropoles"]
        everything = epci[epci["metropole_code"] == code]
        mine = contiguity_rows(everything)
        outside = everything[everything["crown"].isna()]
        others = epci[~epci["epci_code"].isin(everything["epci_code"])]
        system_lines = lines[(lines["metropole_code"] == code) & (lines["workers"] > 0)]
        row = metropoles[metropoles["metropole_code"] == code].iloc[0]
        out.append(
            MapSystem(
                territory=territory,
                code=code,
                name=str(row["metropole_name"]),
                epci=mine,
                flows=system_lines,
                outline=row.geometry,
                context=others.drop_duplicates("epci_code"),
                summary=row.drop("geometry"),
                outside=outside,
            )
        )
    return out


#: French names of the indicators a classification rule may test, and whether
#: they are shares (written as percentages) or ratios.
INDICATOR_WORDS = {
    "dependence_share": ("dépendance", True),
    "attraction_share": ("attraction", True),
    "reciprocity": ("réciprocité", False),
    "self_containment_share": ("part des actifs travaillant dans leur EPCI", True),
    "main_other_destination_share": ("part vers un autre EPCI (le premier)", True),
}


def rule_text(rule: ClassRule) -> str:
    """Return a classification rule in French: ``dépendance ≥ 40 %``."""
    if not rule.conditions:
        return "aucune des règles précédentes"
    parts = []
    for name, value in rule.conditions:
        word, share = INDICATOR_WORDS.get(name, (name, False))
        digits = 0 if float(round(100 * value, 6)).is_integer() else 1
        number = percent_fr(value, digits) if share else f"{value:g}".replace(".", ",")
        parts.append(f"{word} ≥ {number}")
    return " et ".join(parts)


def territory_text(territory: str) -> str:
    """Return the name of an overseas territory (empty for mainland France)."""
    return "" if territory == MAINLAND else TERRITORY_NAMES.get(territory, territory)


def _fd_vintage(manifest: Mapping[str, Any]) -> str:
    # The census of the detailed file, when the config states it (fd_vintage).
    inputs = manifest.get("config", {}).get("content", {}).get("inputs", {})
    return str(inputs.get("fd_vintage") or "")


def sources_line(manifest: Mapping[str, Any]) -> str:
    """Return the sources of a picture, from the manifest's inputs.

    INSEE's census (base flux, its vintage; the detailed file, the previous
    vintage when used), IGN's ADMIN EXPRESS and INSEE's EPCI composition with
    the geography of the run, and the program that drew it.
    """
    inputs: Sequence[Mapping[str, Any]] = manifest.get("inputs", [])
    roles = {input_role(r) for r in inputs}
    flux = input_vintages(inputs, "flows") or str(manifest.get("flows_vintage") or "")
    census = [f"base flux domicile-travail RP {flux}".strip()]
    if "flows_previous" in roles:
        previous = input_vintages(inputs, "flows_previous") or manifest.get(
            "previous_vintage"
        )
        census.append(f"RP {previous} (comparaison)")
    if "fd_mobpro" in roles:
        fd = input_vintages(inputs, "fd_mobpro") or _fd_vintage(manifest)
        census.append(f"fichier détail MOBPRO{f' RP {fd}' if fd else ''}")
    synthetic = " (données SYNTHÉTIQUES)" if is_synthetic(manifest) else ""
    parts = [f"INSEE, recensement : {', '.join(census)}{synthetic}"]
    geography = manifest.get("geography")
    on = f" au 1er janvier {geography}" if geography else ""
    if "communes" in roles:
        parts.append(f"IGN, ADMIN EXPRESS (communes{on})")
    if "epci_composition" in roles:
        parts.append(f"INSEE, composition communale des EPCI{on}")
    if "commune_passage" in roles:
        parts.append("INSEE, COG (passage des codes communes)")
    program = manifest.get("package", {}).get("version", __version__)
    return f"Sources : {' ; '.join(parts)}. Traitement : observatory {program}."


def count_text(value: float) -> str:
    """Format a number of workers the French way (``13 391``), ``n.d.`` if missing."""
    if value is None or not np.isfinite(value):
        return "n.d."
    return count_fr(value)
