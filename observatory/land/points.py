"""Population-weighted centres of communes, from a population grid.

An option beside today's representative points
(:func:`observatory.systems.distances.commune_points`): the mean of the grid
cells' centres inside the commune, weighted by their inhabitants, so that flow
lines end and distances start where people live rather than at a point of the
polygon. The frame returned has the same shape (index commune code, ``x``,
``y``, ``area_km2``), so it can replace it as is.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from observatory.land.zonal import ZonalCounts


def population_weighted_points(
    communes: gpd.GeoDataFrame,
    population: ZonalCounts,
    code_column: str = "commune_code",
) -> pd.DataFrame:
    """Return each commune's population-weighted centre, in the communes' CRS.

    Parameters
    ----------
    communes
        Polygons with their code, in a projected CRS (metres).
    population
        The population grid's counts for these polygons, in the same order
        (:func:`observatory.land.zonal.zonal_counts` with ``quantity=True``).
    code_column
        Column holding the commune code.

    Returns
    -------
    pandas.DataFrame
        Index: commune code; ``x``, ``y`` (metres, the communes' CRS),
        ``area_km2``, ``grid_population`` and ``population_weighted`` (False
        where the grid gives the commune no inhabitant: its representative
        point is kept). The mean is taken in the grid's CRS and the point
        reprojected; over a commune the difference with a mean taken in the
        communes' CRS is well under a metre.
    """
    sums = population.sums if population.sums is not None else pd.DataFrame()
    people = sums["sum"].to_numpy()
    weighted = people > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        gx = np.where(weighted, sums["sum_x"].to_numpy() / people, np.nan)
        gy = np.where(weighted, sums["sum_y"].to_numpy() / people, np.nan)
    to_communes = Transformer.from_crs(
        population.grids[0].crs_wkt, communes.crs, always_xy=True
    )
    x, y = to_communes.transform(gx, gy)
    fallback = shapely.point_on_surface(communes.geometry.to_numpy())
    x = np.where(weighted, x, shapely.get_x(fallback))
    y = np.where(weighted, y, shapely.get_y(fallback))
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "area_km2": communes.geometry.area.to_numpy() / 1e6,
            "grid_population": people,
            "population_weighted": weighted,
        },
        index=pd.Index(communes[code_column].to_numpy(), name=code_column),
    )


def weighted_group_points(centres: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    """Return the population-weighted centre of each group of communes (EPCI).

    Parameters
    ----------
    centres
        :func:`population_weighted_points` of the communes.
    keys
        The group of each commune (e.g. its EPCI code), indexed by commune code.

    Returns
    -------
    pandas.DataFrame
        Indexed by group: ``x``, ``y`` (the communes' centres weighted by their
        inhabitants: the mean of every populated cell of the group),
        ``grid_population``; groups without inhabitants are left out (their
        representative point stays).
    """
    people = centres["grid_population"].where(centres["population_weighted"], 0.0)
    frame = pd.DataFrame(
        {
            "wx": centres["x"] * people,
            "wy": centres["y"] * people,
            "grid_population": people,
        },
        index=centres.index,
    )
    summed = frame.groupby(keys.reindex(centres.index), sort=True).sum()
    summed = summed[summed["grid_population"] > 0]
    return pd.DataFrame(
        {
            "x": summed["wx"] / summed["grid_population"],
            "y": summed["wy"] / summed["grid_population"],
            "grid_population": summed["grid_population"],
        },
        index=summed.index,
    )
