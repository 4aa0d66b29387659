"""Columns of the systems drawn by the flows (issue 15), added to the layers.

Declared here and gathered by :mod:`observatory.layers.schemas` (the single source
of the data dictionary): the placement, dominant flow and AAV columns of
``epci_indicators``, the pair measures of ``flows``, the system measures and
overlaps of ``metropoles``, and the ``dominant_flows`` layer. Their formulas are
in ``docs/indicators.md``.
"""

from __future__ import annotations

import pyarrow as pa

from observatory.layers.fields import Field

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int32(), pa.bool_()


_PLACEMENT = [
    Field(
        "placed_by",
        _S,
        "Which rule placed the EPCI in the métropole's system: metropole (itself), "
        "both (contiguity crowns and flows), contiguity (crowns only), flows (hidden "
        "crown: beyond the contiguity crowns, crown is then empty), aav (in the "
        "métropole's attraction area only, crown empty)",
        "Placé par",
    ),
    Field(
        "in_system",
        _B,
        "Member of the system under [territories] crown_rule (contiguity, flows or both)",
        "Membre du système (règle retenue)",
    ),
    Field(
        "hidden_crown",
        _B,
        "Beyond the contiguity crowns, yet dependence_share >= [territories] "
        "hidden_crown_min_share (placed by the flows only)",
        "Couronne cachée (placé par les flux seuls)",
    ),
    Field(
        "nominal_member",
        _B,
        "In a contiguity crown, yet dependence_share < [territories] "
        "nominal_member_max_share",
        "Membre nominal (couronne sans dépendance)",
    ),
]


_DOMINANT = [
    Field(
        "dominant_destination_code",
        _S,
        "SIREN of the EPCI receiving the largest flow of the EPCI's residents "
        "(other than itself; whole territory, not only the system)",
        "SIREN de la destination dominante",
    ),
    Field(
        "dominant_destination_name",
        _S,
        "Name of that EPCI",
        "Destination dominante",
    ),
    Field(
        "dominant_flow",
        _F,
        "Residents working in the dominant destination",
        "Flux dominant",
    ),
    Field(
        "dominant_share",
        _F,
        "dominant_flow / employed_residents",
        "Part du flux dominant",
    ),
    Field(
        "dominated",
        _B,
        "The dominant destination is larger ([territories] dominant_weight: jobs or "
        "inflow): Nystuen & Dacey's dominated unit",
        "Dominé (destination plus grande)",
    ),
    Field(
        "terminal_code",
        _S,
        "SIREN of the terminal pole reached by following dominant flows (itself when "
        "not dominated)",
        "SIREN du pôle terminal",
    ),
    Field("terminal_name", _S, "Name of the terminal pole", "Pôle terminal"),
    Field(
        "dominant_level",
        _I,
        "Dominant flows between the EPCI and its terminal pole (0: a pole itself)",
        "Niveau dans l'arbre des flux dominants",
    ),
    Field(
        "node_role",
        _S,
        "dominant (a terminal pole receiving dominant flows), intermediate, "
        "dominated, independent",
        "Rôle dans les flux dominants",
    ),
    Field(
        "in_metropole_tree",
        _B,
        "The terminal pole is this row's métropole",
        "Dans l'arbre de la métropole",
    ),
]


_AAV = [
    Field(
        "aav_code",
        _S,
        "INSEE code of the métropole's attraction area (AAV 2020; null without "
        "[inputs] aav)",
        "Code de l'aire d'attraction de la métropole",
    ),
    Field(
        "aav_pole_share",
        _F,
        "Share of the EPCI's employed residents living in the pole of the métropole's AAV",
        "Part dans le pôle de l'aire d'attraction",
    ),
    Field(
        "aav_crown_share",
        _F,
        "Share living in the crown of the métropole's AAV",
        "Part dans la couronne de l'aire d'attraction",
    ),
    Field(
        "aav_share",
        _F,
        "aav_pole_share + aav_crown_share",
        "Part dans l'aire d'attraction de la métropole",
    ),
    Field(
        "aav_matched_share",
        _F,
        "Share of the EPCI's employed residents in communes the AAV file lists "
        "(below 1: codes not found)",
        "Part des communes trouvées dans le fichier des aires",
    ),
    Field(
        "in_aav",
        _B,
        "aav_share >= [territories] aav_member_min_share",
        "Dans l'aire d'attraction",
    ),
]


