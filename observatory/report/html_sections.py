"""The section of one métropole in the run report: map, figures, EPCI, change, caveats.

Each function takes one system (:class:`System`, the rows of the run's layers
that belong to it) and the report's :class:`Context`, and returns escaped HTML
(:class:`observatory.report.html_format.Html`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from observatory.geography import ABROAD_PREFIX, TERRITORY_NAMES
from observatory.layers.codes import NATURE_LABELS
from observatory.layers.schemas import MODE_LABELS
from observatory.report.html_format import (
    MISSING,
    Html,
    data_uri,
    esc,
    finite,
    fr_count,
    fr_number,
    fr_percent,
    fr_points,
    join,
    rule_html,
    table,
    tag,
)
from observatory.systems.flows import ORDER_OF_MAGNITUDE, RELIABLE, USABLE
from observatory.systems.modes import MODES

#: Place of work or residence outside the system, in France.
ELSEWHERE = "Ailleurs en France (hors du système)"

#: Place of work abroad.
ABROAD_PLACE = "À l'étranger"

#: The legal form at the start of an EPCI's name (as the QGIS labels drop it).
_LEGAL_FORM = re.compile(
    r"^(Communauté (de communes|d['’]agglomération|urbaine)|CC|CA|CU) "
    r"(du |de la |des |de l['’]|d['’]|de )?"
)

#: The images of a métropole (file name pattern, caption), in the order shown.
CHARTS = (
    ("charts/{code}_dependance.png", "Dépendance et attraction des EPCI"),
    ("charts/{code}_flux.png", "Flux vers et depuis la métropole"),
)


@dataclass(frozen=True, slots=True)
class System:
    """The rows of the run's layers that belong to one métropole's system."""

    code: str
    name: str
    territory: str
    epci: pd.DataFrame
    summary: Mapping[str, Any]
    lines: pd.DataFrame
    matrix: pd.DataFrame
    #: Rows beyond the contiguity crowns (hidden crown, AAV only); ``epci`` holds
    #: the crowns' rows only, crowns as integers.
    outside: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What every section needs besides its system.

    ``labels`` and ``colours`` are those of the EPCI classes, by code;
    ``usable_min`` and ``reliable_min`` INSEE's thresholds.
    """

    labels: Mapping[str, str]
    colours: Mapping[str, str]
    usable_min: float
    reliable_min: float
    synthetic: bool
    images: Mapping[str, bytes]


def plural(count: int, word: str, words: str | None = None) -> str:
    """Return ``count word`` with the word in the plural from 2 (French rule)."""
    return f"{count} {word if count < 2 else (words or word + 's')}"


def crown_label(crown: object) -> str:
    """Name a crown: ``Métropole``, ``1re couronne``, ``2e couronne``..."""
    k = int(crown)  # type: ignore[call-overload]
    if k == 0:
        return "Métropole"
    return f"{k}{'re' if k == 1 else 'e'}\u00a0couronne"


def system_anchor(code: str) -> str:
    """Return the id of a métropole's section (``m-242900314``)."""
    return f"m-{code}"


def short_name(name: object) -> str:
    """Return an EPCI's name without its legal form (``Pays d'Iroise``)."""
    text = str(name or "")
    short = _LEGAL_FORM.sub("", text).strip()
    return short[:1].upper() + short[1:] if short else text


def epci_cell(row: Mapping[str, Any]) -> Html:
    """Return an EPCI's short name, then its legal nature and SIREN in small."""
    nature = str(row.get("epci_nature") or "")
    detail = join(
        [NATURE_LABELS.get(nature, nature), f"SIREN\u00a0{row['epci_code']}"], "<br>"
    )
    return join([tag("b", short_name(row["epci_name"])), tag("small", detail)])


def swatch(colour: str | None) -> Html:
    """Return a small square of the class colour (as on the maps)."""
    return tag("span", "", class_="swatch", style=f"background:{colour or '#fff'}")


def class_cell(row: Mapping[str, Any], ctx: Context) -> Html:
    """Return the class of an EPCI: its colour and its French label."""
    code = str(row.get("epci_class") or "")
    label = row.get("epci_class_label")
    if not isinstance(label, str) or not label:
        label = ctx.labels.get(code, code or MISSING)
    # The colour stays beside its label when the label wraps.
    return tag(
        "span", join([swatch(ctx.colours.get(code)), tag("span", label)]), class_="cls"
    )


