"""The demo's SYNTHETIC previous census: the same gravity model, five years earlier.

The previous vintage (RP 2017 by default) is drawn from the model of the current
flows (:mod:`scriptlib.demo_flows`) with a documented drift back in time:

- population: each commune's population is divided by ``(1 + g) ** years``,
  ``g`` the annual growth of its ring (:data:`GROWTH_BY_DISTANCE`: contiguity
  distance of its EPCI to the nearest métropole) plus a seeded normal noise of
  :data:`GROWTH_NOISE` per year: the métropoles and their first crown grew, the
  outer ring stagnated;
- employment: :data:`PREVIOUS_EMPLOYMENT_RATE` employed residents per
  inhabitant (the employment rate rose between the two censuses);
- jobs: ``population ** PREVIOUS_JOB_EXPONENT``, slightly less concentrated in
  the larger communes than in the current vintage;
- distance: ``d0`` is :data:`D0_FACTOR` times the current one (commutes
  lengthen over time), rounded to 0.1 km.

The flows are sampled like the current ones (one multinomial per origin, one
weight per origin) with ``numpy.random.default_rng([seed, PREVIOUS_STREAM])``,
and written in the geography of the current flows (1 January 2025): no passage
table is needed, unlike a real RP 2017, published in the geography of 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scriptlib.datafrance import Source
from scriptlib.demo_flows import (
    EMPLOYMENT_RATE,
    JOB_EXPONENT,
    Flows,
    flow_column,
    gravity_flows,
    gravity_inputs,
    percent,
)
from scriptlib.demo_territory import METROPOLES, Territory

#: Years between the two censuses the demo is labelled with.
YEARS_BETWEEN = 5
#: Annual population growth by contiguity distance of the commune's EPCI to the
#: nearest métropole (0: the métropole itself).
GROWTH_BY_DISTANCE = {0: 0.008, 1: 0.010, 2: 0.005, 3: 0.0}
#: Standard deviation of each commune's annual growth around its ring's.
GROWTH_NOISE = 0.003
PREVIOUS_EMPLOYMENT_RATE = 0.40
PREVIOUS_JOB_EXPONENT = 1.04
D0_FACTOR = 0.95
#: Second word of the previous vintage's seed, ``default_rng([seed, 1])``.
PREVIOUS_STREAM = 1


@dataclass(frozen=True)
class PreviousFlows:
    """The previous vintage's flows and the drift that made them.

    Attributes
    ----------
    flows : Flows
        Sampled flows (``d0_km`` is the previous ``d0``), expected and measured
        figures.
    vintage : int
        Census vintage they are labelled with.
    population : tuple of float
        Population of the territory in the previous and the current vintage.
    growth : dict
        Contiguity distance -> realised mean annual growth of its communes'
        population (population-weighted), between the two vintages.
    """

    flows: Flows
    vintage: int
    population: tuple[float, float]
    growth: dict[int, float]


def ring_of_communes(territory: Territory) -> np.ndarray:
    """Return each commune's contiguity distance to the nearest métropole (0-3)."""
    nearest: dict[str, int] = {}
    for distances in territory.distances.values():
        for epci, distance in distances.items():
            nearest[epci] = min(distance, nearest.get(epci, distance))
    return territory.communes["epci"].map(nearest).to_numpy(dtype=int)


def previous_flows(
    territory: Territory,
    source: Source,
    current: Flows,
    seed: int,
    vintage: int,
) -> PreviousFlows:
    """Draw the SYNTHETIC previous vintage of the flows.

    Parameters
    ----------
    territory : Territory
        Demo territory.
    source : Source
        Loaded wheel tables.
    current : Flows
        The current flows (their calibrated ``d0``).
    seed : int
        Seed of the demo; the previous vintage draws from
        ``default_rng([seed, PREVIOUS_STREAM])``.
    vintage : int
        Census vintage the previous flows are labelled with (names only).

    Returns
    -------
    PreviousFlows
        The flows in INSEE's base-flux layout and the realised drift.
    """
    rng = np.random.default_rng([seed, PREVIOUS_STREAM])
    population = territory.communes["population"].to_numpy(dtype=float)
    ring = ring_of_communes(territory)
    annual = np.array([GROWTH_BY_DISTANCE[r] for r in ring])
    annual = annual + rng.normal(0.0, GROWTH_NOISE, size=len(ring))
    before = population / (1 + annual) ** YEARS_BETWEEN
    model = gravity_inputs(
        territory,
        source,
        population=before,
        employment_rate=PREVIOUS_EMPLOYMENT_RATE,
        job_exponent=PREVIOUS_JOB_EXPONENT,
    )
    d0 = round(D0_FACTOR * current.d0_km, 1)
    flows = gravity_flows(territory, source, model, d0, rng, flow_column(vintage))
    growth = {}
    for distance in sorted(GROWTH_BY_DISTANCE):
        ring_members = ring == distance
        ratio = population[ring_members].sum() / before[ring_members].sum()
        growth[distance] = float(ratio ** (1 / YEARS_BETWEEN) - 1)
    return PreviousFlows(
        flows, vintage, (float(before.sum()), float(population.sum())), growth
    )


