"""Land of each crown against the métropole's inhabitants (pure functions).

The complementarity the agencies want to show: what the crowns have (farmland)
against what the métropole has (inhabitants). Sums per (métropole, crown) are
taken over the EPCI of that crown; an EPCI in two systems counts in both.
Shares and ratios are taken after summing, never averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.land.classes import GROUPS
from observatory.land.indicators import HECTARE

#: The land groups whose share of each crown the ``metropoles`` layer shows.
CROWN_GROUPS = ("artificialised", "agricultural", "forest_seminatural")

#: Additive columns of the EPCI sums a crown adds up, when present.
_ADDITIVE = (
    *(f"{g}_m2" for g in GROUPS),
    "covered_m2",
    "land_cover_area_m2",
    "population",
    "built_up",
    "population_covered_m2",
    "built_up_covered_m2",
)


def _where(values: pd.Series, mask: pd.Series) -> pd.Series:
    return values.where(mask).astype(float)


def crown_land(
    epci: pd.DataFrame,
    crowns: pd.DataFrame,
    groups: tuple[str, ...] = GROUPS,
) -> pd.DataFrame:
    """Return the land of each (métropole, crown) and its farmland per inhabitant.

    Parameters
    ----------
    epci
        Indexed by EPCI code, the sums over its communes: ``<group>_m2``,
        ``covered_m2``, ``land_cover_area_m2`` (land cover), ``population``,
        ``built_up`` and their ``*_covered_m2`` (GHSL), whichever were given.
    crowns
        ``metropole_code``, ``epci_code``, ``crown`` (0 for the métropole), as
        :func:`observatory.systems.crowns.build_crowns` returns them.
    groups
        The groups the land cover's nomenclature has a class in
        (:meth:`~observatory.land.classes.ClassTable.groups_present`): the
        share of the others is missing, not 0.

    Returns
    -------
    pandas.DataFrame
        One row per (``metropole_code``, ``crown``): ``epci_count``; with a land
        cover ``agricultural_ha``, ``land_cover_coverage`` (covered / area of
        the crown) and ``<group>_share`` (group / covered); with a population
        grid ``grid_population`` (the crown's), ``metropole_population`` (crown
        0's) and ``agricultural_ha_per_metropole_inhabitant``; with both GHSL
        grids ``built_up_m2_per_inhabitant``. Crown 0 is the métropole's own
        land per its own inhabitant. Missing where nothing is covered.
    """
    columns = [c for c in _ADDITIVE if c in epci]
    if crowns.empty:
        return pd.DataFrame(columns=["metropole_code", "crown", "epci_count"])
    joined = crowns[["metropole_code", "epci_code", "crown"]].join(
        epci[columns], on="epci_code"
    )
    keys = ["metropole_code", "crown"]
    summed = joined.groupby(keys, sort=True)[columns].sum(min_count=1)
    out = pd.DataFrame(index=summed.index)
    out["epci_count"] = joined.groupby(keys, sort=True)["epci_code"].count()
    out["epci_count"] = out["epci_count"].astype("int64")
    if "covered_m2" in summed:
        covered = summed["covered_m2"] > 0
        out["agricultural_ha"] = _where(summed["agricultural_m2"] / HECTARE, covered)
        area = summed["land_cover_area_m2"].where(summed["land_cover_area_m2"] > 0)
        out["land_cover_coverage"] = (summed["covered_m2"] / area).clip(upper=1.0)
        for group in GROUPS:
            share = summed[f"{group}_m2"] / summed["covered_m2"].where(covered)
            out[f"{group}_share"] = share.astype(float) if group in groups else np.nan
    if "population" in summed:
        people = _where(summed["population"], summed["population_covered_m2"] > 0)
        out["grid_population"] = people
        own = people.xs(0, level="crown")
        metropole = own.reindex(summed.index.get_level_values("metropole_code"))
        out["metropole_population"] = metropole.to_numpy()
        if "agricultural_ha" in out:
            per = out["metropole_population"].where(out["metropole_population"] > 0)
            out["agricultural_ha_per_metropole_inhabitant"] = (
                out["agricultural_ha"] / per
            )
        if "built_up" in summed:
            built = _where(summed["built_up"], summed["built_up_covered_m2"] > 0)
            out["built_up_m2_per_inhabitant"] = built / people.where(people > 0)
    return out.reset_index()


def _suffix(crown: int) -> str:
    # The métropoles layer's words: "_own" for the métropole, "_crown1"...
    return "_own" if crown == 0 else f"_crown{crown}"


#: Columns of :func:`crown_land` spread onto the ``metropoles`` layer, by crown.
_SPREAD = (
    "agricultural_ha",
    "land_cover_coverage",
    *(f"{g}_share" for g in CROWN_GROUPS),
    "grid_population",
    "built_up_m2_per_inhabitant",
)


def metropole_land_columns(crown_table: pd.DataFrame) -> pd.DataFrame:
    """Spread :func:`crown_land` into one row per métropole (its layer's columns).

    For the métropole (``_own``) and each crown k (``_crownk``):
    ``agricultural_ha``, ``land_cover_coverage``, the shares of
    :data:`CROWN_GROUPS`, ``grid_population`` and
    ``built_up_m2_per_inhabitant``; ``agricultural_ha_crownk_per_metropole_inhabitant``
    for each crown, ``agricultural_ha_per_inhabitant_own`` for the métropole's
    own farmland per its own inhabitant, and ``metropole_grid_population``.
    Columns of rasters not given are left out.
    """
    table = crown_table.set_index(["metropole_code", "crown"])
    metropoles = table.index.get_level_values("metropole_code").unique()
    out = pd.DataFrame(index=pd.Index(metropoles, name="metropole_code"))
    for crown in sorted(table.index.get_level_values("crown").unique()):
        part = table.xs(crown, level="crown").reindex(out.index)
        for column in (c for c in _SPREAD if c in part):
            out[f"{column}{_suffix(crown)}"] = part[column]
        if "agricultural_ha_per_metropole_inhabitant" in part:
            per = part["agricultural_ha_per_metropole_inhabitant"]
            name = (
                "agricultural_ha_per_inhabitant_own"
                if crown == 0
                else f"agricultural_ha_crown{crown}_per_metropole_inhabitant"
            )
            out[name] = per
    if "grid_population_own" in out:
        out["metropole_grid_population"] = out["grid_population_own"]
    return out.reset_index().replace({np.inf: np.nan})