def figure(key: str, caption: str, ctx: Context, alt: str) -> Html:
    """Return an embedded image with its caption, or a note when it is absent."""
    content = ctx.images.get(key)
    if content is None:
        return tag("p", f"{caption} : image non produite pour ce run.", class_="note")
    # The maps and charts carry their own title: no caption under them.
    return tag("figure", Html(f'<img src="{data_uri(key, content)}" alt="{esc(alt)}">'))


def _flow_mark(reliability: object) -> str:
    # ** an order of magnitude only, * usable with care (legend under the table).
    return {ORDER_OF_MAGNITUDE: "\u00a0**", USABLE: "\u00a0*"}.get(str(reliability), "")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the rows of ``frame`` as dicts keyed by column name."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _ordered(epci: pd.DataFrame) -> list[dict[str, Any]]:
    # Crown by crown, the most dependent first (the métropole has none: first).
    return records(
        epci.sort_values(
            ["crown", "dependence_share", "epci_name"],
            ascending=[True, False, True],
            na_position="last",
        )
    )


def key_figures(system: System) -> Html:
    """Return the métropole's own figures and the sums of each crown."""
    me = system.summary
    cards = [
        ("Actifs occupés résidents", fr_count(me.get("employed_residents"))),
        ("Emplois", fr_count(me.get("jobs"))),
        ("Autocontention", fr_percent(me.get("self_containment_share"))),
        ("EPCI autour de la métropole", str(int((system.epci["crown"] > 0).sum()))),
    ]
    grid = tag(
        "div",
        join(
            tag("div", join([tag("b", value), tag("span", label)]), class_="card")
            for label, value in cards
        ),
        class_="cards",
    )
    rows = []
    for crown, part in system.epci.groupby("crown", sort=True):
        if crown == 0:
            continue
        residents = part["employed_residents"].sum()
        to_m, from_m = (
            part["flow_to_metropole"].sum(),
            part["flow_from_metropole"].sum(),
        )
        rows.append(
            [
                crown_label(crown),
                str(len(part)),
                fr_count(residents),
                fr_count(to_m),
                fr_percent(to_m / residents if residents > 0 else None),
                fr_count(from_m),
            ]
        )
    headers = [
        "Couronne",
        "EPCI",
        "Actifs occupés résidents",
        "Flux vers la métropole",
        "Dépendance (part des actifs)",
        "Flux depuis la métropole",
    ]
    crowns = table(headers, rows, [False, *[True] * 5])
    return join([grid, tag("h4", "Les couronnes"), crowns])


def _place(code: str, crowns: Mapping[str, int]) -> str:
    if code in crowns:
        return crown_label(crowns[code])
    return ABROAD_PLACE if code.startswith(ABROAD_PREFIX) else ELSEWHERE


def exchanges(system: System) -> Html:
    """Return where the métropole's residents work and where its workers live."""
    crowns = dict(zip(system.epci["epci_code"], system.epci["crown"], strict=True))
    matrix = system.matrix
    out = matrix[matrix["origin_code"] == system.code]
    into = matrix[matrix["destination_code"] == system.code]
    work = out.groupby(out["destination_code"].map(lambda c: _place(c, crowns)))
    live = into.groupby(into["origin_code"].map(lambda c: _place(c, crowns)))
    work_sum, live_sum = work["workers"].sum(), live["workers"].sum()
    places = [crown_label(k) for k in sorted(set(crowns.values()))]
    places += [ELSEWHERE, ABROAD_PLACE]
    rows = []
    for place in places:
        if place not in work_sum.index and place not in live_sum.index:
            continue
        worked, lived = work_sum.get(place), live_sum.get(place)
        rows.append(
            [
                place,
                fr_count(worked),
                fr_percent(worked / work_sum.sum() if worked is not None else None),
                fr_count(lived),
                fr_percent(lived / live_sum.sum() if lived is not None else None),
            ]
        )
    headers = [
        "Lieu",
        "Actifs de la métropole qui y travaillent",
        "Part",
        "Actifs qui y résident et travaillent dans la métropole",
        "Part",
    ]
    return join(
        [
            tag("h4", "Échanges de la métropole avec ses couronnes et au-delà"),
            table(headers, rows, [False, True, True, True, True]),
        ]
    )


def class_summary(system: System, ctx: Context) -> Html:
    """Return how many surrounding EPCI each class holds, in legend order."""
    counts = system.epci.loc[system.epci["crown"] > 0, "epci_class"].value_counts()
    items = [
        tag(
            "li",
            join(
                [swatch(ctx.colours.get(code)), f"{ctx.labels[code]} : {counts[code]}"]
            ),
        )
        for code in ctx.labels
        if code in counts.index
    ]
    return tag("ul", join(items), class_="classes")


