"""The demo's SYNTHETIC commuting flows: a calibrated gravity model, then sampling.

Employed residents ``O_i = 0.41 * population_i``; fixed small shares work in
Paris and abroad; the rest is spread over the territory by a doubly-constrained
gravity model ``T_ij = A_i O_i B_j D_j exp(-d_ij / d0)`` balanced by Furness
iteration, ``d0`` calibrated on EPCI-level targets; counts are sampled with a
seeded multinomial and weighted. ``make_demo.py``'s docstring and the demo's
README describe the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.geography import COUNTRY_NAMES
from scriptlib.datafrance import Source
from scriptlib.demo_territory import METROPOLES, Territory

EMPLOYMENT_RATE = 0.41
PARIS_SHARE = 0.006
#: Country (INSEE code) -> share of every commune's workers working there.
ABROAD_SHARES = {
    "99132": 0.0004,
    "99140": 0.0003,
    "99131": 0.0002,
    "99137": 0.0002,
    "99109": 0.0002,
    "99134": 0.0001,
    "99136": 0.0001,
}
JOB_EXPONENT = 1.05
INTRA_DISTANCE_FACTOR = 0.6
FURNESS_TOLERANCE = 1e-6
WEIGHT_RANGE = (0.97, 1.03)
D0_GRID_KM = np.arange(2.0, 30.5, 1.0)


def flow_column(vintage: int) -> str:
    """Return INSEE's base-flux column of census ``vintage``, e.g. ``NBFLUX_C22_ACTOCC15P``."""
    return f"NBFLUX_C{vintage % 100:02d}_ACTOCC15P"


TARGETS = {
    "metropole_self_containment": (0.80, 0.90),
    "crown1_dependence_median": (0.20, 0.45),
    "rural_self_containment_median": (0.45, 0.70),
}


@dataclass(frozen=True)
class MetropoleFigures:
    """Self-containment of one métropole and its crowns' dependence on it."""

    self_containment: float
    crown1_dependence_median: float
    crown1_dependence_range: tuple[float, float]
    crown2_dependence_median: float
    crown1_count: int
    crown2_count: int


@dataclass(frozen=True)
class EpciFigures:
    """EPCI-level figures the model is calibrated on.

    Attributes
    ----------
    metropoles : dict
        Métropole SIREN -> its figures.
    crown1_dependence_median : float
        Median dependence of the crown-1 EPCI of all métropoles, pooled.
    rural_self_containment_median : float
        Median self-containment of the rural EPCI (CC outside every first crown).
    rural_count : int
        How many rural EPCI.
    """

    metropoles: dict[str, MetropoleFigures]
    crown1_dependence_median: float
    rural_self_containment_median: float
    rural_count: int

    def targeted(self) -> list[tuple[str, float, str]]:
        """Return each calibrated figure: label, value and key of :data:`TARGETS`."""
        figures = [
            (
                f"{METROPOLES[m]} self-containment",
                f.self_containment,
                "metropole_self_containment",
            )
            for m, f in self.metropoles.items()
        ]
        figures.append(
            (
                "crown-1 median dependence",
                self.crown1_dependence_median,
                "crown1_dependence_median",
            )
        )
        figures.append(
            (
                "rural median self-containment",
                self.rural_self_containment_median,
                "rural_self_containment_median",
            )
        )
        return figures


@dataclass(frozen=True)
class Flows:
    """Sampled flows and the calibration measured on them.

    ``column`` is the table's flow column, named after the census vintage the
    synthetic flows are labelled with; ``sampled`` the whole number of workers
    drawn for each of its rows (the value is that number times the origin's
    weight).
    """

    table: pd.DataFrame
    column: str
    d0_km: float
    furness_iterations: int
    expected: EpciFigures
    measured: EpciFigures
    #: Workers sampled on each row of ``table`` before weighting (integers).
    sampled: np.ndarray


