"""The demo's SYNTHETIC detailed file FD_MOBPRO, consistent with its base flux.

INSEE's FD_MOBPRO has one row per sampled employed person with a weight
``IPONDI``; summed by residence, workplace and mode it gives the base flux of the
same census. The demo's file is derived from the demo's current flows
(:mod:`scriptlib.demo_flows`): the workers sampled on each commune pair are split
between modes by a multinomial draw from a distance-dependent modal model
(:func:`mode_shares`), and each (pair, mode) becomes ONE row whose ``IPONDI`` is
the weighted number of workers of that pair and mode. The rows of a pair sum to
the pair's base-flux value (the last row takes the rounding remainder), so the
run's pair-by-pair check against the base flux finds no gap. The observatory
sums ``IPONDI`` by ``COMMUNE``/``ARM``, ``DCLT`` and ``TRANS``: aggregated rows
give the sums that person rows would.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from observatory.geography import is_abroad_code
from observatory.readers.fd_mobpro.coding import trans_coding
from scriptlib.demo_flows import Flows, percent
from scriptlib.demo_territory import Territory

#: The modes of the modal model, in the order of RP 2017+'s ``TRANS`` codes.
MODES = ("none", "walk", "bicycle", "two_wheel_motorised", "car", "public_transport")
#: Second word of the detailed file's seed, ``default_rng([seed, 2])``.
FD_STREAM = 2
#: A destination of this population is fully urban (``u = 1``), one of
#: :data:`RURAL_POPULATION` or less not at all (``u = 0``), log-linear between.
URBAN_POPULATION = 200_000
RURAL_POPULATION = 20_000
#: Fixed mode shares (order of :data:`MODES`) of the workers going to Paris
#: (mostly by train) and abroad.
PARIS_SHARES = (0.0, 0.0, 0.0, 0.01, 0.39, 0.60)
ABROAD_SHARES = (0.0, 0.0, 0.01, 0.02, 0.85, 0.12)
#: How the README names each mode.
MODE_LABELS = {
    "none": "none",
    "walk": "walk",
    "bicycle": "bicycle",
    "two_wheel_motorised": "motorised two-wheeler",
    "car": "car",
    "public_transport": "public transport",
}
#: Floor of the car's share inside the territory.
CAR_FLOOR = 0.05
#: Columns written, a subset of INSEE's in its order; codes are strings.
FD_COLUMNS = (
    "COMMUNE",
    "ARM",
    "DCLT",
    "ILT",
    "IPONDI",
    "METRODOM",
    "REGION",
    "REGLT",
    "TRANS",
)
#: ``REGION`` of Paris.
ILE_DE_FRANCE = "11"


@dataclass(frozen=True)
class DetailedFile:
    """The synthetic FD_MOBPRO table and what was measured on it.

    Attributes
    ----------
    table : pyarrow.Table
        The rows, :data:`FD_COLUMNS`.
    vintage : int
        Census vintage (its ``TRANS`` coding).
    pairs : int
        Commune pairs (those of the base flux).
    max_gap : float
        Largest absolute difference between a pair's summed ``IPONDI`` and its
        base-flux value.
    shares : dict
        Mode -> weighted share of all workers.
    internal_shares : dict
        ``"same commune"`` / ``"other commune"`` -> mode -> weighted share, for
        the workers working in the territory.
    """

    table: pa.Table
    vintage: int
    pairs: int
    max_gap: float
    shares: dict[str, float]
    internal_shares: dict[str, dict[str, float]]


def urban_index(population: np.ndarray) -> np.ndarray:
    """Return ``u`` in [0, 1]: 0 up to 20,000 inhabitants, 1 from 200,000, log-linear."""
    ratio = np.log(np.maximum(population, 1.0) / RURAL_POPULATION)
    return np.clip(ratio / np.log(URBAN_POPULATION / RURAL_POPULATION), 0.0, 1.0)


def mode_shares(
    distance_km: np.ndarray, same_commune: np.ndarray, urban: np.ndarray
) -> np.ndarray:
    """Return the modal model's shares of trips inside the territory.

    With ``d`` the distance in km and ``u`` the destination's urban index
    (:func:`urban_index`), before the car takes the rest (at least
    :data:`CAR_FLOOR`, then normalised):

    - none: ``0.15 x (1 - 0.6 u)`` within the commune (working at home, farms),
      ``0.002`` otherwise;
    - walk: ``(0.45 + 0.25 u) x exp(-d / 1.5)``;
    - bicycle: ``(0.04 + 0.08 u) x exp(-d / 6)``;
    - motorised two-wheeler: ``0.015``;
    - public transport: ``(0.01 + 0.30 u) x (1 - exp(-d / 2))``.

    Parameters
    ----------
    distance_km, same_commune, urban : numpy.ndarray
        One value per trip (commune pair).

    Returns
    -------
    numpy.ndarray
        Shares, one row per pair, one column per mode of :data:`MODES`.
    """
    d, u = distance_km, urban
    shares = np.column_stack(
        [
            np.where(same_commune, 0.15 * (1 - 0.6 * u), 0.002),
            (0.45 + 0.25 * u) * np.exp(-d / 1.5),
            (0.04 + 0.08 * u) * np.exp(-d / 6.0),
            np.full(len(d), 0.015),
            np.zeros(len(d)),
            (0.01 + 0.30 * u) * (1 - np.exp(-d / 2.0)),
        ]
    )
    shares[:, MODES.index("car")] = np.maximum(1 - shares.sum(axis=1), CAR_FLOOR)
    return shares / shares.sum(axis=1, keepdims=True)


def pair_shares(
    table: pd.DataFrame, territory: Territory, distance: np.ndarray
) -> np.ndarray:
    """Return the mode shares of every row of the base-flux ``table``."""
    codes = territory.communes["code"].to_numpy()
    position = pd.Series(np.arange(len(codes)), index=codes)
    origin = position.reindex(table["CODGEO"]).to_numpy()
    destination = position.reindex(table["DCLT"]).to_numpy()
    inside = ~np.isnan(destination)
    i = origin.astype(int)
    j = np.where(inside, destination, 0).astype(int)
    population = territory.communes["population"].to_numpy(dtype=float)
    shares = mode_shares(distance[i, j], i == j, urban_index(population[j]))
    abroad = is_abroad_code(table["DCLT"]).to_numpy(dtype=bool)
    shares[~inside & abroad] = ABROAD_SHARES
    shares[~inside & ~abroad] = PARIS_SHARES
    return shares


def split_by_mode(
    flows: Flows, shares: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Split each pair's sampled workers between modes; return weighted values.

    Each mode's value is its share of the pair's value, rounded to 2 decimals
    like the base flux; the last mode drawn takes the remainder, so that the
    modes of a pair sum to its value.

    Parameters
    ----------
    flows : Flows
        The base flux (values and sampled workers of each pair).
    shares : numpy.ndarray
        Mode shares of each pair (:func:`pair_shares`).
    rng : numpy.random.Generator
        One multinomial per pair.

    Returns
    -------
    numpy.ndarray
        Weighted workers by pair and mode; each row sums to the pair's value
        (the last mode drawn takes the rounding remainder).
    """
    counts = rng.multinomial(flows.sampled.astype(np.int64), shares)
    value = flows.table[flows.column].to_numpy(dtype=float)
    weighted = np.round(counts * (value / flows.sampled)[:, None], 2)
    last = counts.shape[1] - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    rows = np.arange(len(value))
    weighted[rows, last] = 0.0
    weighted[rows, last] = np.round(value - weighted.sum(axis=1), 2)
    return weighted


