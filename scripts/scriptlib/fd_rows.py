"""The rows of the synthetic FD_MOBPRO: 32 columns drawn chunk by chunk.

:func:`start_sampling` seeds the generator, builds the model and draws every
row's place of residence; :func:`sample_chunks` then yields the rows. The
random stream is consumed in a fixed order, so that the same seed, row count and
chunk size always give the same rows (``make_national_inputs.py`` sums the rows
that ``make_synthetic_fd.py`` writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scriptlib.fd_files import COLUMNS
from scriptlib.fd_model import Model, build_model, work_places
from scriptlib.fd_places import Places

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


def _work_columns(
    rng: np.random.Generator,
    model: Model,
    places: Places,
    origin: np.ndarray,
    big: np.ndarray,
) -> dict[str, pa.Array]:
    """Draw the places, trip, mode and weight columns of one chunk.

    Parameters
    ----------
    rng, model, places, origin
        As :func:`make_chunk` takes them.
    big : numpy.ndarray
        Whether each row's commune has 100,000 inhabitants or more.

    Returns
    -------
    dict
        ``COMMUNE ARM DCFLT DCLT ILT ILTUU IPONDI METRODOM REGION REGLT TRANS``.
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
    dom = places.overseas[origin]

    ilt = np.select(
        [~in_france, work_commune == commune, work_dep == dep, work_reg == reg, dom],
        ["7", "1", "2", "3", "5"],
        default="4",
    )
    iltuu = np.where(
        ilt == "1", "1", np.where((kind == 1) & (rng.random(size) < 0.55), "2", "3")
    )
    dcflt = _border_communes(rng, country, in_france)
    group = np.select(
        [kind == 3, ilt == "1", reg == "11"],
        [4, np.where(big, 0, 1), 2],
        default=3,
    )
    trans = conditional(rng, group, [np.array(t) for t in TRANS_BY_KIND.values()])
    variant = rng.integers(0, model.weights.shape[1], size=size)
    return {
        "COMMUNE": pa.array(commune, type=pa.string()),
        "ARM": pa.array(places.arm[origin], type=pa.string()),
        "DCFLT": pa.array(dcflt, type=pa.string()),
        "DCLT": pa.array(dclt, type=pa.string()),
        "ILT": pa.array(ilt, type=pa.string()),
        "ILTUU": pa.array(iltuu, type=pa.string()),
        "IPONDI": pa.array(model.weights[origin, variant], type=pa.float64()),
        "METRODOM": coded(["M", "D"], dom.astype(np.int8)),
        "REGION": pa.array(reg, type=pa.string()),
        "REGLT": pa.array(work_reg, type=pa.string()),
        "TRANS": coded(TRANS_CODES, trans),
    }


def _border_communes(
    rng: np.random.Generator, country: np.ndarray, in_france: np.ndarray
) -> np.ndarray:
    """Draw ``DCFLT``: a border commune code abroad, ``99999`` in France."""
    dcflt = np.full(len(country), "99999", dtype=object)
    rows = np.flatnonzero(~in_france)
    prefix = np.array([DCFLT_PREFIX.get(c, "") for c in country[rows]], dtype=object)
    number = rng.integers(1, 13, size=len(rows))
    code = np.array(
        [f"{p}{k:03d}" if p else "ZZZZZ" for p, k in zip(prefix, number, strict=True)]
    )
    dcflt[rows] = np.where(country[rows] == "99138", "MO001", code)
    return dcflt


#: Variables drawn from their marginal alone, in the order they are drawn.
_INDEPENDENT = [
    name
    for name in COLUMNS[4:]
    if name in MARGINALS and name not in ("CS1", "MOCO", "NPERR")
]


def _person_columns(
    rng: np.random.Generator, size: int, big: np.ndarray, plm: np.ndarray
) -> dict[str, pa.Array]:
    """Draw the columns describing the person and the household.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    size : int
        Rows of the chunk.
    big, plm : numpy.ndarray
        Whether each row lives in a commune of 100,000+ inhabitants, in Paris,
        Lyon or Marseille.

    Returns
    -------
    dict
        The 21 other columns of :data:`~scriptlib.fd_files.COLUMNS`.
    """
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
    columns = {
        "CS1": coded(MARGINALS["CS1"].codes, cs1),
        "EMPL": coded(empl_codes, empl),
        "MOCO": coded(MARGINALS["MOCO"].codes, moco),
        "NPERR": coded(MARGINALS["NPERR"].codes, nperr),
        "STAT": coded(stat_codes, stat),
        "TYPL": coded(TYPL_BIG.codes, typl),
        "VOIT": coded(VOIT_OTHER.codes, voit),
    }
    for name in _INDEPENDENT:
        marginal = MARGINALS[name]
        columns[name] = coded(marginal.codes, draw(rng, marginal, size))
    return columns


def make_chunk(
    rng: np.random.Generator, model: Model, places: Places, origin: np.ndarray
) -> pa.Table:
    """Generate one row per residence in ``origin``, the 32 columns in INSEE's order.

    The arguments are those of :func:`~scriptlib.fd_model.work_places`.
    """
    big = model.city_population[origin] >= 100_000
    plm = places.arm[origin] != "ZZZZZ"
    columns = _work_columns(rng, model, places, origin, big)
    columns.update(_person_columns(rng, len(origin), big, plm))
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
