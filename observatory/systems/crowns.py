"""EPCI polygons, métropoles and their crowns (pure functions on GeoDataFrames).

Two EPCI are neighbours when they share a land border: the part of the boundary
of one that lies within ``tolerance_m`` of the other is at least
``min_shared_border_m`` long, measured both ways (the shorter counts). The
tolerance absorbs simplified or slightly overlapping boundaries (a 35 m gap
between two really adjacent communes occurs in generalised data); the minimum
length rejects contacts at a single point, which measure about twice the
tolerance. Water is not a border: EPCI across a bay wider than the tolerance are
not neighbours.

The crown of an EPCI in a métropole system is its contiguity distance to the
métropole: 1 for EPCI sharing a border with it, 2 for those sharing a border with
crown 1 but neither with the métropole nor in crown 1, and so on up to
``depth``. An EPCI may belong to several systems.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypedDict

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatory.core.errors import DataError
from observatory.geography import METROPOLE_NATURES
from observatory.systems.adjacency import metric_polygons, neighbour_positions
from observatory.systems.dissolve import dissolve_groups

logger = logging.getLogger(__name__)


class MembershipReport(TypedDict):
    """How communes were placed in EPCI (the manifest's ``territories`` record)."""

    communes_with_geometry: int
    communes_without_epci: list[str]
    communes_epci_from_geometry_file: int
    communes_epci_disagreeing: int


def epci_from_communes(
    communes: gpd.GeoDataFrame, composition: pd.DataFrame, epci: pd.DataFrame
) -> tuple[gpd.GeoDataFrame, MembershipReport]:
    """Dissolve commune polygons into EPCI polygons.

    Membership comes from INSEE's composition; the SIREN read from the geometry
    file is used only for communes the composition lacks, and disagreements are
    reported.

    Parameters
    ----------
    communes
        ``commune_code``, ``epci_code_geo`` and polygon geometry.
    composition
        ``commune_code``, ``epci_code``.
    epci
        ``epci_code``, ``epci_name``, ``epci_nature``.

    Returns
    -------
    tuple
        EPCI polygons (``epci_code``, ``epci_name``, ``epci_nature``,
        ``n_communes``, geometry) and a report of membership issues.
    """
    polygons, reports = _epci_polygons([communes], composition, epci)
    return polygons[0], reports[0]


def _epci_polygons(
    frames: list[gpd.GeoDataFrame], composition: pd.DataFrame, epci: pd.DataFrame
) -> tuple[list[gpd.GeoDataFrame], list[MembershipReport]]:
    """Return the EPCI polygons and membership report of each frame of communes.

    The communes of all frames are placed and dissolved at once: a few calls
    whatever the number of territories (each a frame in its own CRS; an EPCI
    spanning two frames is two groups).
    """
    communes = [frame["commune_code"] for frame in frames]
    member, from_geo, disagree, codes = _memberships(
        _chunked(communes),
        _chunked([frame["epci_code_geo"] for frame in frames]),
        composition,
        epci,
    )
    ends = np.cumsum([len(frame) for frame in frames])
    starts = ends - [len(frame) for frame in frames]
    reports = [
        _membership_report(
            series, member[start:end] < 0, from_geo[start:end], disagree[start:end]
        )
        for series, start, end in zip(communes, starts, ends, strict=True)
    ]
    # One group per frame and EPCI, in the order of the frames, then the codes.
    kept = member >= 0
    frame_of = np.repeat(np.arange(len(frames)), [len(frame) for frame in frames])
    key = frame_of[kept] * len(codes) + member[kept]
    counts = np.bincount(key, minlength=len(frames) * len(codes))
    present = np.flatnonzero(counts)
    geometry = dissolve_groups(
        (np.cumsum(counts > 0) - 1)[key],
        np.concatenate([np.asarray(frame.geometry.values) for frame in frames])[kept],
        present // len(codes),
    )
    attributes = _epci_attributes(
        codes[present % len(codes)], counts[present], composition, epci
    )
    bounds = np.searchsorted(present, np.arange(len(frames) + 1) * len(codes))
    polygons = [
        gpd.GeoDataFrame(
            attributes.iloc[a:b].reset_index(drop=True),
            geometry=geometry[a:b],
            crs=frame.crs,
        )
        for frame, a, b in zip(frames, bounds[:-1], bounds[1:], strict=True)
    ]
    return polygons, reports


def _chunked(series: list[pd.Series]) -> pa.ChunkedArray:
    # Codes of several frames, end to end, as Arrow strings.
    return pa.chunked_array(
        [pa.array(codes).cast(pa.large_string()) for codes in series],
        type=pa.large_string(),
    )


def _memberships(
    communes: pa.ChunkedArray,
    codes_in_file: pa.ChunkedArray,
    composition: pd.DataFrame,
    epci: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Place communes in EPCI: the composition's, else the file's if listed.

    Returns the EPCI of each commune (-1: none) as a position in the distinct
    codes, sorted; whether it comes from the geometry file; whether the file
    gives another EPCI than the composition; and the distinct codes.
    """
    codes, (in_composition, in_file, listed) = _epci_labels(
        _chunked([composition["epci_code"]]),
        codes_in_file,
        _chunked([epci["epci_code"]]),
    )
    # Appending -1 to the composition's codes: -1 (no row) gives -1 (no EPCI).
    member = np.append(in_composition, -1)[_composition_rows(composition, communes)]
    known = np.zeros(len(codes) + 1, dtype=bool)  # the last: code -1, unknown
    known[listed[listed >= 0]] = True
    from_geo = (member < 0) & known[in_file]
    member[from_geo] = in_file[from_geo]
    disagree = (in_file >= 0) & (member >= 0) & (in_file != member)
    return member, from_geo, disagree, codes


def _membership_report(
    communes: pd.Series, orphan: np.ndarray, from_geo: np.ndarray, disagree: np.ndarray
) -> MembershipReport:
    """Report (and log) the communes of a frame in no EPCI or in another one."""
    orphans = communes[orphan]
    if orphan.any():
        logger.warning(
            "%d commune polygon(s) belong to no EPCI of the composition (islands?): %s",
            int(orphan.sum()),
            ", ".join(orphans.head(10)),
        )
    if disagree.any():
        logger.warning(
            "%d commune(s) have another EPCI in the geometry file than in the "
            "composition; the composition is used",
            int(disagree.sum()),
        )
    return {
        "communes_with_geometry": len(communes),
        "communes_without_epci": sorted(orphans.tolist()),
        "communes_epci_from_geometry_file": int(from_geo.sum()),
        "communes_epci_disagreeing": int(disagree.sum()),
    }


def _epci_attributes(
    codes: np.ndarray, counts: np.ndarray, composition: pd.DataFrame, epci: pd.DataFrame
) -> pd.DataFrame:
    """Return the EPCI's codes, names and natures (EPCI list) and communes."""
    dissolved = pd.DataFrame(
        {
            "epci_code": pd.Series(codes, dtype=composition["epci_code"].dtype),
            "n_communes": counts.astype("int32"),
        }
    )
    out = dissolved.merge(
        epci[["epci_code", "epci_name", "epci_nature"]], on="epci_code", how="left"
    )
    return out[["epci_code", "epci_name", "epci_nature", "n_communes"]]


def _epci_labels(
    *codes: pa.ChunkedArray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return the distinct EPCI codes, sorted, and the position of each code.

    The position of each code of each array in the distinct codes, -1 for a
    missing code. Arrow hashes and sorts them without holding the interpreter.
    """
    chunks = [chunk for array in codes for chunk in array.chunks]
    distinct = pc.unique(pa.chunked_array(chunks, type=pa.large_string())).drop_null()
    distinct = distinct.take(pc.array_sort_indices(distinct))
    return distinct.to_numpy(zero_copy_only=False), [
        pc.index_in(part, value_set=distinct).fill_null(-1).to_numpy() for part in codes
    ]


def _composition_rows(
    composition: pd.DataFrame, communes: pa.ChunkedArray
) -> np.ndarray:
    """Return the row of each commune in the composition, -1 when it is absent."""
    listed = _chunked([composition["commune_code"]])
    if pc.count_distinct(listed, mode="all").as_py() < len(listed):
        repeated = composition["commune_code"].duplicated()
        twice = sorted(set(composition.loc[repeated, "commune_code"]))
        msg = f"the EPCI composition lists communes {twice[:5]} more than once"
        raise DataError(msg)
    rows = pc.index_in(communes, value_set=listed.combine_chunks())
    return np.asarray(rows.fill_null(-1).to_numpy())


def select_metropoles(
    epci: pd.DataFrame, wanted: tuple[str, ...] = (), poles: tuple[str, ...] = ()
) -> list[str]:
    """Return the SIREN of the métropoles (and other poles) to process.

    Parameters
    ----------
    epci
        EPCI with ``epci_code`` and ``epci_nature`` (only those with a polygon).
    wanted
        SIREN asked for in the config; empty means every EPCI of nature ``ME`` or
        ``METLYON``.
    poles
        EPCI of any nature processed like the métropoles, after them.

    Raises
    ------
    DataError
        When a requested SIREN is not a métropole with a polygon, or a pole has
        no polygon.
    """
    is_metropole = epci["epci_nature"].isin(METROPOLE_NATURES)
    available = set(epci.loc[is_metropole, "epci_code"].tolist())
    known = set(epci["epci_code"].tolist())
    missing = [code for code in wanted if code not in available]
    if missing:
        detail = [
            f"{code} ({'not ME/METLYON: list it in poles' if code in known else 'no polygon in the communes file'})"
            for code in missing
        ]
        msg = f"[territories] metropoles: {', '.join(detail)}"
        raise DataError(msg)
    if missing := [code for code in poles if code not in known]:
        msg = f"[territories] poles: {', '.join(missing)} (no polygon in the communes file)"
        raise DataError(msg)
    chosen = list(wanted) if wanted else sorted(available)
    return chosen + [code for code in poles if code not in chosen]


def border_hops(
    n: int, first: np.ndarray, second: np.ndarray, sources: list[int], depth: int
) -> np.ndarray:
    """Count the borders to cross from each source to every EPCI, up to ``depth``.

    Parameters
    ----------
    n
        Number of EPCI (positions 0 to ``n - 1``).
    first, second
        Positions of the EPCI of each border (both directions listed).
    sources
        Positions of the métropoles.
    depth
        Farthest crown.

    Returns
    -------
    numpy.ndarray
        One row per source: the number of borders crossed on the shortest way
        (0 for the source itself), ``inf`` beyond ``depth`` or out of reach.
    """
    order = np.argsort(first, kind="stable")
    neighbours = second[order]
    starts = np.searchsorted(first[order], np.arange(n + 1))
    hops = np.full((len(sources), n), np.inf)
    for row, source in enumerate(sources):
        hops[row, source] = 0
        frontier = np.array([source])
        for crown in range(1, depth + 1):
            spans = [neighbours[starts[i] : starts[i + 1]] for i in frontier]
            reached = np.unique(np.concatenate(spans)) if spans else frontier[:0]
            frontier = reached[np.isinf(hops[row, reached])]
            hops[row, frontier] = crown
    return hops


def build_crowns(
    epci: gpd.GeoDataFrame,
    metropole_codes: list[str],
    depth: int = 2,
    tolerance_m: float = 100.0,
    min_shared_border_m: float = 500.0,
) -> pd.DataFrame:
    """Assign every EPCI within ``depth`` borders of each métropole to its crown.

    Parameters
    ----------
    epci
        Polygons in a metric CRS with ``epci_code``.
    metropole_codes
        SIREN of the métropoles, each present in ``epci``.
    depth
        Last crown to build (2: first and second crowns).
    tolerance_m, min_shared_border_m
        See :func:`~observatory.systems.adjacency.epci_adjacency`.

    Returns
    -------
    pandas.DataFrame
        ``metropole_code``, ``epci_code``, ``crown`` (0 for the métropole itself),
        sorted by métropole, crown and EPCI.

    Examples
    --------
    On a 5 x 5 grid of squares with the métropole in the centre, the 4 squares
    sharing an edge form crown 1 and the 4 touching it at a corner fall to crown 2.
    """
    codes = epci["epci_code"].astype("string").to_numpy()
    position = {code: i for i, code in enumerate(codes)}
    unknown = [c for c in metropole_codes if c not in position]
    if unknown:
        msg = f"métropole(s) {unknown} have no polygon"
        raise DataError(msg)
    left, right, _ = neighbour_positions(
        metric_polygons(epci), tolerance_m, min_shared_border_m
    )
    hops = border_hops(
        len(codes),
        np.concatenate([left, right]),
        np.concatenate([right, left]),
        [position[c] for c in metropole_codes],
        depth,
    )
    system, reached = np.nonzero(np.isfinite(hops) & (hops <= depth))
    crowns = pd.DataFrame(
        {
            "metropole_code": np.asarray(metropole_codes, dtype=object)[system],
            "epci_code": codes[reached],
            "crown": hops[system, reached].astype("int8"),
        }
    )
    crowns[["metropole_code", "epci_code"]] = crowns[
        ["metropole_code", "epci_code"]
    ].astype("string")
    for metropole, row in zip(metropole_codes, hops, strict=True):
        if not (row == 1).any():
            logger.warning(
                "métropole %s has no neighbour: an island, or a gap wider than %g m?",
                metropole,
                tolerance_m,
            )
    return crowns.sort_values(
        ["metropole_code", "crown", "epci_code"], ignore_index=True
    )


def epci_by_territory(
    communes: Mapping[str, gpd.GeoDataFrame],
    composition: pd.DataFrame,
    epci: pd.DataFrame,
) -> tuple[dict[str, gpd.GeoDataFrame], MembershipReport]:
    """Dissolve each territory's communes into EPCI polygons, in its own CRS.

    Parameters
    ----------
    communes
        Commune polygons by territory (``FXX``, ``REU``...), as
        :func:`epci_from_communes` takes them.
    composition, epci
        As :func:`epci_from_communes` takes them.

    Returns
    -------
    tuple
        EPCI polygons by territory and the membership report of all territories.

    Raises
    ------
    DataError
        When an EPCI has member communes in several territories.
    """
    frames, parts = _epci_polygons(list(communes.values()), composition, epci)
    polygons = dict(zip(communes, frames, strict=True))
    codes = pd.concat([frame["epci_code"] for frame in polygons.values()])
    if codes.duplicated().any():
        split = sorted(set(codes[codes.duplicated()]))
        msg = (
            f"EPCI {split[:5]} have member communes in several territories of the "
            "communes file(s): check the composition file"
        )
        raise DataError(msg)
    report: MembershipReport = {
        "communes_with_geometry": sum(p["communes_with_geometry"] for p in parts),
        "communes_without_epci": sorted(
            code for p in parts for code in p["communes_without_epci"]
        ),
        "communes_epci_from_geometry_file": sum(
            p["communes_epci_from_geometry_file"] for p in parts
        ),
        "communes_epci_disagreeing": sum(p["communes_epci_disagreeing"] for p in parts),
    }
    return polygons, report


def crowns_by_territory(
    epci: Mapping[str, gpd.GeoDataFrame],
    metropole_codes: list[str],
    depth: int = 2,
    tolerance_m: float = 100.0,
    min_shared_border_m: float = 500.0,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Build the crowns of every métropole within its own territory.

    Parameters
    ----------
    epci
        EPCI polygons by territory, each in its territory's metric CRS.
    metropole_codes
        SIREN of the métropoles (:func:`select_metropoles`).
    depth, tolerance_m, min_shared_border_m
        See :func:`build_crowns`.

    Returns
    -------
    tuple
        The crowns of all systems (:func:`build_crowns`, territory by territory)
        and the métropoles of each territory that has some, in the order of
        ``metropole_codes``.
    """
    centres = {}
    for territory, frame in epci.items():
        present = set(frame["epci_code"].tolist())
        if codes := [c for c in metropole_codes if c in present]:
            centres[territory] = codes
    crowns = pd.concat(
        [
            build_crowns(
                epci[territory], codes, depth, tolerance_m, min_shared_border_m
            )
            for territory, codes in centres.items()
        ],
        ignore_index=True,
    )
    return crowns, centres