def epci_table(system: System, ctx: Context) -> Html:
    """Return the EPCI of the system: crown, class, rule and indicators."""
    rows = []
    for row in _ordered(system.epci):
        flow = fr_count(row.get("flow_to_metropole"))
        if flow != MISSING:
            flow += _flow_mark(row.get("flow_to_metropole_reliability"))
        rows.append(
            [
                epci_cell(row),
                crown_label(row["crown"]),
                class_cell(row, ctx),
                rule_html(row.get("class_rule"), row),
                fr_count(row.get("employed_residents")),
                flow,
                fr_percent(row.get("dependence_share")),
                fr_percent(row.get("attraction_share")),
                fr_number(row.get("reciprocity"), 2),
            ]
        )
    headers = [
        "EPCI",
        "Couronne",
        "Classe",
        "Règle qui l'a classé",
        "Actifs occupés",
        "Flux vers la métropole",
        "Dépendance",
        "Attraction",
        "Réciprocité",
    ]
    legend = (
        f"* flux de {fr_count(ctx.usable_min)} à {fr_count(ctx.reliable_min)} actifs : "
        f"à utiliser avec précaution ; ** flux de moins de {fr_count(ctx.usable_min)} "
        "actifs : ordre de grandeur seulement (la dépendance qui en découle l'est "
        "aussi). Réciprocité : 0 échanges à sens unique, 1 équilibrés."
    )
    return join(
        [
            table(headers, rows, [False] * 4 + [True] * 5, class_="epci"),
            tag("p", legend, class_="note"),
        ]
    )


def reliability_section(system: System, ctx: Context) -> Html:
    """Return the INSEE caveats and how many of the system's flows they touch."""
    counts = system.lines["reliability"].value_counts()
    n = {
        code: int(counts.get(code, 0))
        for code in (RELIABLE, USABLE, ORDER_OF_MAGNITUDE)
    }
    usable, reliable = fr_count(ctx.usable_min), fr_count(ctx.reliable_min)
    said = (
        f"{plural(n[RELIABLE], 'fiable')} (≥ {reliable}), "
        f"{n[USABLE]} à utiliser avec précaution ({usable} à {reliable}) et "
        f"{n[ORDER_OF_MAGNITUDE]} à ne lire que comme un ordre de grandeur (< {usable})"
    )
    fragile = (
        system.epci[system.epci["flow_to_metropole_reliability"] == ORDER_OF_MAGNITUDE][
            "epci_name"
        ]
        .map(short_name)
        .tolist()
    )
    items = [
        f"Les flux du recensement sont des estimations pondérées issues d'un "
        f"sondage. L'INSEE les tient pour fiables à partir de "
        f"{fr_count(ctx.reliable_min)} actifs, utilisables avec précaution de "
        f"{fr_count(ctx.usable_min)} à {fr_count(ctx.reliable_min)}, et pour un "
        f"simple ordre de grandeur en dessous de {fr_count(ctx.usable_min)}.",
        f"Ce système compte {plural(sum(n.values()), 'flux', 'flux')} entre EPCI "
        f"distincts : {said}.",
    ]
    if fragile:
        items.append(
            "Flux vers la métropole sous le seuil d'utilisation (ordre de grandeur) : "
            + ", ".join(sorted(fragile))
            + "."
        )
    else:
        items.append("Aucun flux vers la métropole n'est sous le seuil d'utilisation.")
    if ctx.synthetic:
        items.append("Les flux de ce run sont synthétiques : aucun chiffre n'est réel.")
    return join([tag("h3", "Fiabilité"), tag("ul", join(tag("li", i) for i in items))])


def _then_now(row: Mapping[str, Any], name: str) -> str:
    # "34,7 % → 32,8 %", or a dash when the share exists in neither vintage.
    before, after = row.get(f"{name}_previous"), row.get(name)
    if finite(before) is None and finite(after) is None:
        return MISSING
    return f"{fr_percent(before)} → {fr_percent(after)}"


