"""The synthetic base flux of the national inputs: the FD_MOBPRO summed by pair.

Each census vintage is ``make_synthetic_fd.py``'s FD (same seed, rows and
chunks, so the same people) summed over everything but the pair of residence
and workplace, then, for the older vintage, moved back to the former communes
of every commune nouvelle. Written in INSEE's base-flux layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatory.geography import (
    COUNTRY_NAMES,
    is_abroad_code,
    rollup_arrondissements,
)
from scriptlib.fd_files import CHUNK_ROWS
from scriptlib.fd_places import Places
from scriptlib.fd_rows import sample_chunks, start_sampling
from scriptlib.insee_files import write_csv_zip

#: INSEE country codes the synthetic FD uses, with INSEE's (upper-case) names.
COUNTRIES = {
    code: COUNTRY_NAMES[code].upper()
    for code in (
        "99109",
        "99127",
        "99130",
        "99131",
        "99132",
        "99134",
        "99137",
        "99138",
        "99140",
    )
}


@dataclass(frozen=True)
class Vintage:
    """One census vintage of synthetic base flux."""

    year: int
    seed: int
    old_geography: bool  # split communes nouvelles back into former communes

    @property
    def column(self) -> str:
        """Return INSEE's flow column, e.g. ``NBFLUX_C23_ACTOCC15P``."""
        return f"NBFLUX_C{self.year % 100:02d}_ACTOCC15P"

    @property
    def zip_name(self) -> str:
        """Return the archive name, as INSEE names it."""
        return f"base-flux-mobilite-domicile-lieu-travail-{self.year}-csv.zip"

    @property
    def csv_name(self) -> str:
        """Return the CSV member name."""
        return f"base-flux-mobilite-domicile-lieu-travail-{self.year}.csv"


#: RP 2023 goes with the geography of 2025 (``configs/france.toml``); seed 2021
#: is ``make_synthetic_fd.py``'s default, so that file summed is this one.
CURRENT = Vintage(year=2023, seed=2021, old_geography=False)
PREVIOUS = Vintage(year=2018, seed=2016, old_geography=True)


def summed_fd(places: Places, rows: int, seed: int) -> pd.DataFrame:
    """Sum the synthetic FD_MOBPRO of ``make_synthetic_fd.py`` by pair.

    Parameters
    ----------
    places : Places
        The geography (``make_synthetic_fd.load_places``), shared by the vintages.
    rows : int
        Rows of the synthetic FD.
    seed : int
        Its seed.

    Returns
    -------
    pandas.DataFrame
        ``CODGEO`` (arrondissement for Paris, Lyon, Marseille), ``DCLT``,
        ``workers``, sorted by pair.
    """
    rng, model, origins = start_sampling(places, rows, seed)
    parts = []
    for chunk in sample_chunks(rng, model, places, origins, CHUNK_ROWS):
        residence = pc.if_else(
            pc.equal(chunk["ARM"], "ZZZZZ"), chunk["COMMUNE"], chunk["ARM"]
        )
        table = pa.table(
            {"CODGEO": residence, "DCLT": chunk["DCLT"], "workers": chunk["IPONDI"]}
        )
        parts.append(table.group_by(["CODGEO", "DCLT"]).aggregate([("workers", "sum")]))
    summed = (
        pa.concat_tables(parts)
        .group_by(["CODGEO", "DCLT"])
        .aggregate([("workers_sum", "sum")])
        .to_pandas()
        .rename(columns={"workers_sum_sum": "workers"})
    )
    return summed.sort_values(["CODGEO", "DCLT"], ignore_index=True)