def _geography(table: pd.DataFrame, territory: Territory) -> pd.DataFrame:
    """Return ``REGION``, ``REGLT`` and ``ILT`` of every base-flux row."""
    communes = territory.communes.set_index("code")
    dep, reg = communes["dep"], communes["reg"]
    origin_dep = dep.reindex(table["CODGEO"]).to_numpy()
    origin_reg = reg.reindex(table["CODGEO"]).to_numpy()
    abroad = is_abroad_code(table["DCLT"]).to_numpy(dtype=bool)
    paris = table["DCLT"].str.startswith("751").to_numpy()
    work_dep = dep.reindex(table["DCLT"]).to_numpy(dtype=object)
    work_reg = reg.reindex(table["DCLT"]).to_numpy(dtype=object)
    work_dep[paris], work_reg[paris] = "75", ILE_DE_FRANCE
    work_reg[abroad] = "99"
    ilt = np.select(
        [
            abroad,
            (table["CODGEO"] == table["DCLT"]).to_numpy(),
            work_dep == origin_dep,
            work_reg == origin_reg,
        ],
        ["7", "1", "2", "3"],
        default="4",
    )
    return pd.DataFrame({"REGION": origin_reg, "REGLT": work_reg, "ILT": ilt})


def fd_table(
    flows: Flows, weighted: np.ndarray, territory: Territory, vintage: int
) -> pa.Table:
    """Return the detailed file's rows: one per pair and mode with workers.

    Modes missing from the vintage's ``TRANS`` coding (bicycles and motorised
    two-wheelers before RP 2017) fall into its ``two_wheel`` code.
    """
    coding = {mode: code for code, mode in trans_coding(vintage).items()}
    codes = [coding.get(mode, coding.get("two_wheel")) for mode in MODES]
    table = flows.table
    geography = _geography(table, territory)
    pair, mode = np.nonzero(weighted > 0)
    rows = pd.DataFrame(
        {
            "COMMUNE": table["CODGEO"].to_numpy()[pair],
            "ARM": "ZZZZZ",
            "DCLT": table["DCLT"].to_numpy()[pair],
            "ILT": geography["ILT"].to_numpy()[pair],
            "IPONDI": weighted[pair, mode],
            "METRODOM": "M",
            "REGION": geography["REGION"].to_numpy()[pair],
            "REGLT": geography["REGLT"].to_numpy()[pair],
            "TRANS": np.asarray(codes, dtype=object)[mode],
        }
    )
    keys = ["COMMUNE", "ARM", "DCLT", "ILT", "METRODOM", "REGION", "REGLT", "TRANS"]
    rows = rows.groupby(keys, sort=True, as_index=False)["IPONDI"].sum()
    schema = pa.schema(
        [(c, pa.float64() if c == "IPONDI" else pa.string()) for c in FD_COLUMNS]
    )
    return pa.Table.from_pandas(rows[list(FD_COLUMNS)], schema, preserve_index=False)