def distance_matrix_km(communes: gpd.GeoDataFrame) -> np.ndarray:
    """Straight-line distances between communes, with an intra-commune term.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes in EPSG:2154.

    Returns
    -------
    numpy.ndarray
        Square matrix in km; the diagonal is ``0.6 * sqrt(area / pi)``.
    """
    points = shapely.point_on_surface(communes.geometry.to_numpy())
    xy = shapely.get_coordinates(points) / 1000.0
    distance = np.hypot(
        xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]
    )
    area_km2 = communes.geometry.area.to_numpy() / 1e6
    np.fill_diagonal(distance, INTRA_DISTANCE_FACTOR * np.sqrt(area_km2 / np.pi))
    return distance


def furness(
    origins: np.ndarray, destinations: np.ndarray, deterrence: np.ndarray
) -> tuple[np.ndarray, int]:
    """Doubly-constrained gravity model balanced by Furness iteration.

    Parameters
    ----------
    origins, destinations : numpy.ndarray
        Row and column totals (equal sums).
    deterrence : numpy.ndarray
        Deterrence matrix ``f(d_ij)``.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        Expected flow matrix and the number of iterations.
    """
    b = np.ones_like(destinations)
    row_factor = deterrence @ (b * destinations)
    for iteration in range(1, 10_001):
        a = 1.0 / row_factor
        b = 1.0 / (deterrence.T @ (a * origins))
        row_factor = deterrence @ (b * destinations)
        # Column sums are exact after the update of b; rows are off by this ratio.
        if np.abs(a * row_factor - 1.0).max() <= FURNESS_TOLERANCE:
            flows = (a * origins)[:, None] * deterrence * (b * destinations)[None, :]
            return flows, iteration
    message = "Furness iteration did not converge"
    raise RuntimeError(message)


def epci_figures(
    internal: np.ndarray,
    workers: np.ndarray,
    epci: np.ndarray,
    territory: Territory,
    nature: dict[str, str],
) -> EpciFigures:
    """Measure EPCI-level self-containment and dependence on the métropoles.

    Parameters
    ----------
    internal : numpy.ndarray
        Commune-to-commune flows inside the territory.
    workers : numpy.ndarray
        Employed residents per commune (all destinations, incl. outside).
    epci : numpy.ndarray
        EPCI SIREN of each commune.
    territory : Territory
        Demo territory (métropoles and contiguity distances).
    nature : dict
        EPCI SIREN -> nature (CC, CA, ...).

    Returns
    -------
    EpciFigures
        Per-métropole self-containment and crown-1 / crown-2 median dependence,
        pooled crown-1 median dependence and rural (CC outside first crowns)
        median self-containment.
    """
    codes, index = np.unique(epci, return_inverse=True)
    member = np.zeros((len(epci), len(codes)))
    member[np.arange(len(epci)), index] = 1.0
    matrix = member.T @ internal @ member
    residents = member.T @ workers
    position = {code: k for k, code in enumerate(codes)}
    self_containment = np.diag(matrix) / residents

    per_metropole = {}
    crown1_all = []
    first_crowns = set()
    for m in territory.metropoles:
        k = position[m]
        crown1 = [e for e, d in territory.distances[m].items() if d == 1]
        crown2 = [e for e, d in territory.distances[m].items() if d == 2]
        dep1 = [matrix[position[e], k] / residents[position[e]] for e in crown1]
        dep2 = [matrix[position[e], k] / residents[position[e]] for e in crown2]
        crown1_all += dep1
        first_crowns.update(crown1)
        per_metropole[m] = MetropoleFigures(
            self_containment=float(self_containment[k]),
            crown1_dependence_median=float(np.median(dep1)),
            crown1_dependence_range=(float(min(dep1)), float(max(dep1))),
            crown2_dependence_median=float(np.median(dep2)),
            crown1_count=len(crown1),
            crown2_count=len(crown2),
        )
    rural = [
        self_containment[position[e]]
        for e in codes
        if nature[e] == "CC" and e not in first_crowns
    ]
    return EpciFigures(
        metropoles=per_metropole,
        crown1_dependence_median=float(np.median(crown1_all)),
        rural_self_containment_median=float(np.median(rural)),
        rural_count=len(rural),
    )


def calibration_loss(figures: EpciFigures) -> float:
    """Return the squared distance of the figures to the centre of their bands.

    Each deviation is scaled by its band's half-width.
    """
    loss = 0.0
    for _, value, target in figures.targeted():
        low, high = TARGETS[target]
        loss += ((value - (low + high) / 2) / ((high - low) / 2)) ** 2
    return loss


