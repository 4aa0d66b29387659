"""French labels of the coded columns of the layers (QGIS value maps, legends).

A coded column holds the same codes in every layer it appears in (``crown``,
``reliability``, ``epci_class``...); :func:`value_maps` gives their labels by
column name, for the styles (:mod:`observatory.layers.styles`) and the data
dictionary.
"""

from __future__ import annotations

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.systems.classify import METROPOLE_CLASS, NO_DATA_CLASS
from observatory.systems.flows import ORDER_OF_MAGNITUDE, RELIABLE, USABLE

#: French labels of the legal natures of EPCI (``epci_nature``).
NATURE_LABELS = {
    "ME": "Métropole",
    "METLYON": "Métropole de Lyon",
    "CU": "Communauté urbaine",
    "CA": "Communauté d'agglomération",
    "CC": "Communauté de communes",
}


#: French labels of the flow types (``flow_type``).
FLOW_TYPE_LABELS = {
    "to_metropole": "Vers la métropole",
    "from_metropole": "Depuis la métropole",
    "between_crowns": "Entre EPCI des couronnes",
}


#: Crowns given a label in the value maps (0 the métropole, then 1re, 2e...).
MAX_LABELLED_CROWN = 5


#: QGIS's key for NULL in a value map (``QgsValueMapFieldFormatter::NULL_VALUE``).
NULL_VALUE = "{2839923C-8B7D-419E-B84B-CA2FE9B80EC7}"


#: What an empty ``crown`` means: an EPCI placed beyond the contiguity crowns.
OUTSIDE_CROWNS_LABEL = "Hors des couronnes de contiguïté"


#: French labels of the rules that placed an EPCI in a system (``placed_by``).
PLACED_BY_LABELS = {
    "metropole": "La métropole",
    "both": "Contiguïté et flux",
    "contiguity": "Contiguïté seule",
    "flows": "Flux seuls (couronne cachée)",
    "aav": "Aire d'attraction seule",
}


#: French labels of the roles in the dominant flows (``node_role``).
NODE_ROLE_LABELS = {
    "dominant": "Pôle dominant",
    "intermediate": "Relais (dominé, et dominant d'autres EPCI)",
    "dominated": "Dominé",
    "independent": "Indépendant",
}


#: French labels of ``[territories] crown_rule``.
CROWN_RULE_LABELS = {
    "contiguity": "Couronnes de contiguïté",
    "flows": "Dépendance (flux)",
    "both": "Contiguïté et flux",
}


def count_fr(value: float) -> str:
    """Format a count the French way: ``1 000`` (no-break space), no decimals."""
    return f"{value:,.0f}".replace(",", "\u00a0")


def class_labels(classification: ClassificationSection) -> dict[str, str]:
    """Return the label of every ``epci_class`` code: métropole, the rules', no data."""
    labels = {METROPOLE_CLASS: "Métropole"}
    labels.update({rule.class_code: rule.label for rule in classification.rules})
    labels[NO_DATA_CLASS] = "Sans données"
    return labels


def reliability_labels(reliability: ReliabilitySection) -> dict[str, str]:
    """Return the French label of each INSEE reliability code, with its thresholds."""
    usable, reliable = (
        count_fr(reliability.usable_min),
        count_fr(reliability.reliable_min),
    )
    return {
        RELIABLE: f"Fiable (≥ {reliable})",
        USABLE: f"À utiliser avec précaution ({usable} à {reliable})",
        ORDER_OF_MAGNITUDE: f"Ordre de grandeur seulement (< {usable})",
    }


def value_maps(
    classification: ClassificationSection,
    reliability: ReliabilitySection | None = None,
) -> dict[str, dict[str, str]]:
    """Return the French label of each code of the coded columns, by column name.

    A column holds the same codes in every layer it appears in. Crowns are keyed
    by their decimal text (``"1"``), as QGIS compares value maps.
    """
    crowns = {"0": "Métropole"} | {
        str(k): f"{k}{'re' if k == 1 else 'e'} couronne"
        for k in range(1, MAX_LABELLED_CROWN + 1)
    }
    crowns[NULL_VALUE] = OUTSIDE_CROWNS_LABEL
    reliable = reliability_labels(reliability or ReliabilitySection())
    return {
        "epci_nature": NATURE_LABELS,
        "crown": crowns,
        "origin_crown": crowns,
        "destination_crown": crowns,
        "flow_type": FLOW_TYPE_LABELS,
        "reliability": reliable,
        "flow_to_metropole_reliability": reliable,
        "flow_from_metropole_reliability": reliable,
        "epci_class": class_labels(classification),
        "placed_by": PLACED_BY_LABELS,
        "node_role": NODE_ROLE_LABELS,
        "metropole_node_role": NODE_ROLE_LABELS,
        "crown_rule": CROWN_RULE_LABELS,
        "dominant_weight": {"jobs": "Emplois", "inflow": "Actifs entrants"},
    }
