"""Columns of each output layer: name, type, description and French alias.

This is the single source of the data dictionary: the GeoParquet writer casts
every layer to these types (stable across runs), stores the descriptions as field
metadata, writes QGIS field aliases from the French labels; the dictionary itself
is rendered here as CSV (in each run) and as ``docs/data-dictionary.md`` (a test
keeps it in sync).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

import pyarrow as pa

from observatory.config import ClassificationSection
from observatory.layers.codes import NULL_VALUE, value_maps
from observatory.layers.fields import Field
from observatory.layers.flow_schemas import (
    DOMINANT_FLOWS,
    DOMINANT_FLOWS_GEOMETRY,
    EPCI_FLOW_FIELDS,
    FLOW_PAIR_FIELDS,
    METROPOLE_FLOW_FIELDS,
)
from observatory.layers.land_schemas import EPCI_LAND_FIELDS, METROPOLE_LAND_FIELDS
from observatory.systems.classify import NO_DATA_CLASS

__all__ = ["Field", "data_dictionary_csv", "data_dictionary_markdown", "layer_fields"]


_S, _F, _I = pa.string(), pa.float64(), pa.int32()


_METROPOLE_KEY = [
    Field(
        "metropole_code",
        _S,
        "SIREN of the métropole (or other pole, [territories] poles) of the system",
        "SIREN de la métropole (ou du pôle)",
    ),
    Field("metropole_name", _S, "Name of the métropole", "Métropole"),
]


EPCI_INDICATORS = [
    *_METROPOLE_KEY,
    Field("epci_code", _S, "SIREN of the EPCI", "SIREN de l'EPCI"),
    Field("epci_name", _S, "Name of the EPCI", "EPCI"),
    Field(
        "epci_nature", _S, "Legal nature (ME, METLYON, CU, CA, CC)", "Nature juridique"
    ),
    Field(
        "crown",
        _I,
        "0 the métropole, 1 shares a border with it, 2 with crown 1; empty (null) "
        "for an EPCI placed beyond the contiguity crowns (placed_by flows or aav)",
        "Couronne",
    ),
    Field(
        "n_communes",
        _I,
        "Number of member communes with a polygon",
        "Nombre de communes",
    ),
    Field(
        "employed_residents",
        _F,
        "Employed residents aged 15+ of the EPCI, wherever they work (weighted count)",
        "Actifs occupés résidents",
    ),
    Field(
        "jobs",
        _F,
        "Jobs located in the EPCI held by commuters of the flows file",
        "Emplois au lieu de travail",
    ),
    Field(
        "internal_flow",
        _F,
        "Residents working in the EPCI itself",
        "Actifs résidant et travaillant dans l'EPCI",
    ),
    Field(
        "flow_abroad", _F, "Residents working abroad", "Actifs travaillant à l'étranger"
    ),
    Field(
        "flow_to_metropole",
        _F,
        "Residents working in the métropole, F(e->M)",
        "Flux vers la métropole",
    ),
    Field(
        "flow_from_metropole",
        _F,
        "Residents of the métropole working in the EPCI, F(M->e)",
        "Flux depuis la métropole",
    ),
    Field(
        "dependence_share",
        _F,
        "flow_to_metropole / employed_residents",
        "Part des actifs travaillant dans la métropole (dépendance)",
    ),
    Field(
        "attraction_share",
        _F,
        "flow_from_metropole / jobs",
        "Part des emplois occupés par des résidents de la métropole (attraction)",
    ),
    Field(
        "reciprocity",
        _F,
        "min(F(e->M), F(M->e)) / max(...): 0 one-way, 1 balanced",
        "Réciprocité des échanges",
    ),
    Field(
        "self_containment_share",
        _F,
        "internal_flow / employed_residents",
        "Part des actifs travaillant dans leur EPCI (autocontention)",
    ),
    Field(
        "main_other_destination_code",
        _S,
        "SIREN of the EPCI other than itself and the métropole receiving most residents",
        "SIREN de la principale autre destination",
    ),
    Field(
        "main_other_destination_name",
        _S,
        "Name of that EPCI",
        "Principale autre destination",
    ),
    Field(
        "main_other_destination_flow",
        _F,
        "Residents working there",
        "Flux vers la principale autre destination",
    ),
    Field(
        "main_other_destination_share",
        _F,
        "main_other_destination_flow / employed_residents",
        "Part vers la principale autre destination",
    ),
    Field(
        "flow_to_metropole_reliability",
        _S,
        "INSEE reliability of flow_to_metropole: reliable >= 500, usable >= 200, order_of_magnitude below",
        "Fiabilité du flux vers la métropole",
    ),
    Field(
        "flow_from_metropole_reliability",
        _S,
        "INSEE reliability of flow_from_metropole",
        "Fiabilité du flux depuis la métropole",
    ),
    Field(
        "epci_class",
        _S,
        "Class code (first matching rule of the classification)",
        "Classe (code)",
    ),
    Field("epci_class_label", _S, "Class label", "Classe"),
    Field("class_rule", _S, "The rule that gave the class", "Règle appliquée"),
]


_VINTAGES = [
    Field(
        "vintage",
        _I,
        "Census vintage of the flows (RP year)",
        "Millésime du recensement",
    ),
    Field(
        "previous_vintage",
        _I,
        "Earlier census vintage compared with, if any (harmonised to the same geography)",
        "Millésime de comparaison",
    ),
]


_CHANGE_LABELS = {
    "employed_residents": "actifs occupés résidents",
    "jobs": "emplois",
    "flow_to_metropole": "flux vers la métropole",
    "flow_from_metropole": "flux depuis la métropole",
    "dependence_share": "dépendance",
    "attraction_share": "attraction",
    "self_containment_share": "autocontention",
}


_CHANGES = [
    field
    for name, label in _CHANGE_LABELS.items()
    for field in (
        Field(
            f"{name}_previous",
            _F,
            f"{name} in the earlier vintage",
            f"{label.capitalize()} (millésime précédent)",
        ),
        Field(
            f"{name}_change",
            _F,
            f"{name} now minus then (shares: difference of shares)",
            f"Évolution : {label}",
        ),
    )
]


EPCI_INDICATORS += [*_VINTAGES, *_CHANGES]


#: French labels of the harmonised transport modes (observatory.systems.modes.MODES).
MODE_LABELS = {
    "none": "sans transport (travail à domicile)",
    "walk": "marche à pied",
    "bicycle": "vélo",
    "two_wheel_motorised": "deux-roues motorisé",
    "two_wheel": "deux-roues (RP 2016 et avant, vélos compris)",
    "car": "voiture, camion, fourgonnette",
    "public_transport": "transports en commun",
}


_MODES_TO_FROM = [
    Field(
        f"{side}_metropole_{mode}_share",
        _F,
        f"Share of {mode} in the flow {side} the métropole "
        "(detailed FD_MOBPRO file; null without it)",
        f"Part {label} (flux {'vers' if side == 'to' else 'depuis'} la métropole)",
    )
    for side in ("to", "from")
    for mode, label in MODE_LABELS.items()
]


EPCI_INDICATORS += _MODES_TO_FROM


#: Issue 15: which rule placed the EPCI, its dominant flow, the AAV shares.
EPCI_INDICATORS += EPCI_FLOW_FIELDS


#: Issue 14: land cover, built-up surface and population grid (null without them).
EPCI_INDICATORS += EPCI_LAND_FIELDS


_FLOW_MODES = [
    *(
        Field(
            f"{mode}_share",
            _F,
            f"Share of {mode} among the workers of the pair (FD_MOBPRO; null without it)",
            f"Part {label}",
        )
        for mode, label in MODE_LABELS.items()
    ),
    Field(
        "distance_km",
        _F,
        "Mean commuting distance of the pair's workers who travel, STRAIGHT LINE between "
        "representative points of the residence and work communes (population-weighted "
        "centres with [inputs] commune_points = population_weighted) (FD_MOBPRO)",
        "Distance moyenne à vol d'oiseau (km)",
    ),
    Field(
        "person_km",
        _F,
        "Workers x straight-line distance, all modes",
        "Voyageurs-km (vol d'oiseau)",
    ),
    *(
        Field(
            f"{mode}_person_km",
            _F,
            f"Person-km by {mode} (straight line)",
            f"Voyageurs-km, {label}",
        )
        for mode, label in MODE_LABELS.items()
        if mode != "none"
    ),
]


FLOWS = [
    *_METROPOLE_KEY,
    Field(
        "origin_code",
        _S,
        "SIREN of the EPCI of residence",
        "SIREN de l'EPCI de résidence",
    ),
    Field("origin_name", _S, "EPCI of residence", "EPCI de résidence"),
    Field(
        "origin_crown",
        _I,
        "Crown of the EPCI of residence in this system",
        "Couronne de l'origine",
    ),
    Field(
        "destination_code",
        _S,
        "SIREN of the EPCI of work",
        "SIREN de l'EPCI de travail",
    ),
    Field("destination_name", _S, "EPCI of work", "EPCI de travail"),
    Field(
        "destination_crown",
        _I,
        "Crown of the EPCI of work in this system",
        "Couronne de la destination",
    ),
    Field(
        "flow_type",
        _S,
        "to_metropole, from_metropole or between_crowns",
        "Type de flux",
    ),
    Field(
        "workers",
        _F,
        "Employed people aged 15+ commuting from origin to destination (weighted count)",
        "Actifs occupés (navetteurs)",
    ),
    Field(
        "reliability",
        _S,
        "INSEE reliability: reliable >= 500, usable >= 200, order_of_magnitude below",
        "Fiabilité",
    ),
    *_VINTAGES,
    Field(
        "workers_previous",
        _F,
        "Workers of the pair in the earlier vintage (0: a new pair)",
        "Actifs occupés (millésime précédent)",
    ),
    Field(
        "workers_change", _F, "workers now minus then", "Évolution des actifs occupés"
    ),
    *_FLOW_MODES,
    *FLOW_PAIR_FIELDS,
]


FLOW_MATRIX = [
    Field(
        "metropole_code",
        _S,
        "SIREN of the métropole (or other pole, [territories] poles) of the system",
        "SIREN de la métropole (ou du pôle)",
    ),
    Field(
        "origin_code",
        _S,
        "SIREN of the EPCI of residence, or REST_OF_FRANCE, UNMATCHED",
        "Origine (code)",
    ),
    Field("origin_name", _S, "Name of the place of residence", "Origine"),
    Field(
        "destination_code",
        _S,
        "SIREN of the EPCI of work, REST_OF_FRANCE, UNMATCHED, or ABROAD-<INSEE country code> (e.g. ABROAD-99140 Suisse)",
        "Destination (code)",
    ),
    Field("destination_name", _S, "Name of the place of work", "Destination"),
    Field("workers", _F, "Employed people aged 15+ (weighted count)", "Actifs occupés"),
]


_METROPOLES_FIXED = [
    *_METROPOLE_KEY,
    Field(
        "n_epci_crown1",
        _I,
        "Number of EPCI in the first crown",
        "Nombre d'EPCI en 1re couronne",
    ),
    Field(
        "n_epci_crown2",
        _I,
        "Number of EPCI in the second crown",
        "Nombre d'EPCI en 2e couronne",
    ),
    Field(
        "employed_residents",
        _F,
        "Employed residents of the métropole",
        "Actifs occupés résidents de la métropole",
    ),
    Field("jobs", _F, "Jobs located in the métropole", "Emplois dans la métropole"),
    Field(
        "self_containment_share",
        _F,
        "Share of the métropole's employed residents working in it",
        "Autocontention de la métropole",
    ),
    Field(
        "employed_residents_crown1",
        _F,
        "Employed residents of the first crown",
        "Actifs occupés de la 1re couronne",
    ),
    Field(
        "employed_residents_crown2",
        _F,
        "Employed residents of the second crown",
        "Actifs occupés de la 2e couronne",
    ),
    Field(
        "flow_crown1_to_metropole",
        _F,
        "Residents of crown 1 working in the métropole",
        "Flux 1re couronne vers métropole",
    ),
    Field(
        "flow_crown2_to_metropole",
        _F,
        "Residents of crown 2 working in the métropole",
        "Flux 2e couronne vers métropole",
    ),
    Field(
        "flow_metropole_to_crown1",
        _F,
        "Residents of the métropole working in crown 1",
        "Flux métropole vers 1re couronne",
    ),
    Field(
        "flow_metropole_to_crown2",
        _F,
        "Residents of the métropole working in crown 2",
        "Flux métropole vers 2e couronne",
    ),
    Field(
        "dependence_share_crown1",
        _F,
        "Share of crown 1's employed residents working in the métropole",
        "Dépendance de la 1re couronne",
    ),
    Field(
        "dependence_share_crown2",
        _F,
        "Share of crown 2's employed residents working in the métropole",
        "Dépendance de la 2e couronne",
    ),
    Field("n_flows", _I, "Flow lines of the system (flows layer)", "Nombre de flux"),
    Field(
        "n_flows_order_of_magnitude",
        _I,
        "Of which under the usable threshold (order of magnitude only)",
        "Dont flux fragiles (< 200)",
    ),
]


def metropoles_fields(classification: ClassificationSection) -> list[Field]:
    """Return the fields of the métropoles layer, one class count per class."""
    counts = [
        Field(
            f"n_class_{rule.class_code}",
            _I,
            f"Surrounding EPCI classed {rule.class_code}",
            f"Nombre d'EPCI « {rule.label} »",
        )
        for rule in classification.rules
    ]
    counts.append(
        Field(
            f"n_class_{NO_DATA_CLASS}",
            _I,
            "Surrounding EPCI without flow data",
            "Nombre d'EPCI sans données",
        )
    )
    return [*_METROPOLES_FIXED, *counts, *METROPOLE_FLOW_FIELDS, *METROPOLE_LAND_FIELDS]


def layer_fields(classification: ClassificationSection) -> dict[str, list[Field]]:
    """Return the fields of every output layer, keyed by file stem."""
    return {
        "epci_indicators": EPCI_INDICATORS,
        "flows": FLOWS,
        "metropoles": metropoles_fields(classification),
        "dominant_flows": DOMINANT_FLOWS,
        "flow_matrix": FLOW_MATRIX,
    }


def _coded_values_markdown(classification: ClassificationSection) -> list[str]:
    lines = [
        "## Coded values",
        "",
        "QGIS shows these labels in place of the codes (value maps of the styles); "
        "reliability thresholds are the defaults of `[reliability]`.",
        "",
        "| column | code | label (fr) |",
        "|---|---|---|",
    ]
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    for column, labels in value_maps(classification).items():
        key = tuple(labels.items())
        if key in seen:
            lines.append(f"| `{column}` | | as `{seen[key]}` |")
            continue
        seen[key] = column
        lines += [
            f"| `{column}` | {'NULL' if code == NULL_VALUE else f'`{code}`'} | {label} |"
            for code, label in key
        ]
    return [*lines, ""]


def data_dictionary_markdown(classification: ClassificationSection) -> str:
    """Render the data dictionary of every layer as Markdown."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from `observatory/layers/schemas.py` (`python -m observatory.layers.schemas`); "
        "a test keeps this page in sync. Every GeoParquet layer also has a `geometry` "
        "column (WKB, EPSG:2154; an overseas department's layers, "
        "`<layer>_<territory>.parquet`, in its own CRS) and a `bbox` covering "
        "column; `flow_matrix` has "
        "no geometry. Counts are INSEE weighted estimates (decimals).",
        "",
    ]
    geometry = {
        "epci_indicators": "MultiPolygon of the EPCI",
        "flows": 'LineString from the representative point of the origin EPCI to the destination\'s (their population-weighted centres with `[inputs] commune_points = "population_weighted"`); one row per pair of distinct EPCI (flows within an EPCI are `internal_flow` in `epci_indicators`)',
        "metropoles": "MultiPolygon of the métropole",
        "dominant_flows": DOMINANT_FLOWS_GEOMETRY,
        "flow_matrix": "none (plain Parquet table)",
    }
    for layer, fields in layer_fields(classification).items():
        lines += [f"## `{layer}.parquet`", "", f"Geometry: {geometry[layer]}.", ""]
        lines += [
            "| column | type | description | QGIS alias (fr) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{f.name}` | {f.type} | {f.description} | {f.alias_fr} |"
            for f in fields
        ]
        lines.append("")
    lines += _coded_values_markdown(classification)
    return "\n".join(lines)


def data_dictionary_csv(layers: Mapping[str, list[Field]]) -> str:
    """Return the data dictionary of the layers as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["layer", "column", "type", "description", "alias_fr"])
    for layer, fields in layers.items():
        for f in fields:
            writer.writerow([layer, f.name, str(f.type), f.description, f.alias_fr])
    return out.getvalue()


if __name__ == "__main__":  # pragma: no cover
    import sys

    from observatory.config import configs_dir, load_classification

    rules = load_classification(configs_dir() / "classification.toml")
    sys.stdout.write(data_dictionary_markdown(rules) + "\n")
