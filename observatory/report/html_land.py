"""The report's pages on land complementarity (issue 14), in French.

Only when the run has land rasters (the manifest's ``land``); a run without
them has the same report as before.

- :func:`land_overview_section`: what the indicators mean, then one table of
  every métropole: its own land and people, its crowns' farmland per
  inhabitant of the métropole;
- :func:`land_block`: in a métropole's section, its land-use panel (map and
  charts) and the land of the métropole and of each crown;
- :func:`land_sources`: in "Sources et provenance", each raster with its
  product, year, CRS, pixel, coverage and counting rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from observatory.geography import TERRITORY_NAMES
from observatory.report.html_format import (
    MISSING,
    Html,
    finite,
    fr_count,
    fr_number,
    fr_percent,
    join,
    table,
    tag,
)
from observatory.report.html_sections import Context, System, figure, system_anchor

#: The parts of a system and their column suffix on ``metropoles``.
PARTS = (("_own", "Métropole"), ("_crown1", "1re couronne"), ("_crown2", "2e couronne"))

#: French names of the land rasters' roles (``[inputs]`` keys).
LAND_ROLE_LABELS = {
    "land_cover": "Occupation du sol (raster)",
    "built_up": "Surface bâtie (raster GHSL)",
    "built_up_previous": "Surface bâtie, époque précédente (raster GHSL)",
    "population_grid": "Population (grille GHSL)",
    "population_grid_previous": "Population, époque précédente (grille GHSL)",
}

#: The words of the land indicators, as the overview explains them.
LAND_TERMS = (
    (
        "Occupation du sol",
        "part de la surface de l'EPCI (ou de la couronne) classée artificialisée, "
        "agricole (cultures, prairies, vergers, vignes), forêts et milieux "
        "semi-naturels, ou en eau, sur la surface que le raster couvre.",
    ),
    (
        "Terres agricoles par habitant",
        "hectares agricoles d'une couronne divisés par les habitants de la "
        "métropole : ce que les couronnes ont (des terres) face à ce que la "
        "métropole a (des habitants), la complémentarité « du champ à l'assiette ».",
    ),
    (
        "Surface bâtie par habitant",
        "m² de bâti (GHS-BUILT-S) par habitant (GHS-POP) du même millésime, et "
        "son évolution entre deux époques.",
    ),
)


def land(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the manifest's ``land`` (empty without land rasters)."""
    return manifest.get("land") or {}


