"""The report of a run: one self-contained ``report.html``, in French.

For agencies and elected officials: a header (run, census vintages, geography,
date, the synthetic-data notice when the flows are synthetic), how to read the
report (indicators, classification rules), an index of the métropoles with
their key figures, one section per métropole (map, key figures, EPCI with their
class and the rule that placed them there, change between vintages, charts,
reliability caveats), then sources and provenance. The page needs nothing but
itself: inline CSS, images as ``data:`` URIs, system fonts, no script.

:func:`report_html` is pure: it takes the run's layers, manifest and images and
returns the page; :mod:`observatory.runs.publish` writes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.geography import MAINLAND, TERRITORY_NAMES
from observatory.layers.captions import is_synthetic
from observatory.layers.codes import class_labels
from observatory.layers.styles import class_colours
from observatory.report.html_flows import (
    FLOW_TERMS,
    flow_systems_block,
    overview_section,
)
from observatory.report.html_format import (
    MISSING,
    Html,
    esc,
    fr_count,
    fr_datetime,
    fr_percent,
    join,
    rule_fr,
    table,
    tag,
)
from observatory.report.html_land import (
    land_block,
    land_overview_section,
    land_years,
)
from observatory.report.html_sections import (
    Context,
    System,
    metropole_section,
    records,
    swatch,
    system_anchor,
)
from observatory.report.html_sources import sources_section
from observatory.report.html_style import REPORT_CSS
from observatory.report.mapdata import contiguity_rows

#: File name of the report in the run folder.
REPORT_FILE = "report.html"

#: What the page may load: its inline style and its ``data:`` images, nothing else.
#: Browsers then refuse any external asset, so the report behaves the same offline.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

#: Words before the place in a métropole's name, left out when sorting the index.
_NAME_PREFIX = re.compile(
    r"^(euro)?metropole( europeenne)?( du| de la| de l'| d'| de| des)?\s+"
)


def thresholds(manifest: Mapping[str, Any]) -> ReliabilitySection:
    """Return INSEE's thresholds the run used (its config's, else the defaults)."""
    content = (manifest.get("config") or {}).get("content") or {}
    raw = content.get("reliability") or {}
    default = ReliabilitySection()
    return ReliabilitySection(
        reliable_min=float(raw.get("reliable_min", default.reliable_min)),
        usable_min=float(raw.get("usable_min", default.usable_min)),
    )


def sort_key(system: System) -> tuple[bool, str, str]:
    """Order the métropoles: mainland first, then by place name (``Brest``...)."""
    plain = unicodedata.normalize("NFKD", system.name.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    plain = plain.replace("’", "'")
    return (system.territory != MAINLAND, system.territory, _NAME_PREFIX.sub("", plain))


def attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a layer's attribute table: a plain DataFrame, without geometry."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame:
        frame = frame.drop(columns=frame.geometry.name)
    return pd.DataFrame(frame)


def systems_of(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    flow_matrix: pd.DataFrame,
) -> list[System]:
    """Split the layers by métropole, in the order of the index."""
    matrix = dict(tuple(flow_matrix.groupby("metropole_code", sort=False)))
    systems = []
    for territory, layers in territory_layers.items():
        # The report reads attributes only: geometry slows every row access down.
        epci_table, lines_table = (
            attributes(layers["epci_indicators"]),
            attributes(layers["flows"]),
        )
        crowns = contiguity_rows(epci_table)
        epci = dict(tuple(crowns.groupby("metropole_code")))
        beyond = epci_table[epci_table["crown"].isna()]
        outside = dict(tuple(beyond.groupby("metropole_code")))
        lines = dict(tuple(lines_table.groupby("metropole_code")))
        for row in records(attributes(layers["metropoles"])):
            code = str(row["metropole_code"])
            systems.append(
                System(
                    code=code,
                    name=str(row.get("metropole_name") or code),
                    territory=territory,
                    epci=epci.get(code, crowns.iloc[:0]),
                    summary=row,
                    lines=lines.get(code, lines_table.iloc[:0]),
                    matrix=matrix.get(code, flow_matrix.iloc[:0]),
                    outside=outside.get(code, beyond.iloc[:0]),
                )
            )
    return sorted(systems, key=sort_key)


def run_table(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the ``[run]`` table of the run's config (name, description...)."""
    content = (manifest.get("config") or {}).get("content") or {}
    return content.get("run") or {}