def _change(after: float, before: float) -> str:
    """Format a change of share in percentage points, e.g. ``+1.2 pt``."""
    points = round(100 * (after - before), 1) + 0.0  # no "-0.0"
    return f"{points:+.1f} pt"


def change_lines(previous: PreviousFlows, current: Flows) -> list[str]:
    """Return the Markdown table of the measured figures of both vintages."""
    old, new = previous.flows.measured, current.measured
    label = f"RP {previous.vintage}"
    lines = [
        f"| Métropole | self-containment {label} | change | crown-1 median "
        f"dependence {label} | change |",
        "|---|---|---|---|---|",
    ]
    for m, figures in old.metropoles.items():
        after = new.metropoles[m]
        lines.append(
            f"| {METROPOLES[m]} | {percent(figures.self_containment)} "
            f"| {_change(after.self_containment, figures.self_containment)} "
            f"| {percent(figures.crown1_dependence_median)} "
            f"| {_change(after.crown1_dependence_median, figures.crown1_dependence_median)} |"
        )
    lines += [
        "",
        f"- crown-1 EPCI pooled, median dependence: "
        f"{percent(old.crown1_dependence_median)} in {label} "
        f"({_change(new.crown1_dependence_median, old.crown1_dependence_median)})",
        f"- rural EPCI, median self-containment: "
        f"{percent(old.rural_self_containment_median)} in {label} "
        f"({_change(new.rural_self_containment_median, old.rural_self_containment_median)})",
    ]
    return lines


PREVIOUS_TEMPLATE = """\
## Synthetic previous census RP {vintage} (NOT INSEE data)

`{zip_name}` holds the flows of a SYNTHETIC previous census,
labelled RP {vintage} (column `{column}`), {years} years before the current flows.
They come from the same gravity model, drifted back in time:

1. Population: each commune's population is divided by `(1 + g) ^ {years}`, `g`
   its ring's annual growth plus a seeded normal noise (standard deviation
   {noise:.1f} % a year). The ring is the contiguity distance of the commune's
   EPCI to the nearest métropole: {growth_model}. Realised (population-weighted
   mean annual growth): {growth_realised}. The territory had
   {population_before:,.0f} inhabitants in RP {vintage} against
   {population_after:,.0f}.
2. Employed residents: `{employment_rate:.2f} x population` (the employment rate
   rose between the two censuses: {current_rate:.2f} now).
3. Jobs: `population ^ {job_exponent}` (less concentrated than the current
   `^ {current_exponent}`).
4. `d0 = {d0_factor} x {current_d0:g} km = {d0:.1f} km` (commutes lengthen over
   time); balanced by Furness in {iterations} iterations.
5. Sampled like the current flows, with
   `numpy.random.default_rng([{seed}, {stream}])` (the growth noise first, then
   one multinomial and one weight per origin).

They are written **in the geography of 1 January 2025**, like the current
flows, so the demo needs no passage table. A real RP {vintage} is published in
the geography of 1 January {real_geography}: it needs `commune_passage`. In a run
they give the `*_previous` and `*_change` columns of `epci_indicators` and the
previous vintage's columns of `flows`.

Result: {n_rows:,} rows, {total:,.2f} workers in total. Measured figures and their
change to RP {current_vintage}:

{table}
"""


def previous_section(
    previous: PreviousFlows, current: Flows, seed: int, zip_name: str
) -> str:
    """Return the README's section on the previous vintage."""
    flows = previous.flows
    return PREVIOUS_TEMPLATE.format(
        vintage=previous.vintage,
        current_vintage=previous.vintage + YEARS_BETWEEN,
        real_geography=previous.vintage + 3,
        zip_name=zip_name,
        column=flows.column,
        years=YEARS_BETWEEN,
        noise=100 * GROWTH_NOISE,
        growth_model=", ".join(
            f"distance {d}: {100 * g:+.1f} %" for d, g in GROWTH_BY_DISTANCE.items()
        ),
        growth_realised=", ".join(
            f"distance {d}: {100 * g:+.2f} %" for d, g in previous.growth.items()
        ),
        population_before=previous.population[0],
        population_after=previous.population[1],
        employment_rate=PREVIOUS_EMPLOYMENT_RATE,
        current_rate=EMPLOYMENT_RATE,
        job_exponent=PREVIOUS_JOB_EXPONENT,
        current_exponent=JOB_EXPONENT,
        d0_factor=D0_FACTOR,
        current_d0=current.d0_km,
        d0=flows.d0_km,
        iterations=flows.furness_iterations,
        seed=seed,
        stream=PREVIOUS_STREAM,
        n_rows=len(flows.table),
        total=flows.table[flows.column].sum(),
        table="\n".join(change_lines(previous, current)),
    )