def weighted_shares(frame: pd.DataFrame) -> dict[str, float]:
    """Return each mode's share of the summed ``IPONDI`` of ``frame``."""
    by_mode = frame.groupby("MODE")["IPONDI"].sum()
    return {m: float(by_mode.get(m, 0.0) / by_mode.sum()) for m in MODES}


def synthetic_fd(
    territory: Territory,
    flows: Flows,
    distance: np.ndarray,
    seed: int,
    vintage: int,
) -> DetailedFile:
    """Draw the SYNTHETIC FD_MOBPRO of the demo's current flows.

    Parameters
    ----------
    territory : Territory
        Demo territory.
    flows : Flows
        The current base flux, with the workers sampled on each pair.
    distance : numpy.ndarray
        Commune-to-commune distances in km (the gravity model's).
    seed : int
        Seed of the demo; the file draws from ``default_rng([seed, FD_STREAM])``.
    vintage : int
        Census vintage of the file (its ``TRANS`` coding).

    Returns
    -------
    DetailedFile
        The rows and what was measured on them.
    """
    rng = np.random.default_rng([seed, FD_STREAM])
    shares = pair_shares(flows.table, territory, distance)
    weighted = split_by_mode(flows, shares, rng)
    table = fd_table(flows, weighted, territory, vintage)
    frame = table.to_pandas()
    decode = trans_coding(vintage)
    frame["MODE"] = frame["TRANS"].map(decode)
    summed = frame.groupby(["COMMUNE", "DCLT"])["IPONDI"].sum()
    base = flows.table.set_index(["CODGEO", "DCLT"])[flows.column]
    gap = summed.reindex(base.index, fill_value=0.0) - base
    internal = frame[frame["ILT"] != "7"]
    internal = internal[~internal["DCLT"].str.startswith("751")]
    same = internal["COMMUNE"] == internal["DCLT"]
    return DetailedFile(
        table=table,
        vintage=vintage,
        pairs=len(base),
        max_gap=float(gap.abs().max()),
        shares=weighted_shares(frame),
        internal_shares={
            "same commune": weighted_shares(internal[same]),
            "other commune": weighted_shares(internal[~same]),
        },
    )