def _facts(manifest: Mapping[str, Any], systems: list[System]) -> list[tuple[str, str]]:
    # Census vintages, geography, date and size of the run, as the header says them.
    previous = manifest.get("previous_vintage")
    geography = manifest.get("geography")
    detail = ((manifest.get("fd_mobpro") or {}).get("read") or {}).get("vintage")
    n_epci = len(
        {c for s in systems for c in s.epci.loc[s.epci["crown"] > 0, "epci_code"]}
    )
    facts = [
        (
            "Recensement",
            f"RP {manifest.get('flows_vintage') or MISSING} (flux domicile-travail)",
        ),
        (
            "Comparaison",
            f"RP {previous}" if previous else "aucun millésime précédent dans ce run",
        ),
    ]
    if detail:
        facts.append(
            ("Fichier détail", f"RP {detail} (modes de transport et distances)")
        )
    if land := land_years(manifest):
        facts.append(("Occupation du sol", land))
    return [
        *facts,
        (
            "Géographie",
            f"communes et EPCI au 1er janvier {geography}" if geography else MISSING,
        ),
        ("Date du run", fr_datetime(manifest.get("started"))),
        (
            "Systèmes",
            f"{len(systems)} métropole{'s' if len(systems) > 1 else ''}, "
            f"{n_epci} EPCI autour d'elles",
        ),
    ]


def header(manifest: Mapping[str, Any], systems: list[System], synthetic: bool) -> Html:
    """Return the top of the page: notice, title, run, vintages, geography, date."""
    run = run_table(manifest)
    facts = _facts(manifest, systems)
    parts: list[object] = []
    if synthetic:
        parts.append(
            tag(
                "div",
                join(
                    [
                        tag("strong", "DONNÉES SYNTHÉTIQUES"),
                        "Les flux domicile-travail de ce run sont synthétiques : ils ne "
                        "viennent pas de l'INSEE et ne décrivent aucun territoire réel. "
                        "Les indicateurs, classes, évolutions et parts modales qui en "
                        "sont tirés sont donc fictifs : ne pas les citer ni les diffuser "
                        "comme des statistiques.",
                    ]
                ),
                class_="banner",
                role="alert",
            )
        )
    parts += [
        tag("p", "Observatoire des navettes domicile-travail", class_="kicker"),
        tag("h1", "Les métropoles et leurs couronnes"),
        tag(
            "p", join(["Run «\u00a0", tag("b", run.get("name") or MISSING), "\u00a0»"])
        ),
    ]
    if run.get("description"):
        parts.append(tag("p", f"Description : {run['description']}", class_="note"))
    parts.append(
        tag(
            "dl",
            join(join([tag("dt", k), tag("dd", v)]) for k, v in facts),
            class_="facts",
        )
    )
    return tag("header", join(parts))


def guide(classification: ClassificationSection, ctx: Context) -> Html:
    """Return how to read the report: crowns, indicators, the classification rules."""
    terms = [
        (
            "Couronnes",
            "1re couronne : EPCI qui touchent la métropole ; 2e couronne : "
            "EPCI qui touchent la 1re.",
        ),
        (
            "Dépendance",
            "part des actifs occupés d'un EPCI qui travaillent dans la métropole.",
        ),
        (
            "Attraction",
            "part des emplois d'un EPCI occupés par des habitants de la métropole.",
        ),
        (
            "Réciprocité",
            "plus petit des deux flux (vers et depuis la métropole) divisé par "
            "le plus grand : 0 à sens unique, 1 équilibré.",
        ),
        (
            "Autocontention",
            "part des actifs occupés qui travaillent dans leur propre EPCI.",
        ),
        *FLOW_TERMS,
    ]
    rules = [
        [
            join([swatch(ctx.colours.get("metropole")), ctx.labels["metropole"]]),
            "la métropole elle-même",
        ]
    ]
    rules += [
        [
            join([swatch(ctx.colours.get(rule.class_code)), rule.label]),
            rule_fr(rule.describe()),
        ]
        for rule in classification.rules
    ]
    rules.append(
        [
            join([swatch(ctx.colours.get("sans_donnees")), ctx.labels["sans_donnees"]]),
            "aucun actif résident dans les flux",
        ]
    )
    return tag(
        "section",
        join(
            [
                tag("h2", "Lire ce rapport"),
                tag(
                    "dl",
                    join(join([tag("dt", k), tag("dd", v)]) for k, v in terms),
                    class_="facts",
                ),
                tag("h3", "Classes des EPCI"),
                tag(
                    "p",
                    "Les règles sont essayées dans l'ordre ; la première dont toutes "
                    "les conditions sont remplies donne la classe.",
                    class_="note",
                ),
                table(["Classe", "Condition"], rules),
            ]
        ),
        id="lire",
    )


