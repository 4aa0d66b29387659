"""Columns of the land complementarity (issue 14), added to the layers.

Declared here and gathered by :mod:`observatory.layers.schemas` (the single source
of the data dictionary): the land-cover shares, farmland and built-up surface of
every ``epci_indicators`` row (its EPCI's, summed over its communes), and the
same summed per crown on ``metropoles``, with the crowns' farmland per
inhabitant of the métropole. Their formulas are in ``docs/indicators.md``,
"Land (issue 14)". A run without land rasters leaves them empty (null).
"""

from __future__ import annotations

import pyarrow as pa

from observatory.layers.fields import Field

_F, _I = pa.float64(), pa.int32()

#: English words of the land groups (observatory.land.classes.GROUPS).
GROUP_WORDS = {
    "artificialised": "artificialised",
    "agricultural": "agricultural",
    "forest_seminatural": "forest and semi-natural",
    "wetland": "wetland",
    "water": "water",
}

#: French names of the land groups, lower case.
GROUP_LABELS = {
    "artificialised": "artificialisée",
    "agricultural": "agricole",
    "forest_seminatural": "forêts et milieux semi-naturels",
    "wetland": "zones humides",
    "water": "surfaces en eau",
}


_VINTAGES = [
    Field(
        "land_cover_vintage",
        _I,
        "Year of the land-cover raster ([inputs] land_cover; null without it)",
        "Millésime de l'occupation du sol",
    ),
    Field(
        "ghsl_epoch",
        _I,
        "GHSL epoch of the built-up and population grids ([inputs] built_up, "
        "population_grid)",
        "Époque GHSL (bâti, population)",
    ),
    Field(
        "ghsl_epoch_previous",
        _I,
        "Earlier GHSL epoch compared with ([inputs] built_up_previous)",
        "Époque GHSL de comparaison",
    ),
]


_LAND_COVER = [
    Field(
        "land_cover_coverage",
        _F,
        "Area the land-cover raster classifies (not nodata) / the EPCI's area; "
        "0 outside the raster (OSO covers mainland France only)",
        "Part couverte par l'occupation du sol",
    ),
    *(
        Field(
            f"{group}_share",
            _F,
            f"Area of {GROUP_WORDS[group]} land / classified area (docs/indicators.md, "
            "groups); null where nothing is classified or the nomenclature has no "
            "class of the group (OSO: wetland)",
            f"Part {label}",
        )
        for group, label in GROUP_LABELS.items()
    ),
    Field(
        "agricultural_ha",
        _F,
        "Agricultural area measured, in hectares (on the covered part)",
        "Surface agricole (ha)",
    ),
]


def _ghsl(suffix: str, when: str, alias: str) -> list[Field]:
    return [
        Field(
            f"built_up_m2{suffix}",
            _F,
            f"Built-up surface, m² (GHS-BUILT-S{when})",
            f"Surface bâtie (m²){alias}",
        ),
        Field(
            f"built_up_coverage{suffix}",
            _F,
            f"Share of the EPCI's area with built-up grid data (GHS-BUILT-S{when})",
            f"Part couverte par la grille du bâti{alias}",
        ),
        Field(
            f"grid_population{suffix}",
            _F,
            f"Inhabitants on the population grid (GHS-POP{when}: JRC's estimate, "
            "not INSEE's census)",
            f"Habitants, grille GHS-POP{alias}",
        ),
        Field(
            f"built_up_m2_per_inhabitant{suffix}",
            _F,
            f"built_up_m2{suffix} / grid_population{suffix}",
            f"Surface bâtie par habitant (m²){alias}",
        ),
    ]


EPCI_LAND_FIELDS = [
    *_VINTAGES,
    *_LAND_COVER,
    *_ghsl("", "", ""),
    *_ghsl("_previous", ", earlier epoch", ", époque précédente"),
    Field(
        "built_up_m2_per_inhabitant_change",
        _F,
        "built_up_m2_per_inhabitant now minus at the earlier epoch, m²",
        "Évolution de la surface bâtie par habitant (m²)",
    ),
]


#: The parts of a system the métropoles layer sums the land of, with their words.
CROWN_PARTS = (
    ("_own", "the métropole itself (crown 0)", "de la métropole"),
    ("_crown1", "the first crown", "de la 1re couronne"),
    ("_crown2", "the second crown", "de la 2e couronne"),
)


def _crown_fields(suffix: str, what: str, label: str) -> list[Field]:
    fields = [
        Field(
            f"agricultural_ha{suffix}",
            _F,
            f"Agricultural hectares of {what} (sum of its EPCI's agricultural_ha)",
            f"Surface agricole {label} (ha)",
        ),
        Field(
            f"land_cover_coverage{suffix}",
            _F,
            f"Area of {what} the land cover classifies / its area",
            f"Part couverte par l'occupation du sol {label}",
        ),
        *(
            Field(
                f"{group}_share{suffix}",
                _F,
                f"Share of {GROUP_WORDS[group]} land in {what} (its summed areas)",
                f"Part {GROUP_LABELS[group]} {label}",
            )
            for group in ("artificialised", "agricultural", "forest_seminatural")
        ),
        Field(
            f"built_up_m2_per_inhabitant{suffix}",
            _F,
            f"Built-up m² per inhabitant of {what} (GHSL)",
            f"Surface bâtie par habitant {label} (m²)",
        ),
    ]
    if suffix == "_own":
        return [
            *fields,
            Field(
                "agricultural_ha_per_inhabitant_own",
                _F,
                "The métropole's own farmland / its inhabitants (GHS-POP), ha",
                "Surface agricole de la métropole par habitant (ha)",
            ),
        ]
    return [
        *fields,
        Field(
            f"grid_population{suffix}",
            _F,
            f"Inhabitants of {what} on the population grid (GHS-POP)",
            f"Habitants {label} (grille GHS-POP)",
        ),
        Field(
            f"agricultural_ha{suffix}_per_metropole_inhabitant",
            _F,
            f"Agricultural hectares of {what} / the métropole's inhabitants "
            "(metropole_grid_population): its farmland for each inhabitant of the "
            "métropole",
            f"Surface agricole {label} par habitant de la métropole (ha)",
        ),
    ]


METROPOLE_LAND_FIELDS = [
    _VINTAGES[0],
    _VINTAGES[1],
    Field(
        "metropole_grid_population",
        _F,
        "Inhabitants of the métropole on the population grid (GHS-POP): the "
        "denominator of the farmland per inhabitant",
        "Habitants de la métropole (grille GHS-POP)",
    ),
    *(
        f
        for suffix, what, label in CROWN_PARTS
        for f in _crown_fields(suffix, what, label)
    ),
]