def to_old_geography(
    flows: pd.DataFrame, former: pd.DataFrame, seed: int
) -> pd.DataFrame:
    """Move each pair's communes nouvelles to one of their former communes.

    Parameters
    ----------
    flows : pandas.DataFrame
        ``CODGEO``, ``DCLT``, ``workers``.
    former : pandas.DataFrame
        Output of :func:`former_communes`.
    seed : int
        Seed of the draws (in proportion to the former communes' population; a
        commune nouvelle that kept the code of one of them keeps it as a choice,
        weighted by the rest of its population).

    Returns
    -------
    pandas.DataFrame
        The same columns, pairs merged again, sorted.
    """
    rng = np.random.default_rng(seed)
    out = flows.copy()
    groups = dict(tuple(former.groupby("parent", sort=True)))
    for column in ("CODGEO", "DCLT"):
        codes = out[column].to_numpy(dtype=object).copy()
        series = out[column]
        hits = series[series.isin(groups.keys())]
        for parent, index in sorted(hits.groupby(hits).indices.items()):
            rows = hits.index.to_numpy()[index]
            group = groups[parent]
            choices = np.append(group["code"].to_numpy(dtype=object), parent)
            weights = np.append(group["population"].to_numpy(), 1.0)
            weights = np.maximum(weights, 1.0)
            codes[rows] = choices[
                rng.choice(len(choices), size=len(rows), p=weights / weights.sum())
            ]
        out[column] = codes
    return out.groupby(["CODGEO", "DCLT"], as_index=False, sort=True)["workers"].sum()


def write_base_flux(
    flows: pd.DataFrame, names: dict[str, str], vintage: Vintage, path: Path
) -> None:
    """Write flows as INSEE's zipped base flux CSV (fixed timestamp).

    Parameters
    ----------
    flows : pandas.DataFrame
        ``CODGEO``, ``DCLT``, ``workers``.
    names : dict
        Code -> place name (countries from :data:`COUNTRIES`).
    vintage : Vintage
        Census vintage (column and member names).
    path : Path
        Target ``.zip``.
    """
    every = {**names, **COUNTRIES}
    unnamed = sorted(set(flows["CODGEO"]).union(flows["DCLT"]) - every.keys())
    if unnamed:
        message = f"{path}: no name for code(s) {unnamed[:5]}"
        raise ValueError(message)
    table = pd.DataFrame(
        {
            "CODGEO": flows["CODGEO"],
            "LIBGEO": flows["CODGEO"].map(every),
            "DCLT": flows["DCLT"],
            "L_DCLT": flows["DCLT"].map(every),
            vintage.column: flows["workers"],
        }
    )
    # Floats as repr (shortest round trip), like INSEE's unrounded weighted sums.
    write_csv_zip(table, path, vintage.csv_name, compresslevel=6)


def write_vintage(
    places: Places,
    names: dict[str, str],
    former: pd.DataFrame,
    vintage: Vintage,
    rows: int,
    output: Path,
) -> dict[str, Any]:
    """Write one vintage's base flux and return what the manifest says of it.

    Parameters
    ----------
    places : Places
        The geography of the synthetic FD.
    names : dict
        Code -> place name (:func:`place_names`).
    former : pandas.DataFrame
        Former communes (:func:`former_communes`).
    vintage : Vintage
        The census vintage.
    rows : int
        Rows of the synthetic FD summed.
    output : Path
        Folder of the inputs.

    Returns
    -------
    dict
        File, column, rows, workers and code counts.
    """
    table = summed_fd(places, rows, vintage.seed)
    if vintage.old_geography:
        table = to_old_geography(table, former, vintage.seed)
    write_base_flux(table, names, vintage, output / vintage.zip_name)
    residence, work = table["CODGEO"], table["DCLT"]
    return {
        "file": vintage.zip_name,
        "column": vintage.column,
        "rows": len(table),
        "workers": round(float(table["workers"].sum()), 3),
        "residence_codes": int(residence.nunique()),
        "work_codes": int(work.nunique()),
        "arrondissement_rows": int(
            (rollup_arrondissements(residence) != residence).sum()
        ),
        "abroad_rows": int(is_abroad_code(work).sum()),
        "former_commune_rows": int(
            (residence.isin(former["code"]) | work.isin(former["code"])).sum()
        ),
        "seed": vintage.seed,
        "fd_rows": rows,
    }
