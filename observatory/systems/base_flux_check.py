"""Check flows summed from FD_MOBPRO against INSEE's base flux, pair by pair.

Both come from the same census, so each commune pair should agree up to INSEE's
rounding of the base flux. :func:`compare_with_base_flux` lists the pairs that
do not, for the run's manifest.
"""

from __future__ import annotations

import logging
from typing import TypedDict

import numpy as np
import pandas as pd

from observatory.core.errors import DataError
from observatory.geography import rollup_arrondissements
from observatory.systems.modes import PAIR_KEYS, require_columns

logger = logging.getLogger(__name__)


#: Workers by which a pair may differ (INSEE rounds the base flux to 0.5).
BASE_FLUX_TOLERANCE = 0.5


#: Share of the larger side by which a pair may differ, on top (float sums).
BASE_FLUX_RELATIVE_TOLERANCE = 1e-6


class Tolerance(TypedDict):
    """The tolerance a comparison used."""

    absolute: float
    relative: float


class PairGap(TypedDict):
    """One commune pair whose two sources differ by more than the tolerance."""

    origin_commune: str
    destination_commune: str
    workers_fd: float
    workers_base: float
    gap: float  # fd - base


class BaseFluxCheck(TypedDict):
    """The outcome of :func:`compare_with_base_flux`, as the manifest records it."""

    pairs_fd: int
    pairs_base: int
    pairs_only_in_fd: int
    pairs_only_in_base: int
    workers_fd: float
    workers_base: float
    workers_gap: float  # fd - base
    max_abs_gap: float
    pairs_above_tolerance: int
    tolerance: Tolerance
    consistent: bool  # no pair above the tolerance
    worst_pairs: list[PairGap]  # largest gap first


def _pair_totals(frame: pd.DataFrame, what: str, roll_up: bool) -> pd.Series:
    require_columns(frame, (*PAIR_KEYS, "workers"), what)
    origin = frame["origin_commune"].astype("string")
    destination = frame["destination_commune"].astype("string")
    if roll_up:
        origin = rollup_arrondissements(origin)
        destination = rollup_arrondissements(destination)
    workers = pd.to_numeric(frame["workers"], errors="coerce").astype("float64")
    if workers.isna().any():
        msg = f"{what}: workers must be numbers; {int(workers.isna().sum())} missing or not numeric"
        raise DataError(msg)
    return workers.groupby([origin, destination], sort=True).sum()


def _worst_pairs(merged: pd.DataFrame, gap: pd.Series, worst: int) -> list[PairGap]:
    """List the ``worst`` pairs of ``merged`` with the largest gaps, largest first."""
    ranked = (
        merged.assign(gap=gap, abs_gap=gap.abs())
        .reset_index(names=list(PAIR_KEYS))
        .sort_values(["abs_gap", *PAIR_KEYS], ascending=[False, True, True])
        .head(max(0, worst))
    )
    columns = zip(
        ranked["origin_commune"].astype(str).tolist(),
        ranked["destination_commune"].astype(str).tolist(),
        ranked["workers_fd"].to_numpy(dtype="float64").tolist(),
        ranked["workers_base"].to_numpy(dtype="float64").tolist(),
        ranked["gap"].to_numpy(dtype="float64").tolist(),
        strict=True,
    )
    return [
        {
            "origin_commune": origin,
            "destination_commune": destination,
            "workers_fd": round(fd, 6),
            "workers_base": round(base, 6),
            "gap": round(gap_, 6),
        }
        for origin, destination, fd, base, gap_ in columns
    ]


def compare_with_base_flux(
    fd_pairs: pd.DataFrame,
    base: pd.DataFrame,
    *,
    tolerance: float = BASE_FLUX_TOLERANCE,
    relative_tolerance: float = BASE_FLUX_RELATIVE_TOLERANCE,
    worst: int = 10,
    roll_up: bool = False,
) -> BaseFluxCheck:
    """Compare flows summed from FD_MOBPRO with INSEE's base flux, pair by pair.

    Parameters
    ----------
    fd_pairs
        ``origin_commune``, ``destination_commune``, ``workers``; a table by
        mode (:func:`observatory.readers.fd_mobpro.read_fd`) is summed over
        modes.
    base
        Same columns (``CommuneFlows.table`` of
        :func:`observatory.readers.base_flux.read_base_flux`).
    tolerance, relative_tolerance
        A pair is a gap when ``|fd - base| > tolerance + relative_tolerance *
        max(|fd|, |base|)``; a pair missing on one side counts as 0 there.
    worst
        How many of the largest gaps to list.
    roll_up
        Roll arrondissements up to their commune on both sides first.

    Returns
    -------
    BaseFluxCheck
        Pairs on each side and on one side only, workers on each side and
        their gap, the largest gap, the pairs above the tolerance, the
        tolerance, whether none is (``consistent``), and the ``worst`` pairs.
    """
    fd = _pair_totals(fd_pairs, "fd_pairs", roll_up).rename("workers_fd")
    ref = _pair_totals(base, "base", roll_up).rename("workers_base")
    merged = pd.concat([fd, ref], axis=1, join="outer").sort_index()
    only_fd = int((merged["workers_base"].isna() & merged["workers_fd"].notna()).sum())
    only_base = int(
        (merged["workers_fd"].isna() & merged["workers_base"].notna()).sum()
    )
    merged = merged.fillna(0.0)
    gap = merged["workers_fd"] - merged["workers_base"]
    limit = tolerance + relative_tolerance * np.maximum(
        merged["workers_fd"].abs(), merged["workers_base"].abs()
    )
    above = gap.abs() > limit
    report: BaseFluxCheck = {
        "pairs_fd": len(fd),
        "pairs_base": len(ref),
        "pairs_only_in_fd": only_fd,
        "pairs_only_in_base": only_base,
        "workers_fd": round(float(fd.sum()), 3),
        "workers_base": round(float(ref.sum()), 3),
        "workers_gap": round(float(fd.sum() - ref.sum()), 6),
        "max_abs_gap": round(float(gap.abs().max()), 6) if len(gap) else 0.0,
        "pairs_above_tolerance": int(above.sum()),
        "tolerance": {"absolute": tolerance, "relative": relative_tolerance},
        "consistent": not bool(above.any()),
        "worst_pairs": _worst_pairs(merged[above], gap[above], worst),
    }
    if above.any():
        logger.warning(
            "FD_MOBPRO vs base flux: %d pair(s) differ by more than %.3g workers "
            "(largest gap %.3f)",
            report["pairs_above_tolerance"],
            tolerance,
            report["max_abs_gap"],
        )
    return report
