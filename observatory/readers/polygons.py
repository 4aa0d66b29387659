"""Check the polygons of a geometry file; repair the invalid ones, saying so.

A polygon that is not valid (a ring crossing itself, a spike) is repaired by
``shapely.make_valid``, and each repair is a warning naming the feature (code,
name) and how much its area changed. A repair that changes an area by more than
:attr:`RepairPolicy.max_area_change` stops the run unless the config accepts
repairs (``[inputs] repair_geometry = true``): the file is then wrong, not just
untidy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from observatory.core.errors import MAX_LISTED, DataError, examples_at

logger = logging.getLogger(__name__)


#: Polygon and MultiPolygon, as shapely numbers geometry types.
_POLYGONAL = {3, 6}


@dataclass(frozen=True, slots=True)
class RepairPolicy:
    """What a reader does with invalid polygons.

    Attributes
    ----------
    accept
        Keep every repair whatever it does to the area (``[inputs]
        repair_geometry``).
    max_area_change
        Largest change of a polygon's area, as a share of it, a repair may make
        when repairs are not accepted (``[inputs] max_repair_area_change``).
    """

    accept: bool = False
    max_area_change: float = 0.01


def _features(codes: pd.Series, names: pd.Series | None, rows: np.ndarray) -> list[str]:
    """Name features for messages: ``69123 Lyon`` (the code alone without names)."""
    shown = codes.to_numpy(dtype=object)[rows]
    if names is None:
        return [str(code) for code in shown]
    labels = names.to_numpy(dtype=object)[rows]
    return [
        f"{code} {label}" if isinstance(label, str) else str(code)
        for code, label in zip(shown, labels, strict=True)
    ]


def _area_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Signed relative change of each area: inf where the polygon had none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (after - before) / before
    return np.where(before > 0, change, np.where(after > 0, np.inf, 0.0))


def _described(label: str, change: float) -> str:
    if np.isfinite(change):
        return f"{label}, area {change:+.2%}"
    return f"{label}, area from 0 to more"


def _repaired(
    geometry: np.ndarray,
    codes: pd.Series,
    names: pd.Series | None,
    path: Path,
    policy: RepairPolicy,
) -> np.ndarray:
    """Repair the invalid polygons, a warning each; refuse large area changes."""
    invalid = np.flatnonzero(~shapely.is_valid(geometry))
    if not len(invalid):
        return geometry
    # "structure" keeps polygons polygonal (no stray lines from collapsed parts).
    repaired = shapely.make_valid(
        geometry[invalid], method="structure", keep_collapsed=False
    )
    before, after = shapely.area(geometry[invalid]), shapely.area(repaired)
    change = _area_change(before, after)
    described = [
        _described(label, ratio)
        for label, ratio in zip(_features(codes, names, invalid), change, strict=True)
    ]
    for position, text in zip(invalid, described, strict=True):
        logger.warning(
            "%s: feature %d (%s): invalid polygon repaired", path, position, text
        )
    too_much = np.abs(change) > policy.max_area_change
    if too_much.any() and not policy.accept:
        rows = np.flatnonzero(too_much)
        msg = (
            f"{path}: {len(rows)} invalid polygon(s) whose repair changes the area by "
            f"more than {policy.max_area_change:.0%}; "
            + examples_at([described[i] for i in rows], invalid[rows], "feature")
            + "; correct the file, or set [inputs] repair_geometry = true to accept the repairs"
        )
        raise DataError(msg, path=path, line=int(invalid[rows[0]]))
    geometry = geometry.copy()
    geometry[invalid] = repaired
    return geometry


def checked_polygons(
    geometry: np.ndarray,
    codes: pd.Series,
    names: pd.Series | None,
    path: Path,
    policy: RepairPolicy,
) -> np.ndarray:
    """Return the polygons of a layer, the invalid ones repaired (see the module).

    Parameters
    ----------
    geometry
        One geometry per feature, in the file's order.
    codes, names
        Each feature's code and name (None when the layer has no name field),
        to name them in warnings and errors.
    path
        The file, for messages.
    policy
        What to do with invalid polygons.

    Raises
    ------
    DataError
        Features without a geometry, geometries that are not polygons, or a
        repair changing an area beyond the policy's bound (naming the
        features, numbered from 0).
    """
    missing = shapely.is_missing(geometry) | shapely.is_empty(geometry)
    if missing.any():
        at = np.flatnonzero(missing)
        msg = f"{path}: features without geometry; " + examples_at(
            codes.to_numpy(dtype=object)[at], at, "feature"
        )
        raise DataError(msg, path=path, line=int(at[0]))
    kinds = shapely.get_type_id(geometry)
    other = np.flatnonzero(~np.isin(kinds, list(_POLYGONAL)))
    if len(other):
        types = [g.geom_type for g in geometry[other[:MAX_LISTED]]]
        msg = (
            f"{path}: expected Polygon or MultiPolygon geometries, found other types; "
            + examples_at(types, other, "feature")
        )
        raise DataError(msg, path=path, line=int(other[0]))
    return _repaired(geometry, codes, names, path, policy)