def write_fd(detailed: DetailedFile, path: Path) -> None:
    """Write the rows as one Parquet row group (zstd), atomically."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = Path(tmp) / path.name
        pq.write_table(
            detailed.table,
            partial,
            compression="zstd",
            compression_level=19,
            row_group_size=detailed.table.num_rows,
        )
        partial.replace(path)


def shares_row(label: str, shares: dict[str, float]) -> str:
    """Return one Markdown row of mode shares."""
    return f"| {label} | " + " | ".join(percent(shares[m]) for m in MODES) + " |"


FD_TEMPLATE = """\
## Synthetic detailed file FD_MOBPRO RP {vintage} (NOT INSEE data)

`{file}` ({size:,} bytes) is a SYNTHETIC look-alike of INSEE's
detailed file *Mobilités professionnelles* of RP {vintage}, in the Parquet format
INSEE uses from RP 2021: columns `{columns}` (a subset of INSEE's, the ones the
observatory reads and a few that follow from the geography, in INSEE's order;
every code a string,
`IPONDI` a double; `ARM` is `ZZZZZ` since no demo commune is Paris, Lyon or
Marseille; `METRODOM` `M`), `TRANS` in the 6-mode coding of RP 2017+
(1 none, 2 walk, 3 bicycle, 4 motorised two-wheeler, 5 car, 6 public transport).

It is derived from the RP {vintage} flows of `{flows_zip}`: the workers
sampled on each commune pair (before weighting) are split between the modes by a
multinomial draw (`numpy.random.default_rng([{seed}, {stream}])`) from this
distance-dependent modal model, `d` the pair's distance in km (the gravity
model's) and `u` the destination's urban index (0 up to {rural:,} inhabitants, 1 from {urban:,},
log-linear between):

- none: `0.15 x (1 - 0.6 u)` within the commune, `0.002` otherwise;
- walk: `(0.45 + 0.25 u) x exp(-d / 1.5)`;
- bicycle: `(0.04 + 0.08 u) x exp(-d / 6)`;
- motorised two-wheeler: `0.015`;
- public transport: `(0.01 + 0.30 u) x (1 - exp(-d / 2))`;
- car: the rest (at least {car_floor:g}); to Paris: {paris}; abroad: {abroad}.

**One row per commune pair and mode** (INSEE's file has one row per sampled
person): `IPONDI` is the weighted number of workers of that pair and mode, rounded
to 2 decimals like the base flux, so the rows of a pair sum to its base-flux value
(the last mode drawn takes the rounding remainder). The run's check against the
base flux (manifest `fd_mobpro.base_flux_check`) finds it consistent. In a run
it gives the modal shares of `epci_indicators` (`to_metropole_*_share`,
`from_metropole_*_share`) and the modes, distances and person-km of `flows`.

Result: {rows:,} rows, {pairs:,} commune pairs, {workers:,.2f} workers; largest
gap between a pair's summed `IPONDI` and its base-flux value: {max_gap:.2g}
workers (floating-point rounding). Weighted mode shares:

| workers | none | walk | bicycle | motorised 2-wheel | car | public transport |
|---|---|---|---|---|---|---|
{shares}
"""


def fd_section(
    detailed: DetailedFile, seed: int, file: str, flows_zip: str, size: int
) -> str:
    """Return the README's section on the detailed file."""

    def fixed(shares: tuple[float, ...]) -> str:
        pairs = zip(MODES, shares, strict=True)
        return ", ".join(f"{MODE_LABELS[m]} {percent(v)}" for m, v in pairs if v)

    shares = [shares_row("all", detailed.shares)]
    shares += [
        shares_row(f"in the territory, {where}", values)
        for where, values in detailed.internal_shares.items()
    ]
    return FD_TEMPLATE.format(
        vintage=detailed.vintage,
        file=file,
        size=size,
        columns=", ".join(FD_COLUMNS),
        flows_zip=flows_zip,
        seed=seed,
        stream=FD_STREAM,
        rural=RURAL_POPULATION,
        urban=URBAN_POPULATION,
        car_floor=CAR_FLOOR,
        paris=fixed(PARIS_SHARES),
        abroad=fixed(ABROAD_SHARES),
        rows=detailed.table.num_rows,
        pairs=detailed.pairs,
        workers=float(pc.sum(detailed.table["IPONDI"]).as_py()),
        max_gap=detailed.max_gap,
        shares="\n".join(shares),
    )
