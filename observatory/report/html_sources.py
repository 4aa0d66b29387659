"""The end of the run report: sources and provenance of every input, the run's messages.

Everything is read from the run's manifest (``manifest.json`` as a dict), so the
report says exactly what the run recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

from observatory.report.html_format import (
    MISSING,
    Html,
    fr_count,
    fr_datetime,
    fr_percent,
    join,
    table,
    tag,
)
from observatory.report.html_land import LAND_ROLE_LABELS, land_sources

#: French names of the input roles of a run (``[inputs]`` keys).
ROLE_LABELS = {
    "communes": "Contours des communes (IGN, ADMIN EXPRESS)",
    "epci_composition": "Composition communale des EPCI (INSEE)",
    "epci_list": "Liste des EPCI (INSEE)",
    "flows": "Flux domicile-travail, base flux MOBPRO (INSEE)",
    "flows_previous": "Flux domicile-travail du millésime précédent (INSEE)",
    "commune_passage": "Table de passage des communes (INSEE, COG)",
    "fd_mobpro": "Fichier détail MOBPRO (INSEE)",
    "aav": "Aires d'attraction des villes 2020 (INSEE)",
    **LAND_ROLE_LABELS,
}

#: What the files of a run folder hold, for the list at the end of the report.
FILE_LABELS = {
    "observatory.gpkg": "GeoPackage : toutes les couches avec leurs styles (QGIS)",
    "observatory.qgz": "Projet QGIS : un groupe par métropole, atlas de cartes",
    "atlas.pdf": "Atlas des cartes (PDF)",
    "manifest.json": "Manifeste : entrées, empreintes, paramètres, avertissements",
    "data_dictionary.csv": "Dictionnaire des données : colonnes et libellés",
    "flow_matrix.parquet": "Matrice des flux de chaque système (table Parquet)",
}

#: Files of the run folder the list leaves out (embedded here, or styles of layers).
_UNLISTED = re.compile(r"^(maps/|charts/|report\.html$)|\.qml$")

#: The inputs that are census figures (synthetic when the run's flows are).
CENSUS_ROLES = ("flows", "flows_previous", "fd_mobpro")

#: Characters of a SHA-256 shown (enough to compare two files by eye).
SHA_PREFIX = 12


def sha_short(digest: object) -> str:
    """Return the first characters of a SHA-256, or a dash."""
    return f"{str(digest)[:SHA_PREFIX]}…" if digest else MISSING


def _grouped(inputs: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    # The parts of one shapefile (.shp, .shx, .dbf...) are one input: group them.
    groups: list[list[Mapping[str, Any]]] = []
    for record in inputs:
        stem = PurePath(str(record.get("path", ""))).with_suffix("")
        last = groups[-1][0] if groups else None
        if (
            last is not None
            and last.get("role") == record.get("role")
            and PurePath(str(last.get("path", ""))).with_suffix("") == stem
        ):
            groups[-1].append(record)
        else:
            groups.append([record])
    return groups


def _origin(record: Mapping[str, Any]) -> Html:
    provenance = record.get("provenance")
    if not isinstance(provenance, Mapping) or not provenance.get("url"):
        if record.get("source"):
            return join(["catalogue : ", record["source"]])
        return Html("fichier local")
    url = str(provenance["url"])
    link = tag("a", url, href=url) if url.startswith(("https://", "http://")) else url
    fetched = provenance.get("fetched_at")
    parts: list[object] = [link]
    if record.get("source"):
        parts.append(tag("small", f"catalogue : {record['source']}"))
    if fetched:
        parts.append(tag("small", f"téléchargé le {fr_datetime(fetched)}"))
    if provenance.get("licence"):
        parts.append(tag("small", f"licence : {provenance['licence']}"))
    return join(parts)  # each <small> is a line of its own (CSS)


def _digests(group: list[Mapping[str, Any]]) -> Html:
    # One SHA-256 per file; the parts of a shapefile each say their extension.
    if len(group) == 1:
        return tag("code", sha_short(group[0].get("sha256")))
    return join(
        (
            tag(
                "code",
                f"{PurePath(str(r.get('path', ''))).suffix} {sha_short(r.get('sha256'))}",
            )
            for r in group
        ),
        "<br>",
    )


def inputs_table(manifest: Mapping[str, Any]) -> Html:
    """Return one row per input: role, file, vintage, geography, SHA-256, origin."""
    rows = []
    rasters = {
        str(r.get("role")): r for r in (manifest.get("land") or {}).get("rasters") or []
    }
    for group in _grouped(manifest.get("inputs") or []):
        first = group[0]
        name = PurePath(str(first.get("path", ""))).name
        others = [PurePath(str(r.get("path", ""))).suffix for r in group[1:]]
        file_cell = join([tag("code", name)])
        if others:
            file_cell = join([file_cell, tag("small", f"(+ {', '.join(others)})")], " ")
        vintage = first.get("vintage")
        if vintage is None and first.get("role") == "fd_mobpro":
            # The detailed file's vintage is what reading it found.
            vintage = ((manifest.get("fd_mobpro") or {}).get("read") or {}).get(
                "vintage"
            )
        synthetic = first.get("synthetic") or (
            # A run whose flows are synthetic has synthetic census inputs (the
            # demo's detailed file carries no flag of its own).
            first.get("role") in CENSUS_ROLES and manifest.get("synthetic_flows")
        )
        if vintage is not None and synthetic:
            vintage = f"{vintage} (synthétique)"
        if first.get("role") == "aav" and "synthetic" in name.lower():
            vintage = "2020 (synthétique, démonstration)"
        if (raster := rasters.get(str(first.get("role")).split("[")[0])) is not None:
            vintage = raster.get("vintage")
            if raster.get("synthetic"):
                vintage = f"{vintage} (synthétique)"
        geography = first.get("geography")
        rows.append(
            [
                ROLE_LABELS.get(str(first.get("role")), str(first.get("role"))),
                file_cell,
                MISSING if vintage is None else str(vintage),
                MISSING if geography is None else f"au 1er janvier {geography}",
                _digests(group),
                _origin(first),
            ]
        )
    headers = [
        "Donnée",
        "Fichier",
        "Millésime",
        "Géographie",
        "SHA-256",
        "Origine",
    ]
    return table(headers, rows, class_="sources")


def software_list(manifest: Mapping[str, Any]) -> Html:
    """Return the package, configuration, classification and run identifiers."""
    package = manifest.get("package") or {}
    config = manifest.get("config") or {}
    fingerprint = (manifest.get("refresh") or {}).get("fingerprint") or {}
    classification = (manifest.get("classification") or {}).get("path")
    items = [
        (
            "Logiciel",
            f"{package.get('name', 'observatory')} {package.get('version', MISSING)}"
            f" (Python {manifest.get('python', MISSING)})",
        ),
        (
            "Configuration",
            f"{PurePath(str(config.get('path', ''))).name or MISSING}, "
            f"SHA-256 {sha_short(config.get('sha256'))}",
        ),
        (
            "Règles de classement",
            f"{PurePath(str(classification or '')).name or MISSING}, "
            f"SHA-256 {sha_short(fingerprint.get('classification_sha256'))}",
        ),
        ("Code du logiciel", f"SHA-256 {sha_short(fingerprint.get('code_sha256'))}"),
        ("Identifiant du run", str(manifest.get("run_id", MISSING))),
        ("Début du run", fr_datetime(manifest.get("started"))),
    ]
    return tag(
        "dl",
        join(join([tag("dt", k), tag("dd", v)]) for k, v in items),
        class_="facts",
    )


def checks_list(manifest: Mapping[str, Any]) -> Html:
    """Return what the run measured on its flows: totals, abroad, unmatched."""
    flows = manifest.get("flows") or {}
    if not flows:
        return Html("")
    items = [
        ("Actifs occupés dans les flux lus", fr_count(flows.get("workers_total"))),
        ("Dont travaillant à l'étranger", fr_count(flows.get("workers_abroad"))),
        (
            "Actifs de communes non rattachées à un EPCI",
            f"{fr_count(flows.get('unmatched_workers'))} "
            f"({fr_percent(flows.get('unmatched_share'), 2)})",
        ),
    ]
    return tag(
        "dl",
        join(join([tag("dt", k), tag("dd", v)]) for k, v in items),
        class_="facts",
    )


def files_table(manifest: Mapping[str, Any], documents: Iterable[str] = ()) -> Html:
    """Return the files of the run folder a reader may open, linked relatively.

    The manifest's ``files`` and the ``documents`` written beside them (the atlas,
    the QGIS project...), in alphabetical order.
    """
    rows = []
    for name in sorted({str(n) for n in manifest.get("files") or []} | set(documents)):
        # Relative names only: no scheme (http:, javascript:...), no absolute path.
        if _UNLISTED.search(name) or ":" in name or name.startswith("/"):
            continue
        label = FILE_LABELS.get(name)
        if label is None and name.endswith(".parquet"):
            label = "Couche GeoParquet (QGIS avec GDAL 3.8 ou plus, Arrow)"
        rows.append([tag("a", tag("code", name), href=name), label or MISSING])
    if not rows:
        return Html("")
    return join(
        [
            tag("h3", "Fichiers du run"),
            tag("p", "Dans le même dossier que ce rapport.", class_="note"),
            table(["Fichier", "Contenu"], rows),
        ]
    )


def sources_section(manifest: Mapping[str, Any], documents: Iterable[str] = ()) -> Html:
    """Return the last section: inputs, software, checks, files, the run's messages."""
    warnings = [str(w) for w in manifest.get("warnings") or []]
    messages = (
        tag("ul", join(tag("li", w) for w in warnings), class_="warnings")
        if warnings
        else tag("p", "Aucun avertissement.", class_="note")
    )
    return tag(
        "section",
        join(
            [
                tag("h2", "Sources et provenance"),
                tag("h3", "Données d'entrée"),
                inputs_table(manifest),
                land_sources(manifest),
                tag("h3", "Traitement"),
                software_list(manifest),
                checks_list(manifest),
                files_table(manifest, documents),
                tag("h3", "Avertissements du run"),
                tag(
                    "p",
                    "Tels que le run les a enregistrés dans manifest.json (en anglais).",
                    class_="note",
                ),
                messages,
            ]
        ),
        id="sources",
        class_="sources",
    )