def _rasters(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(land(manifest).get("rasters") or [])


def _synthetic(manifest: Mapping[str, Any]) -> bool:
    return any(r.get("synthetic") for r in _rasters(manifest))


def land_years(manifest: Mapping[str, Any]) -> str:
    """Return the land rasters' years, in words (empty without land rasters)."""
    years = _years(manifest)
    return (
        f"{years} (rasters synthétiques)" if years and _synthetic(manifest) else years
    )


def _years(manifest: Mapping[str, Any]) -> str:
    year = {str(r.get("role")): r.get("vintage") for r in _rasters(manifest)}
    parts = []
    if year.get("land_cover"):
        parts.append(f"occupation du sol {year['land_cover']}")
    if year.get("population_grid"):
        epochs = [year.get("population_grid"), year.get("population_grid_previous")]
        parts.append(
            "grilles GHSL " + " et ".join(str(e) for e in epochs if e is not None)
        )
    return ", ".join(parts)


def hectares(value: object, digits: int = 2) -> str:
    """Format hectares: ``0,31 ha``."""
    return MISSING if finite(value) is None else f"{fr_number(value, digits)}\u00a0ha"


def _value(summary: Mapping[str, Any], column: str) -> object:
    return summary.get(column)


def _per_inhabitant(suffix: str) -> str:
    if suffix == "_own":
        return "agricultural_ha_per_inhabitant_own"
    return f"agricultural_ha{suffix}_per_metropole_inhabitant"


def _notes(manifest: Mapping[str, Any]) -> list[Html]:
    notes = []
    if _synthetic(manifest):
        notes.append(
            tag(
                "p",
                "Rasters SYNTHÉTIQUES (démonstration) : l'occupation du sol, le bâti "
                "et la population de ce run sont fictifs ; ne pas les citer.",
                class_="synthetic-note",
            )
        )
    notes.append(
        tag(
            "p",
            "Chiffres calculés par commune (pixels dont le centre est dans la "
            "commune), additionnés par EPCI puis par couronne ; les parts et ratios "
            "sont pris après l'addition. La population est celle de la grille "
            "GHS-POP (estimation du JRC), pas le recensement de l'INSEE. OSO ne "
            "couvre que la France métropolitaine : outre-mer, les colonnes "
            "d'occupation du sol restent vides.",
            class_="note",
        )
    )
    return notes


def land_overview_section(
    systems: Sequence[System], manifest: Mapping[str, Any]
) -> Html:
    """Return the table of every métropole's land and its crowns' (empty without land)."""
    if not land(manifest):
        return Html("")
    rows = []
    for system in systems:
        me = system.summary
        rows.append(
            [
                tag("a", system.name, href=f"#{system_anchor(system.code)}"),
                fr_count(_value(me, "metropole_grid_population")),
                fr_percent(_value(me, "artificialised_share_own")),
                fr_percent(_value(me, "agricultural_share_own")),
                hectares(_value(me, "agricultural_ha_per_inhabitant_own")),
                hectares(_value(me, _per_inhabitant("_crown1"))),
                hectares(_value(me, _per_inhabitant("_crown2"))),
                fr_number(_value(me, "built_up_m2_per_inhabitant_own")),
            ]
        )
    headers = [
        "Métropole",
        "Habitants (GHS-POP)",
        "Part artificialisée",
        "Part agricole",
        "Terres agricoles de la métropole par habitant",
        "Terres de la 1re couronne par habitant de la métropole",
        "Terres de la 2e couronne par habitant de la métropole",
        "Surface bâtie par habitant (m²)",
    ]
    terms = tag(
        "dl",
        join(join([tag("dt", k), tag("dd", v)]) for k, v in LAND_TERMS),
        class_="facts",
    )
    return tag(
        "section",
        join(
            [
                tag("h2", "Occupation du sol et complémentarité"),
                tag(
                    "p",
                    "Les coopérations entre une métropole et ses voisins ne portent pas "
                    "que sur les navettes : alimentation, énergie, eau, foncier. Ce "
                    "qui manque à la métropole (des terres agricoles, des forêts, de "
                    "l'espace) et ce qui manque à ses couronnes (des emplois) se "
                    f"complètent. Sources : {_years(manifest) or MISSING}.",
                ),
                terms,
                table(headers, rows, [False, *[True] * 7], class_="index"),
                *_notes(manifest),
            ]
        ),
        id="occupation-du-sol",
    )


def _part_rows(summary: Mapping[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for suffix, name in PARTS:
        rows.append(
            [
                name,
                fr_percent(_value(summary, f"artificialised_share{suffix}")),
                fr_percent(_value(summary, f"agricultural_share{suffix}")),
                fr_percent(_value(summary, f"forest_seminatural_share{suffix}")),
                hectares(_value(summary, f"agricultural_ha{suffix}"), 0),
                hectares(_value(summary, _per_inhabitant(suffix))),
                fr_number(_value(summary, f"built_up_m2_per_inhabitant{suffix}")),
                fr_percent(_value(summary, f"land_cover_coverage{suffix}")),
            ]
        )
    return rows


def _sentence(system: System) -> str | None:
    me = system.summary
    own = finite(_value(me, "agricultural_ha_own"))
    crowns = [finite(_value(me, f"agricultural_ha{s}")) for s, _ in PARTS[1:]]
    known = [c for c in crowns if c is not None]
    people = finite(_value(me, "metropole_grid_population"))
    if own is None or not known or not people:
        return None
    total = sum(known)
    ratio = f", {fr_number(total / own, 0)} fois celles de la métropole" if own else ""
    return (
        f"Les couronnes de {system.name} comptent {hectares(total, 0)} de terres "
        f"agricoles{ratio}, soit {hectares(total / people)} par habitant de la "
        f"métropole ({fr_count(people)} habitants sur la grille GHS-POP)."
    )


def land_block(system: System, manifest: Mapping[str, Any], ctx: Context) -> Html:
    """Return a métropole's land: its panel and the land of each part (empty without)."""
    if not land(manifest):
        return Html("")
    headers = [
        "",
        "Part artificialisée",
        "Part agricole",
        "Part forêts et milieux semi-naturels",
        "Surface agricole",
        "Terres agricoles par habitant de la métropole",
        "Surface bâtie par habitant (m²)",
        "Part couverte",
    ]
    parts: list[object] = [
        tag("h3", "Occupation du sol et complémentarité"),
        figure(
            f"maps/{system.code}_sols.png",
            "Occupation du sol du système",
            ctx,
            f"Occupation du sol et terres agricoles de {system.name} et de ses couronnes",
        ),
    ]
    if sentence := _sentence(system):
        parts.append(tag("p", sentence))
    parts.append(table(headers, _part_rows(system.summary), [False, *[True] * 7]))
    if _synthetic(manifest):
        parts.append(
            tag(
                "p",
                "Rasters synthétiques : chiffres de démonstration.",
                class_="synthetic-note",
            )
        )
    return join(parts)


def _product(record: Mapping[str, Any]) -> str:
    # "OSO 23 classes" says the product already; "GHS-POP" has no nomenclature.
    product = str(record.get("product") or MISSING)
    nomenclature = str(record.get("nomenclature") or "")
    if nomenclature.startswith(product):
        return nomenclature
    return f"{product} ({nomenclature})" if nomenclature else product


def land_sources(manifest: Mapping[str, Any]) -> Html:
    """Return the rasters of the run: product, year, CRS, pixel, coverage, rule."""
    rasters = _rasters(manifest)
    if not rasters:
        return Html("")
    rows = []
    for record in rasters:
        coverage = record.get("coverage") or {}
        if isinstance(coverage, Mapping):
            covered = ", ".join(
                f"{fr_percent(v)} ({TERRITORY_NAMES.get(str(t), t)})"
                for t, v in coverage.items()
            )
        else:
            covered = fr_percent(coverage)
        year = str(record.get("vintage") or MISSING)
        rows.append(
            [
                LAND_ROLE_LABELS.get(str(record.get("role")), str(record.get("role"))),
                join(
                    tag("code", PurePath(str(f)).name)
                    for f in record.get("files") or []
                ),
                _product(record),
                f"{year} (synthétique)" if record.get("synthetic") else year,
                f"{record.get('crs') or MISSING}, {fr_number(record.get('pixel_size'))} m",
                covered or MISSING,
            ]
        )
    rule = next((r.get("counting_rule") for r in rasters), None)
    return join(
        [
            tag("h3", "Rasters d'occupation du sol, de bâti et de population"),
            table(
                [
                    "Donnée",
                    "Fichier(s)",
                    "Produit",
                    "Millésime",
                    "SCR, pixel",
                    "Couverture",
                ],
                rows,
            ),
            tag(
                "p",
                f"Règle de comptage : {'centre du pixel' if rule == 'pixel centre' else rule}"
                " (un pixel compte pour la commune qui contient son centre) ; couverture : "
                "part de la surface des communes que le raster couvre avec des données.",
                class_="note",
            ),
        ]
    )
