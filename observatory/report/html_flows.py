"""The report's pages on systems drawn by the flows (issue 15), in French.

- :data:`FLOW_TERMS`: the words of "Lire ce rapport" (hidden crown, nominal
  member, dominant flow, attraction area, polycentricity);
- :func:`overview_section`: one table of every métropole, contiguity crowns
  beside the system drawn by the flows and INSEE's attraction area;
- :func:`flow_systems_block`: in a métropole's section, where the rules
  disagree (hidden crown, nominal members, AAV only), where its dominant flows
  lead, and the overlap with its attraction area.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from observatory.layers.codes import CROWN_RULE_LABELS, PLACED_BY_LABELS
from observatory.report.html_format import (
    MISSING,
    Html,
    finite,
    fr_count,
    fr_percent,
    join,
    table,
    tag,
)
from observatory.report.html_sections import (
    System,
    crown_label,
    short_name,
    system_anchor,
)

#: The terms of the flow systems, as "Lire ce rapport" explains them.
FLOW_TERMS = (
    (
        "Couronne cachée",
        "EPCI hors des couronnes de contiguïté dont une part suffisante des actifs "
        "travaille dans la métropole : les flux le rattachent au système.",
    ),
    (
        "Membre nominal",
        "EPCI d'une couronne de contiguïté dont presque aucun actif ne travaille "
        "dans la métropole.",
    ),
    (
        "Flux dominant",
        "le plus grand flux d'actifs d'un EPCI vers un autre ; l'EPCI est dominé "
        "quand ce flux va vers un EPCI plus grand (emplois). En suivant ces flux on "
        "arrive à un pôle terminal (Nystuen et Dacey, 1961).",
    ),
    (
        "Aire d'attraction",
        "zonage de l'INSEE (AAV 2020) : le pôle et les communes dont au moins 15 % "
        "des actifs travaillent dans le pôle ; part d'un EPCI dans l'aire : part de "
        "ses actifs qui y résident.",
    ),
    (
        "Polycentrisme",
        "part des flux entre EPCI du système qui ne touchent pas la métropole.",
    ),
)


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(False, index=frame.index)
    return frame[column].fillna(False).astype(bool)


def _settings(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return manifest.get("flow_systems") or {}


def rule_note(manifest: Mapping[str, Any]) -> str:
    """Return the rule and thresholds of the run, in a sentence."""
    settings = _settings(manifest)
    rule = str(settings.get("crown_rule") or "contiguity")
    hidden = fr_percent(settings.get("hidden_crown_min_share", 0.15), 0)
    nominal = fr_percent(settings.get("nominal_member_max_share", 0.05), 1)
    return (
        f"Système retenu : {CROWN_RULE_LABELS.get(rule, rule).lower()} "
        f"(crown_rule = « {rule} »). Couronne cachée : dépendance d'au moins {hidden} "
        f"hors des couronnes ; membre nominal : dépendance de moins de {nominal} "
        "dans une couronne."
    )


def aav_note(manifest: Mapping[str, Any]) -> str | None:
    """Say where the attraction areas come from; None when the run has none."""
    aav = _settings(manifest).get("aav")
    if not aav:
        return None
    path = str(aav.get("path") or "")
    if "synthetic" in path.lower():
        return (
            "Aires d'attraction SYNTHÉTIQUES (démonstration) : tirées des flux "
            "synthétiques par la règle des 15 % de l'INSEE, elles ne sont pas le "
            "zonage publié par l'INSEE."
        )
    return (
        "Aires d'attraction des villes 2020 (INSEE), pondérées par les actifs occupés."
    )


def _role(me: Mapping[str, Any]) -> str:
    role, terminal = me.get("metropole_node_role"), me.get("metropole_terminal_name")
    tree = me.get("metropole_tree_epci")
    if role == "dominant":
        return f"pôle dominant ({fr_count(tree)} EPCI)"
    if role in ("dominated", "intermediate") and terminal:
        return f"dominée par {short_name(terminal)}"
    return "indépendante" if role == "independent" else "non classée"


def overview_section(systems: Sequence[System], manifest: Mapping[str, Any]) -> Html:
    """Return the table of every métropole: contiguity, flows, AAV side by side."""
    has_aav = bool(_settings(manifest).get("aav"))
    rows = []
    for system in systems:
        me = system.summary
        row = [
            tag("a", system.name, href=f"#{system_anchor(system.code)}"),
            fr_count(me.get("n_epci_contiguity")),
            fr_count(me.get("n_epci_flows")),
            fr_percent(me.get("jaccard_contiguity_flows"), 0),
            fr_count(me.get("n_epci_hidden_crown")),
            fr_count(me.get("n_epci_nominal_member")),
            fr_percent(me.get("polycentricity_share")),
            _role(me),
        ]
        if has_aav:
            row += [
                fr_count(me.get("n_epci_aav")),
                fr_percent(me.get("jaccard_contiguity_aav"), 0),
                fr_percent(me.get("jaccard_flows_aav"), 0),
            ]
        rows.append(row)
    headers = [
        "Métropole",
        "EPCI par contiguïté",
        "EPCI par les flux",
        "Recouvrement",
        "Couronne cachée",
        "Membres nominaux",
        "Polycentrisme",
        "Flux dominants",
    ]
    if has_aav:
        headers += [
            "EPCI dans l'aire",
            "Recouvrement contiguïté / aire",
            "Recouvrement flux / aire",
        ]
    numeric = [False, *[True] * 6, False, *([True] * 3 if has_aav else [])]
    notes = [rule_note(manifest)]
    if note := aav_note(manifest):
        notes.append(note)
    notes.append(
        "Comptes d'EPCI métropole comprise ; recouvrement : indice de Jaccard (EPCI "
        "communs sur EPCI de l'un ou l'autre)."
    )
    return tag(
        "section",
        join(
            [
                tag("h2", "Contiguïté, flux et aires d'attraction"),
                tag(
                    "p",
                    "Les couronnes de contiguïté sont celles que les élus négocient ; "
                    "les flux dessinent un autre système : les EPCI dont une part "
                    "suffisante des actifs travaille dans la métropole, où qu'ils "
                    "soient. Ce tableau les met côte à côte, avec l'aire d'attraction "
                    "de l'INSEE quand le run la lit.",
                ),
                table(headers, rows, numeric, class_="index"),
                *(tag("p", n, class_="note") for n in notes),
            ]
        ),
        id="flux-et-contiguite",
    )


def _place(row: Mapping[str, Any]) -> str:
    placed = PLACED_BY_LABELS.get(str(row.get("placed_by")), MISSING)
    crown = finite(row.get("crown"))
    return placed if crown is None else f"{placed} ({crown_label(crown)})"


def _dominant(row: Mapping[str, Any]) -> str:
    name = row.get("dominant_destination_name")
    if not isinstance(name, str) or not name:
        return MISSING
    return f"{short_name(name)} ({fr_percent(row.get('dominant_share'))})"


def disagreement_rows(system: System) -> list[dict[str, Any]]:
    """Return the EPCI where the rules disagree: hidden crown, nominal, AAV only."""
    frames = [system.epci]
    if system.outside is not None:
        frames.append(system.outside)
    rows = pd.concat(frames, ignore_index=True)
    aav_only = pd.Series(False, index=rows.index)
    if "placed_by" in rows:
        aav_only = (rows["placed_by"] == "aav").fillna(False).astype(bool)
    keep = _flag(rows, "hidden_crown") | _flag(rows, "nominal_member") | aav_only
    picked = rows[keep.to_numpy(dtype=bool)].sort_values(
        ["dependence_share", "epci_name"], ascending=[False, True]
    )
    return [dict(r) for _, r in picked.iterrows()]


def _disagreements(system: System, has_aav: bool) -> Html:
    found = disagreement_rows(system)
    if not found:
        return tag(
            "p",
            "Aucun désaccord : pas de couronne cachée ni de membre nominal.",
            class_="note",
        )
    rows = []
    for row in found:
        cells = [
            tag("b", short_name(row["epci_name"])),
            _place(row),
            fr_percent(row.get("dependence_share")),
            _dominant(row),
        ]
        if has_aav:
            cells.append(fr_percent(row.get("aav_share")))
        rows.append(cells)
    headers = ["EPCI", "Placé par", "Dépendance", "Destination dominante"]
    if has_aav:
        headers.append("Part dans l'aire")
    numeric = [False, False, True, False, *([True] if has_aav else [])]
    return table(headers, rows, numeric, class_="divergences")


def _dominant_text(system: System) -> str:
    """Say where the dominant flows of the crowns lead."""
    crowns = system.epci[system.epci["crown"] > 0]
    tree = _flag(crowns, "in_metropole_tree")
    elsewhere = crowns[~tree.to_numpy(dtype=bool)]
    text = (
        f"Flux dominants (la métropole : {_role(system.summary)}) : "
        f"{int(tree.sum())} EPCI des couronnes sur {len(crowns)} aboutissent à la "
        "métropole en suivant leurs flux dominants"
    )
    if len(elsewhere):
        named = sorted(
            {short_name(n) for n in elsewhere["terminal_name"].dropna().astype(str)}
        )
        text += f" ; les autres vers {', '.join(named[:6])}"
        text += "…" if len(named) > 6 else ""
    return text + "."


def flow_systems_block(system: System, manifest: Mapping[str, Any]) -> Html:
    """Return a métropole's part on the flow system, dominant flows and its AAV."""
    me = system.summary
    has_aav = bool(_settings(manifest).get("aav"))
    cards = [
        ("EPCI du système (règle retenue)", fr_count(me.get("n_epci_in_system"))),
        (
            "Recouvrement contiguïté / flux",
            fr_percent(me.get("jaccard_contiguity_flows"), 0),
        ),
        ("Polycentrisme", fr_percent(me.get("polycentricity_share"))),
        (
            "Autocontention du système",
            fr_percent(me.get("system_self_containment_share")),
        ),
    ]
    parts: list[object] = [
        tag("h3", "Contiguïté, flux dominants et aire d'attraction"),
        tag("p", rule_note(manifest), class_="note"),
        tag(
            "div",
            join(
                tag("div", join([tag("b", v), tag("span", k)]), class_="card")
                for k, v in cards
            ),
            class_="cards",
        ),
        tag("h4", "Où contiguïté et flux divergent"),
        _disagreements(system, has_aav),
        tag("p", _dominant_text(system)),
    ]
    if has_aav:
        name = me.get("aav_name") or MISSING
        parts.append(
            tag(
                "p",
                f"Aire d'attraction de la métropole : {name} ({me.get('aav_code') or MISSING}). "
                f"{fr_count(me.get('n_epci_aav'))} EPCI y ont au moins la moitié de "
                f"leurs actifs ; recouvrement avec la contiguïté "
                f"{fr_percent(me.get('jaccard_contiguity_aav'), 0)}, avec les flux "
                f"{fr_percent(me.get('jaccard_flows_aav'), 0)} ; les EPCI placés par "
                f"contiguïté logent {fr_percent(me.get('aav_weight_in_contiguity_share'), 0)} "
                "des actifs de l'aire, ceux placés par les flux "
                f"{fr_percent(me.get('aav_weight_in_flows_share'), 0)}.",
            )
        )
        if note := aav_note(manifest):
            parts.append(tag("p", note, class_="note"))
    return join(parts)