#: Columns added to ``epci_indicators``.
EPCI_FLOW_FIELDS = [*_PLACEMENT, *_DOMINANT, *_AAV]


#: Columns added to ``flows`` (pair measures, after R's cartograflow).
FLOW_PAIR_FIELDS = [
    Field(
        "reverse_workers",
        _F,
        "Workers of the reverse pair, F(destination -> origin)",
        "Flux inverse",
    ),
    Field("gross_flow", _F, "workers + reverse_workers", "Flux brut (volume)"),
    Field("net_flow", _F, "workers - reverse_workers", "Flux net (solde)"),
    Field(
        "asymmetry",
        _F,
        "net_flow / gross_flow, in [-1, 1]",
        "Asymétrie",
    ),
    Field(
        "interaction_intensity",
        _F,
        "workers / sqrt(employed residents of the origin x jobs of the destination), "
        "in [0, 1]",
        "Intensité d'interaction",
    ),
]


_SYSTEM = [
    Field(
        "crown_rule",
        _S,
        "[territories] crown_rule of the run: contiguity, flows or both",
        "Règle de construction du système",
    ),
    Field(
        "n_epci_in_system",
        _I,
        "EPCI of the system under crown_rule, the métropole included",
        "Nombre d'EPCI du système",
    ),
    Field(
        "n_epci_hidden_crown",
        _I,
        "EPCI of the hidden crown (placed_by = flows)",
        "Nombre d'EPCI en couronne cachée",
    ),
    Field(
        "n_epci_nominal_member",
        _I,
        "Nominal members of the contiguity crowns",
        "Nombre de membres nominaux",
    ),
    Field(
        "n_epci_contiguity",
        _I,
        "EPCI placed by contiguity, the métropole included",
        "EPCI placés par contiguïté",
    ),
    Field(
        "n_epci_flows",
        _I,
        "EPCI placed by the flows, the métropole included",
        "EPCI placés par les flux",
    ),
    Field(
        "n_epci_contiguity_and_flows",
        _I,
        "EPCI placed by both rules",
        "EPCI placés par les deux règles",
    ),
    Field(
        "jaccard_contiguity_flows",
        _F,
        "n_epci_contiguity_and_flows / EPCI placed by either rule",
        "Recouvrement contiguïté / flux (Jaccard)",
    ),
    Field(
        "system_employed_residents",
        _F,
        "Employed residents of the system's EPCI (crown_rule)",
        "Actifs occupés résidents du système",
    ),
    Field("system_jobs", _F, "Jobs in the system's EPCI", "Emplois du système"),
    Field(
        "system_internal_workers",
        _F,
        "Residents of the system working in it",
        "Actifs résidant et travaillant dans le système",
    ),
    Field(
        "between_epci_flow",
        _F,
        "Flows between two different EPCI of the system",
        "Flux entre EPCI du système",
    ),
    Field(
        "between_crown_flow",
        _F,
        "Of which between two EPCI other than the métropole",
        "Flux entre EPCI hors métropole",
    ),
    Field(
        "polycentricity_share",
        _F,
        "between_crown_flow / between_epci_flow",
        "Polycentrisme (part des flux hors métropole)",
    ),
    Field(
        "system_self_containment_share",
        _F,
        "system_internal_workers / system_employed_residents",
        "Autocontention du système",
    ),
    Field(
        "system_job_containment_share",
        _F,
        "system_internal_workers / system_jobs",
        "Part des emplois du système tenus par ses résidents",
    ),
    Field(
        "metropole_node_role",
        _S,
        "node_role of the métropole in the dominant flows",
        "Rôle de la métropole dans les flux dominants",
    ),
    Field(
        "metropole_terminal_code",
        _S,
        "Terminal pole of the métropole (itself unless it is dominated)",
        "SIREN du pôle terminal de la métropole",
    ),
    Field(
        "metropole_terminal_name",
        _S,
        "Name of that pole",
        "Pôle terminal de la métropole",
    ),
    Field(
        "metropole_tree_epci",
        _I,
        "EPCI of the territory whose terminal pole is the métropole, itself included",
        "EPCI dans l'arbre de la métropole",
    ),
]


