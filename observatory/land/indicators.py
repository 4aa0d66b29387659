"""Land indicators from pixel counts: pure functions on DataFrames.

Counts come per commune (:mod:`observatory.land.zonal`); areas and sums add up
exactly over the communes of an EPCI, and over the EPCI of a crown, so shares
and ratios are taken only after summing (never averaged). docs/indicators.md,
section "Land (issue 14)", defines every column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.core.errors import DataError
from observatory.land.classes import GROUPS, OTHER, ClassTable
from observatory.land.zonal import ZonalCounts

#: m² in a hectare.
HECTARE = 10_000.0


def land_cover_areas(counts: ZonalCounts, table: ClassTable) -> pd.DataFrame:
    """Return each polygon's area per land group, from a land-cover raster's counts.

    Returns
    -------
    pandas.DataFrame
        The polygons' index; ``<group>_m2`` for every group of :data:`GROUPS`
        and ``other_m2``, ``covered_m2`` (classified pixels: neither the
        raster's nodata nor the table's), ``area_m2`` (the polygon's area).

    Raises
    ------
    DataError
        A pixel code the class table does not know: naming the raster, the
        table, the codes and their pixels (the wrong table for this raster).
    """
    codes = counts.codes if counts.codes is not None else pd.DataFrame()
    group_of = table.group_of()
    unknown = [c for c in codes.columns if c not in group_of and c not in table.nodata]
    if unknown:
        pixels = {int(c): int(codes[c].sum()) for c in unknown}
        files = ", ".join(str(g.path) for g in counts.grids)
        msg = (
            f"{files}: pixel code(s) {sorted(pixels)} ({pixels} pixels) are not in the "
            f"class table {table.path} ({table.nomenclature}): a table of another "
            "nomenclature or product?"
        )
        raise DataError(msg, path=counts.grids[0].path)
    out = pd.DataFrame(index=counts.polygons.index)
    for group in (*GROUPS, OTHER):
        columns = [c for c in codes.columns if group_of.get(int(c)) == group]
        out[f"{group}_m2"] = codes[columns].sum(axis=1) * counts.pixel_area
    out["covered_m2"] = out[[f"{g}_m2" for g in (*GROUPS, OTHER)]].sum(axis=1)
    out["area_m2"] = counts.polygons["area_m2"]
    return out.astype(float)


def quantity_totals(counts: ZonalCounts, name: str) -> pd.DataFrame:
    """Return each polygon's total of a quantity raster and its covered area.

    Columns ``<name>`` (sum of pixel values), ``<name>_covered_m2`` (pixels with
    data), ``<name>_sum_x``, ``<name>_sum_y`` (value-weighted pixel centres, in
    the raster's CRS) and ``area_m2``.
    """
    sums = counts.sums if counts.sums is not None else pd.DataFrame()
    return pd.DataFrame(
        {
            name: sums["sum"],
            f"{name}_covered_m2": counts.polygons["valid_pixels"] * counts.pixel_area,
            f"{name}_sum_x": sums["sum_x"],
            f"{name}_sum_y": sums["sum_y"],
            "area_m2": counts.polygons["area_m2"],
        },
        index=counts.polygons.index,
    )


def sum_by(frame: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    """Sum additive columns (areas, inhabitants) by a key aligned on the index."""
    return frame.groupby(keys.reindex(frame.index), sort=True).sum(min_count=1)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """Num / den, missing where den is zero or missing (never 0 nor infinite)."""
    den = den.where(den > 0)
    return (num / den).astype(float)


def land_shares(areas: pd.DataFrame, table: ClassTable | None) -> pd.DataFrame:
    """Return the shares of each land group and the land-cover coverage.

    ``<group>_share`` = group area / covered area; missing where nothing is
    covered, and for groups the nomenclature has no class in (OSO's wetland).
    ``land_cover_coverage`` = covered / polygon area in the raster's CRS
    (``land_cover_area_m2``), at most 1 (the pixel
    centre rule may count slightly more than the area). ``agricultural_ha``.
    """
    present = table.groups_present() if table is not None else GROUPS
    out = pd.DataFrame(index=areas.index)
    for group in GROUPS:
        share = _ratio(areas[f"{group}_m2"], areas["covered_m2"])
        out[f"{group}_share"] = share if group in present else np.nan
    out["land_cover_coverage"] = _ratio(
        areas["covered_m2"], areas["land_cover_area_m2"]
    ).clip(upper=1.0)
    # Nothing classified (outside the raster: OSO overseas): unknown, not 0 ha.
    out["agricultural_ha"] = (areas["agricultural_m2"] / HECTARE).where(
        areas["covered_m2"] > 0
    )
    return out


def built_up_indicators(totals: pd.DataFrame) -> pd.DataFrame:
    """Return built-up surface per inhabitant at each epoch and its change.

    ``totals`` has ``built_up`` and ``population`` (and ``built_up_previous``,
    ``population_previous`` when two epochs are given), summed over the
    polygons. ``built_up_m2_per_inhabitant`` = built-up m² / inhabitants;
    ``built_up_m2_per_inhabitant_change`` = current minus previous, in m².
    """
    out = pd.DataFrame(index=totals.index)
    for suffix in ("", "_previous"):
        built, people = f"built_up{suffix}", f"population{suffix}"
        # No cell with data (outside the tiles given): unknown, not 0.
        if built in totals:
            out[f"built_up_m2{suffix}"] = totals[built].where(
                totals[f"{built}_covered_m2"] > 0
            )
            out[f"built_up_coverage{suffix}"] = _ratio(
                totals[f"{built}_covered_m2"], totals[f"{built}_area_m2"]
            ).clip(upper=1.0)
        if people in totals:
            out[f"grid_population{suffix}"] = totals[people].where(
                totals[f"{people}_covered_m2"] > 0
            )
        if built in totals and people in totals:
            out[f"built_up_m2_per_inhabitant{suffix}"] = _ratio(
                out[f"built_up_m2{suffix}"], out[f"grid_population{suffix}"]
            )
    if {"built_up_m2_per_inhabitant", "built_up_m2_per_inhabitant_previous"} <= set(
        out.columns
    ):
        out["built_up_m2_per_inhabitant_change"] = (
            out["built_up_m2_per_inhabitant"]
            - out["built_up_m2_per_inhabitant_previous"]
        )
    return out