def index(systems: list[System], usable_min: float) -> Html:
    """Return the index: one row per métropole with its key figures and a link."""
    several = len({s.territory for s in systems}) > 1
    rows = []
    for number, system in enumerate(systems, start=1):
        me = system.summary
        fragile, total = me.get("n_flows_order_of_magnitude"), me.get("n_flows")
        rows.append(
            [
                tag(
                    "a",
                    f"{number}. {system.name}",
                    href=f"#{system_anchor(system.code)}",
                ),
                *(
                    [TERRITORY_NAMES.get(system.territory, system.territory)]
                    if several
                    else []
                ),
                fr_count(me.get("n_epci_crown1")),
                fr_count(me.get("n_epci_crown2")),
                fr_percent(me.get("dependence_share_crown1")),
                fr_percent(me.get("dependence_share_crown2")),
                f"{fr_count(fragile)} sur {fr_count(total)}",
            ]
        )
    headers = [
        "Métropole",
        *(["Territoire"] if several else []),
        "EPCI en 1re couronne",
        "EPCI en 2e couronne",
        "Dépendance de la 1re couronne",
        "Dépendance de la 2e couronne",
        f"Flux fragiles (< {fr_count(usable_min)} actifs)",
    ]
    flags = [False, *([False] if several else []), *[True] * 5]
    links = join(
        [
            tag("a", "Lire ce rapport", href="#lire"),
            " · ",
            tag("a", "Sources et provenance", href="#sources"),
        ]
    )
    return tag(
        "section",
        join(
            [
                tag("h2", "Sommaire"),
                table(headers, rows, flags, class_="index"),
                tag("p", links, class_="note"),
            ]
        ),
        id="sommaire",
    )


def report_html(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    flow_matrix: pd.DataFrame,
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
    images: Mapping[str, bytes],
    reliability: ReliabilitySection | None = None,
) -> str:
    """Return the run's ``report.html``: one page that opens offline.

    Parameters
    ----------
    territory_layers
        Map layers by territory, then by layer name (``epci_indicators``,
        ``flows``, ``metropoles``), as the run builds or publishes them.
    flow_matrix
        The named flow matrix of every system.
    manifest
        The run's manifest (``manifest.json`` as a dict).
    classification
        The rules: class labels, colours and conditions.
    images
        Files of the run folder by name: ``maps/<code>.png``,
        ``charts/<code>_dependance.png``, ``charts/<code>_flux.png`` are embedded
        when present (a note says when one is missing); the others
        (``atlas.pdf``, ``observatory.qgz``...) are listed with the run's files.
    reliability
        INSEE's thresholds; by default the manifest's config's, else INSEE's.
    """
    synthetic = is_synthetic(manifest)
    limits = reliability or thresholds(manifest)
    ctx = Context(
        labels=class_labels(classification),
        colours=class_colours(classification),
        usable_min=limits.usable_min,
        reliable_min=limits.reliable_min,
        synthetic=synthetic,
        images=images,
    )
    systems = systems_of(territory_layers, flow_matrix)
    name = run_table(manifest).get("name")
    body = join(
        [
            header(manifest, systems, synthetic),
            index(systems, limits.usable_min),
            guide(classification, ctx),
            overview_section(systems, manifest),
            land_overview_section(systems, manifest),
            *(
                metropole_section(
                    s,
                    n,
                    ctx,
                    join(
                        [flow_systems_block(s, manifest), land_block(s, manifest, ctx)]
                    ),
                )
                for n, s in enumerate(systems, start=1)
            ),
            sources_section(manifest, images.keys()),
            tag(
                "footer",
                f"Rapport produit par observatory, run {manifest.get('run_id', MISSING)}.",
            ),
        ]
    )
    title = f"Navettes domicile-travail autour des métropoles — {name or 'run'}"
    return (
        '<!DOCTYPE html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{esc(title)}</title>\n<style>{REPORT_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
