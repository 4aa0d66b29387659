"""The synthetic FD_MOBPRO model: weights and places of residence and of work.

Precomputes, once per geography, who is sampled with which weight
(:func:`build_model`) and draws each sampled person's place of work
(:func:`work_places`): abroad, the own commune, anywhere in France, or one of
the nearest places. ``make_synthetic_fd.py``'s docstring describes the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from scriptlib.fd_places import PLM_CITIES, Places

SMALL_COMMUNE = 10_000
BASE_WEIGHT_SMALL = 4.0
BASE_WEIGHT_LARGE = 2.5
MEAN_WEIGHT = 3.5
WEIGHT_VARIANTS = 4
NEIGHBOURS = 300
DISTANCE_DECAY_KM = 10.0
FAR_SHARE = 0.04
JOBS_EXPONENT = 1.1

# Abroad: probability per département of residence, then country shares.
ABROAD_BY_DEP = {
    "57": 0.12, "54": 0.08, "55": 0.04, "67": 0.04, "68": 0.12, "25": 0.10,
    "90": 0.04, "39": 0.04, "01": 0.08, "74": 0.14, "06": 0.03, "59": 0.02,
    "08": 0.03, "02": 0.005, "64": 0.006, "66": 0.006, "09": 0.008, "73": 0.004,
    "05": 0.003, "62": 0.004,
}  # fmt: skip
ABROAD_DEFAULT = 0.004
# INSEE country codes (COG "pays"): LU 99137, CH 99140, DE 99109, BE 99131,
# MC 99138, ES 99134, AD 99130, IT 99127, GB 99132.
COUNTRY_BY_DEP = {
    "57": {"99137": 0.75, "99109": 0.25},
    "54": {"99137": 0.95, "99131": 0.05},
    "55": {"99137": 0.85, "99131": 0.15},
    "67": {"99109": 0.75, "99140": 0.25},
    "68": {"99140": 0.8, "99109": 0.2},
    "25": {"99140": 1.0},
    "90": {"99140": 1.0},
    "39": {"99140": 1.0},
    "01": {"99140": 1.0},
    "74": {"99140": 1.0},
    "06": {"99138": 0.95, "99127": 0.05},
    "59": {"99131": 1.0},
    "08": {"99131": 0.7, "99137": 0.3},
    "02": {"99131": 1.0},
    "62": {"99131": 0.7, "99132": 0.3},
    "64": {"99134": 1.0},
    "66": {"99134": 0.7, "99130": 0.3},
    "09": {"99130": 1.0},
    "73": {"99127": 0.6, "99140": 0.4},
    "05": {"99127": 1.0},
}
COUNTRY_DEFAULT = {
    "99140": 0.3,
    "99137": 0.2,
    "99132": 0.2,
    "99109": 0.15,
    "99131": 0.15,
}


@dataclass
class Model:
    """Precomputed sampling tables.

    Attributes
    ----------
    residence_p : numpy.ndarray
        Probability of each place as residence of a sampled row.
    weights : numpy.ndarray
        ``(n, WEIGHT_VARIANTS)`` possible ``IPONDI`` values of each place.
    same_p, abroad_p : numpy.ndarray
        Probability of working in one's own commune / abroad, per place.
    neighbours : numpy.ndarray
        ``(n, K)`` indices of the nearest other places.
    local_cdf : numpy.ndarray
        Flattened cumulative probabilities, row ``i`` shifted by ``i``.
    jobs_cdf : numpy.ndarray
        National cumulative probability of workplaces.
    city_places : dict
        Place indices of each PLM city.
    city_population : numpy.ndarray
        Population of the whole commune of each place (PLM: the city).
    """

    residence_p: np.ndarray
    weights: np.ndarray
    same_p: np.ndarray
    abroad_p: np.ndarray
    neighbours: np.ndarray
    local_cdf: np.ndarray
    jobs_cdf: np.ndarray
    city_places: dict[str, np.ndarray]
    city_population: np.ndarray


def build_model(places: Places, rng: np.random.Generator) -> Model:
    """Precompute the residence, weight and workplace distributions.

    Parameters
    ----------
    places : Places
        The geography.
    rng : numpy.random.Generator
        Random generator (weights).

    Returns
    -------
    Model
        Sampling tables.
    """
    population = places.population
    # Size of the whole commune (PLM: the city) drives weights and self-containment.
    city_population = pd.Series(population).groupby(places.commune).transform("sum")
    city_population = city_population.to_numpy()
    base_weight = np.where(
        city_population < SMALL_COMMUNE, BASE_WEIGHT_SMALL, BASE_WEIGHT_LARGE
    )
    residence = population / base_weight
    residence_p = residence / residence.sum()
    # INSEE weights are shared by many rows (calibration by commune or IRIS): a
    # few values per place, scaled so that the mean row weight is MEAN_WEIGHT.
    noise = rng.lognormal(0.0, 0.25, size=(len(places), WEIGHT_VARIANTS))
    weights = base_weight[:, None] * noise
    weights *= MEAN_WEIGHT / float(np.sum(residence_p * weights.mean(axis=1)))
    weights = np.round(np.clip(weights, 1.0, 12.0), 15)
    log_pop = np.log10(np.maximum(city_population, 1.0))
    same_p = np.clip(0.10 + 0.45 * (log_pop - 2.0) / 3.5, 0.08, 0.65)
    abroad_p = np.array([ABROAD_BY_DEP.get(d, ABROAD_DEFAULT) for d in places.dep])

    jobs = np.maximum(population, 1.0) ** JOBS_EXPONENT
    jobs_cdf = np.cumsum(jobs / jobs.sum())
    jobs_cdf[-1] = 1.0

    tree = cKDTree(places.xy)
    k = min(NEIGHBOURS + 1, len(places))
    distance, index = tree.query(places.xy, k=k)
    # Drop each place itself (its own point, distance 0, not always in column 0
    # when two places share a point).
    own = index == np.arange(len(places))[:, None]
    keep = ~own
    keep[keep.sum(axis=1) == k, -1] = False  # self beyond K: drop the farthest
    neighbours = index[keep].reshape(len(places), k - 1)
    distance = distance[keep].reshape(len(places), k - 1)
    weight = jobs[neighbours] * np.exp(-distance / DISTANCE_DECAY_KM)
    weight[:, 0] = np.maximum(weight[:, 0], 1e-300)
    cdf = np.cumsum(weight, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    local_cdf = (cdf + np.arange(len(places))[:, None]).ravel()

    city_places = {city: np.flatnonzero(places.commune == city) for city in PLM_CITIES}
    return Model(
        residence_p=residence_p,
        weights=weights,
        same_p=same_p,
        abroad_p=abroad_p,
        neighbours=neighbours,
        local_cdf=local_cdf,
        jobs_cdf=jobs_cdf,
        city_places=city_places,
        city_population=city_population,
    )


def work_places(
    rng: np.random.Generator, model: Model, places: Places, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the workplace of each row.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    model : Model
        Sampling tables.
    places : Places
        The geography.
    origin : numpy.ndarray
        Residence place index of each row.

    Returns
    -------
    kind : numpy.ndarray
        0 own commune, 1 near, 2 far, 3 abroad.
    dest : numpy.ndarray
        Workplace index (-1 abroad).
    country : numpy.ndarray
        INSEE country code abroad, ``""`` otherwise.
    """
    n = len(origin)
    u = rng.random(n)
    abroad = u < model.abroad_p[origin]
    u2 = rng.random(n)
    same = ~abroad & (u2 < model.same_p[origin])
    far = ~abroad & ~same & (rng.random(n) < FAR_SHARE)
    near = ~abroad & ~same & ~far
    kind = np.select([same, near, far], [0, 1, 2], default=3)

    dest = np.full(n, -1, dtype=np.int64)
    dest[same] = origin[same]
    # PLM: own city, own arrondissement with p 0.35 else any arrondissement by jobs.
    for members in model.city_places.values():
        rows = np.flatnonzero(same & np.isin(origin, members))
        move = rows[rng.random(len(rows)) >= 0.35]
        jobs = places.population[members] ** JOBS_EXPONENT
        dest[move] = rng.choice(members, size=len(move), p=jobs / jobs.sum())
    rows = np.flatnonzero(near)
    position = np.searchsorted(model.local_cdf, origin[rows] + rng.random(len(rows)))
    column = position - origin[rows] * model.neighbours.shape[1]
    column = np.clip(column, 0, model.neighbours.shape[1] - 1)
    dest[rows] = model.neighbours[origin[rows], column]
    rows = np.flatnonzero(far)
    dest[rows] = np.searchsorted(model.jobs_cdf, rng.random(len(rows)))

    country = np.full(n, "", dtype=object)
    rows = np.flatnonzero(abroad)
    deps = places.dep[origin[rows]]
    for dep in np.unique(deps):
        table = COUNTRY_BY_DEP.get(dep, COUNTRY_DEFAULT)
        codes = list(table)
        shares = np.array(list(table.values()))
        sel = rows[deps == dep]
        country[sel] = np.asarray(codes, dtype=object)[
            rng.choice(len(codes), size=len(sel), p=shares / shares.sum())
        ]
    return kind, dest, country