def change_section(system: System) -> Html:
    """Return the change since the previous vintage, or say there is none."""
    epci = system.epci
    column = epci.get("previous_vintage")
    previous = pd.Series(dtype="float64") if column is None else column.dropna()
    if previous.empty:
        return join(
            [
                tag("h3", "Évolution entre millésimes"),
                tag(
                    "p",
                    "Pas de millésime précédent dans ce run : l'évolution n'est pas "
                    "calculée.",
                    class_="note",
                ),
            ]
        )
    then, now = int(previous.iloc[0]), int(epci["vintage"].dropna().iloc[0])
    crowns = epci[epci["crown"] > 0]
    before, after = (
        crowns["flow_to_metropole_previous"].sum(),
        crowns["flow_to_metropole"].sum(),
    )
    lead = (
        f"Entre {then} et {now}, les actifs des couronnes travaillant dans la "
        f"métropole passent de {fr_count(before)} à {fr_count(after)} "
        f"({fr_number(after - before, signed=True)})."
    )
    rows = [
        [
            epci_cell(row),
            crown_label(row["crown"]),
            fr_number(row.get("employed_residents_change"), signed=True),
            fr_number(row.get("flow_to_metropole_change"), signed=True),
            _then_now(row, "dependence_share"),
            fr_points(row.get("dependence_share_change")),
            fr_points(row.get("self_containment_share_change")),
        ]
        for row in _ordered(epci)
    ]
    headers = [
        "EPCI",
        "Couronne",
        "Actifs occupés (évolution)",
        "Flux vers la métropole (évolution)",
        f"Dépendance {then} → {now}",
        "Dépendance (évolution)",
        "Autocontention (évolution)",
    ]
    note = "Évolutions en nombre d'actifs, et en points de pourcentage (pt) pour les parts."
    return join(
        [
            tag("h3", f"Évolution entre {then} et {now}"),
            tag("p", lead),
            table(headers, rows, [False, False, *[True] * 5]),
            tag("p", note, class_="note"),
        ]
    )


def _capital(text: str) -> str:
    # "RP" keeps its capitals (str.capitalize lowers the rest).
    return text[:1].upper() + text[1:]


def modes_section(system: System) -> Html:
    """Return the modal split of the flows to the métropole by crown, if known."""
    columns = {
        mode: f"to_metropole_{mode}_share"
        for mode in MODES
        if f"to_metropole_{mode}_share" in system.epci
        # A mode the file's coding lacks (two_wheel after RP 2016) is null or 0.
        and (system.epci[f"to_metropole_{mode}_share"] > 0).any()
    }
    title = tag("h3", "Modes de transport vers la métropole")
    if not columns:
        text = "Non disponibles : le fichier détail MOBPRO n'est pas lu dans ce run."
        return join([title, tag("p", text, class_="note")])
    rows = []
    for crown, part in system.epci[system.epci["crown"] > 0].groupby("crown"):
        weights = part["flow_to_metropole"]
        cells = []
        for column in columns.values():
            known = part[column].notna() & weights.notna()
            total = weights[known].sum()
            share = (
                (part[column][known] * weights[known]).sum() / total if total else None
            )
            cells.append(fr_percent(share))
        rows.append([crown_label(crown), *cells])
    headers = ["Couronne", *(_capital(MODE_LABELS[mode]) for mode in columns)]
    note = "Parts des actifs de chaque couronne allant travailler dans la métropole."
    return join(
        [
            title,
            table(headers, rows, [False, *[True] * len(columns)]),
            tag("p", note, class_="note"),
        ]
    )


def metropole_section(
    system: System, number: int, ctx: Context, extra: Html | None = None
) -> Html:
    """Return the whole section of one métropole, with its anchor.

    ``extra`` goes after the modes, before the charts (the flow systems' part,
    :func:`observatory.report.html_flows.flow_systems_block`).
    """
    where = TERRITORY_NAMES.get(system.territory, system.territory)
    parts = [
        tag(
            "h2",
            join(
                [
                    f"{number}. {system.name}",
                    tag("small", f"SIREN {system.code} · {where}"),
                ],
                " ",
            ),
        )
    ]
    if ctx.synthetic:
        parts.append(
            tag(
                "p",
                "Flux synthétiques : chiffres de démonstration, qui ne décrivent aucun "
                "territoire réel.",
                class_="synthetic-note",
            )
        )
    parts += [
        figure(
            f"maps/{system.code}.png",
            "Carte du système : classes des EPCI et flux domicile-travail",
            ctx,
            f"Carte du système de {system.name}",
        ),
        tag("h3", "Chiffres clés"),
        key_figures(system),
        exchanges(system),
        tag("h3", "Les EPCI et leur classe"),
        class_summary(system, ctx),
        epci_table(system, ctx),
        change_section(system),
        modes_section(system),
        extra or Html(""),
        tag("h3", "Graphiques"),
        *(
            figure(
                key.format(code=system.code), caption, ctx, f"{caption} ({system.name})"
            )
            for key, caption in CHARTS
        ),
        reliability_section(system, ctx),
        tag("p", tag("a", "↑ Retour au sommaire", href="#sommaire"), class_="back"),
    ]
    return tag(
        "section", join(parts), id=system_anchor(system.code), class_="metropole"
    )