def out_of_band(figures: EpciFigures) -> list[str]:
    """Return one sentence per calibrated figure outside its target band."""
    misses = []
    for label, value, target in figures.targeted():
        low, high = TARGETS[target]
        if not low <= value <= high:
            misses.append(
                f"{label} is {percent(value)}, outside the {percent(low)}-"
                f"{percent(high)} target"
            )
    return misses


def percent(value: float) -> str:
    """Format a share as a percentage with one decimal, e.g. ``"85.2 %"``."""
    return f"{100 * value:.1f} %"


@dataclass(frozen=True)
class GravityInputs:
    """What the gravity model works on: workers, jobs and distances by commune."""

    workers: np.ndarray
    origins: np.ndarray
    jobs: np.ndarray
    distance: np.ndarray
    epci: np.ndarray
    nature: dict[str, str]


def gravity_inputs(
    territory: Territory,
    source: Source,
    population: np.ndarray | None = None,
    employment_rate: float = EMPLOYMENT_RATE,
    job_exponent: float = JOB_EXPONENT,
) -> GravityInputs:
    """Return workers, jobs and distances of the territory's communes.

    Parameters
    ----------
    territory : Territory
        Demo territory.
    source : Source
        Loaded wheel tables (EPCI natures).
    population : numpy.ndarray, optional
        Population of each commune (default: the wheel's, that of the 2025
        geography); the previous vintage passes a drifted one.
    employment_rate : float
        Employed residents per inhabitant.
    job_exponent : float
        Jobs are ``population ** job_exponent``, scaled to the internal workers.

    Returns
    -------
    GravityInputs
        The model's inputs.
    """
    communes = territory.communes
    if population is None:
        population = communes["population"].to_numpy(dtype=float)
    workers = employment_rate * population
    origins = workers * (1 - outside_share())
    jobs = population**job_exponent
    jobs *= origins.sum() / jobs.sum()
    return GravityInputs(
        workers=workers,
        origins=origins,
        jobs=jobs,
        distance=distance_matrix_km(communes),
        epci=communes["epci"].to_numpy(),
        nature=dict(zip(source.epci["code"], source.epci["nature"], strict=True)),
    )


def outside_share() -> float:
    """Return the share of every commune's workers working outside the territory."""
    return PARIS_SHARE + sum(ABROAD_SHARES.values())


def calibrate_d0(model: GravityInputs, territory: Territory) -> float:
    """Return the ``d0`` (km) whose figures come closest to their targets.

    A 1 km grid, then a 0.1 km grid around its best value.
    """
    best = None
    grid = D0_GRID_KM
    for _ in range(2):
        for d0 in grid:
            try:
                expected, _iterations = furness(
                    model.origins, model.jobs, np.exp(-model.distance / d0)
                )
            except RuntimeError:
                continue  # very short deterrence: a few remote origins cannot balance
            figures = epci_figures(
                expected, model.workers, model.epci, territory, model.nature
            )
            loss = calibration_loss(figures)
            if best is None or loss < best[0]:
                best = (loss, float(d0))
        grid = np.round(np.arange(best[1] - 0.9, best[1] + 0.95, 0.1), 1)
    return best[1]