_METROPOLE_AAV = [
    Field(
        "aav_code",
        _S,
        "INSEE code of the métropole's attraction area (AAV 2020), whose poles hold "
        "most of its employed residents (null without [inputs] aav)",
        "Code de l'aire d'attraction",
    ),
    Field("aav_name", _S, "Name of that area", "Aire d'attraction"),
    Field(
        "metropole_in_aav_share",
        _F,
        "Share of the métropole's employed residents living in that area",
        "Part de la métropole dans son aire",
    ),
    Field(
        "n_epci_aav",
        _I,
        "EPCI with in_aav (aav_share >= aav_member_min_share)",
        "EPCI dans l'aire d'attraction",
    ),
    Field(
        "n_epci_contiguity_and_aav",
        _I,
        "EPCI placed by contiguity and in the AAV",
        "EPCI de contiguïté dans l'aire",
    ),
    Field(
        "n_epci_flows_and_aav",
        _I,
        "EPCI placed by the flows and in the AAV",
        "EPCI des flux dans l'aire",
    ),
    Field(
        "n_epci_all_three",
        _I,
        "EPCI placed by both rules and in the AAV",
        "EPCI placés par les trois",
    ),
    Field(
        "jaccard_contiguity_aav",
        _F,
        "Jaccard index of the contiguity system and the AAV's EPCI",
        "Recouvrement contiguïté / aire (Jaccard)",
    ),
    Field(
        "jaccard_flows_aav",
        _F,
        "Jaccard index of the flow system and the AAV's EPCI",
        "Recouvrement flux / aire (Jaccard)",
    ),
    Field(
        "aav_weight_in_contiguity_share",
        _F,
        "Share of the AAV's employed residents living in EPCI placed by contiguity",
        "Part de l'aire couverte par la contiguïté",
    ),
    Field(
        "aav_weight_in_flows_share",
        _F,
        "Share of the AAV's employed residents living in EPCI placed by the flows",
        "Part de l'aire couverte par les flux",
    ),
]


#: Columns added to ``metropoles``.
METROPOLE_FLOW_FIELDS = [*_SYSTEM, *_METROPOLE_AAV]


#: The ``dominant_flows`` layer: one line per dominated EPCI (Nystuen & Dacey).
DOMINANT_FLOWS = [
    Field(
        "origin_code",
        _S,
        "SIREN of the dominated EPCI (residence)",
        "SIREN de l'EPCI dominé",
    ),
    Field("origin_name", _S, "Dominated EPCI", "EPCI dominé"),
    Field(
        "destination_code",
        _S,
        "SIREN of its dominant destination (work)",
        "SIREN de la destination dominante",
    ),
    Field("destination_name", _S, "Dominant destination", "Destination dominante"),
    Field(
        "workers",
        _F,
        "Residents of the origin working in the destination: its largest flow",
        "Actifs occupés (flux dominant)",
    ),
    Field(
        "dominant_share",
        _F,
        "workers / employed residents of the origin",
        "Part des actifs de l'origine",
    ),
    Field(
        "origin_weight",
        _F,
        "Size of the origin by dominant_weight",
        "Poids de l'origine",
    ),
    Field(
        "destination_weight",
        _F,
        "Size of the destination by dominant_weight (larger: the origin is dominated)",
        "Poids de la destination",
    ),
    Field(
        "origin_level",
        _I,
        "Dominant flows from the origin to its terminal pole (1: it flows to the pole)",
        "Niveau de l'origine",
    ),
    Field(
        "terminal_code",
        _S,
        "SIREN of the terminal pole of the tree",
        "SIREN du pôle terminal",
    ),
    Field("terminal_name", _S, "Terminal pole", "Pôle terminal"),
    Field(
        "reliability",
        _S,
        "INSEE reliability of workers: reliable >= 500, usable >= 200, "
        "order_of_magnitude below",
        "Fiabilité",
    ),
    Field(
        "dominant_weight",
        _S,
        "[territories] dominant_weight: jobs, or inflow (jobs held by workers from elsewhere)",
        "Poids retenu pour la dominance",
    ),
    Field(
        "vintage",
        _I,
        "Census vintage of the flows (RP year)",
        "Millésime du recensement",
    ),
]


#: What the data dictionary says of the ``dominant_flows`` geometry.
DOMINANT_FLOWS_GEOMETRY = (
    "LineString from the representative point of the dominated EPCI to its dominant "
    "destination's (their population-weighted centres with [inputs] commune_points "
    '= "population_weighted"), between EPCI of one territory (all its EPCI, not '
    "only those of a system)"
)