def sample_flows(
    model: GravityInputs,
    expected: np.ndarray,
    paris: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw every origin's workers over all destinations, then weight them.

    Parameters
    ----------
    model : GravityInputs
        Workers of each commune.
    expected : numpy.ndarray
        Expected commune-to-commune flows inside the territory (:func:`furness`).
    paris : pandas.DataFrame
        Paris's arrondissements (``population``).
    rng : numpy.random.Generator
        Random generator: one multinomial per origin, then one weight per origin.

    Returns
    -------
    tuple of numpy.ndarray
        Sampled workers and their weighted values (2 decimals), origin by
        destination: communes of the territory, Paris's arrondissements, then
        the countries of :data:`ABROAD_SHARES`.
    """
    n = len(model.workers)
    paris_p = PARIS_SHARE * paris["population"].to_numpy() / paris["population"].sum()
    abroad_p = np.array(list(ABROAD_SHARES.values()))
    internal_p = (1 - outside_share()) * expected / expected.sum(axis=1, keepdims=True)
    probabilities = np.hstack(
        [internal_p, np.tile(paris_p, (n, 1)), np.tile(abroad_p, (n, 1))]
    )
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    counts = rng.multinomial(np.rint(model.workers).astype(np.int64), probabilities)
    weights = rng.uniform(*WEIGHT_RANGE, size=n)
    return counts, np.round(counts * weights[:, None], 2)


def synthetic_flows(
    territory: Territory, source: Source, seed: int, vintage: int
) -> Flows:
    """Calibrate the gravity model and sample the synthetic base-flux table.

    Parameters
    ----------
    territory : Territory
        Demo territory.
    source : Source
        Loaded wheel tables (Paris arrondissements, EPCI natures).
    seed : int
        Seed of ``numpy.random.default_rng``.
    vintage : int
        Census vintage the flows are labelled with: it names the flow column
        only, the values do not depend on it.

    Returns
    -------
    Flows
        Sampled table in INSEE's base-flux layout and calibration figures.
    """
    model = gravity_inputs(territory, source)
    d0 = calibrate_d0(model, territory)
    return gravity_flows(
        territory, source, model, d0, np.random.default_rng(seed), flow_column(vintage)
    )


def gravity_flows(
    territory: Territory,
    source: Source,
    model: GravityInputs,
    d0: float,
    rng: np.random.Generator,
    column: str,
) -> Flows:
    """Balance the gravity model for this ``d0``, sample it, measure it.

    Parameters
    ----------
    territory : Territory
        Demo territory.
    source : Source
        Loaded wheel tables (Paris arrondissements).
    model : GravityInputs
        Workers, jobs and distances.
    d0 : float
        Deterrence distance in km.
    rng : numpy.random.Generator
        Random generator of the sampling (:func:`sample_flows`).
    column : str
        Name of the flow column (:func:`flow_column`).

    Returns
    -------
    Flows
        Sampled table in INSEE's base-flux layout, expected and measured figures.
    """
    communes = territory.communes
    expected, iterations = furness(
        model.origins, model.jobs, np.exp(-model.distance / d0)
    )
    expected_figures = epci_figures(
        expected, model.workers, model.epci, territory, model.nature
    )
    paris = source.arrondissements
    counts, values = sample_flows(model, expected, paris, rng)
    n = len(communes)
    measured_figures = epci_figures(
        values[:, :n], values.sum(axis=1), model.epci, territory, model.nature
    )
    table, sampled = flow_table(communes, paris, counts, values, column)
    return Flows(
        table, column, d0, iterations, expected_figures, measured_figures, sampled
    )


def flow_table(
    communes: gpd.GeoDataFrame,
    paris: pd.DataFrame,
    counts: np.ndarray,
    values: np.ndarray,
    column: str,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the sampled flows in INSEE's base-flux layout, one row per pair.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes of the territory (rows of ``counts``, first columns).
    paris : pandas.DataFrame
        Paris's arrondissements (next columns), then the countries of
        :data:`ABROAD_SHARES`.
    counts, values : numpy.ndarray
        Sampled workers and their weighted values, origin by destination.
    column : str
        Name of the flow column (:func:`flow_column`).

    Returns
    -------
    tuple
        The table: ``CODGEO, LIBGEO, DCLT, L_DCLT`` and ``column``, pairs with
        at least one worker, sorted; and the workers sampled on each of its rows.
    """
    countries = list(ABROAD_SHARES)
    dest_codes = np.concatenate([communes["code"], paris["code"], countries])
    dest_names = np.concatenate(
        [communes["name"], paris["name"], [COUNTRY_NAMES[c] for c in countries]]
    )
    rows, cols = np.nonzero(counts)
    table = pd.DataFrame(
        {
            "CODGEO": communes["code"].to_numpy()[rows],
            "LIBGEO": communes["name"].to_numpy()[rows],
            "DCLT": dest_codes[cols],
            "L_DCLT": dest_names[cols],
            column: values[rows, cols],
            "sampled": counts[rows, cols],
        }
    )
    table = table.sort_values(["CODGEO", "DCLT"], ignore_index=True)
    sampled = table.pop("sampled").to_numpy()
    return table, sampled
