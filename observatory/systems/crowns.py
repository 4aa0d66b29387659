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
import shapely

from observatory.core.errors import DataError
from observatory.geography import METROPOLE_NATURES
from observatory.systems.adjacency import epci_adjacency

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
    member = communes[["commune_code", "epci_code_geo", "geometry"]].merge(
        composition[["commune_code", "epci_code"]], on="commune_code", how="left"
    )
    from_geo = member["epci_code"].isna() & member["epci_code_geo"].isin(
        epci["epci_code"]
    )
    member.loc[from_geo, "epci_code"] = member.loc[from_geo, "epci_code_geo"]
    orphan = member["epci_code"].isna()
    disagree = (
        member["epci_code_geo"].notna()
        & member["epci_code"].notna()
        & (member["epci_code_geo"] != member["epci_code"])
    )
    report: MembershipReport = {
        "communes_with_geometry": len(communes),
        "communes_without_epci": sorted(member.loc[orphan, "commune_code"].tolist()),
        "communes_epci_from_geometry_file": int(from_geo.sum()),
        "communes_epci_disagreeing": int(disagree.sum()),
    }
    if orphan.any():
        logger.warning(
            "%d commune polygon(s) belong to no EPCI of the composition (islands?): %s",
            int(orphan.sum()),
            ", ".join(member.loc[orphan, "commune_code"].head(10)),
        )
    if disagree.any():
        logger.warning(
            "%d commune(s) have another EPCI in the geometry file than in the "
            "composition; the composition is used",
            int(disagree.sum()),
        )
    member = gpd.GeoDataFrame(member[~orphan], geometry="geometry", crs=communes.crs)
    dissolved = _dissolve(member).rename(columns={"commune_code": "n_communes"})
    out = dissolved[["epci_code", "n_communes", "geometry"]].merge(
        epci[["epci_code", "epci_name", "epci_nature"]], on="epci_code", how="left"
    )
    out["n_communes"] = out["n_communes"].astype("int32")
    cols = ["epci_code", "epci_name", "epci_nature", "n_communes", "geometry"]
    return gpd.GeoDataFrame(out[cols], geometry="geometry", crs=communes.crs), report


def _dissolve(member: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Union the communes of each EPCI, fast where they form a clean coverage.

    ADMIN EXPRESS communes share their boundaries exactly: a coverage union is
    then ten times faster than a general one. It assumes that, so each EPCI
    whose result is invalid or smaller than the sum of its communes (overlaps,
    unmatched edges) is unioned again the general way.
    """
    count = {"commune_code": "count"}
    try:
        fast = member.dissolve(
            by="epci_code", as_index=False, aggfunc=count, method="coverage"
        )
    except shapely.errors.GEOSException as exc:  # e.g. overlapping communes
        logger.info("communes are not a clean coverage (%s): general union", exc)
        return member.dissolve(by="epci_code", as_index=False, aggfunc=count)
    areas = member.geometry.area.groupby(member["epci_code"].to_numpy()).sum()
    geometry = fast.geometry.to_numpy()
    wrong = ~shapely.is_valid(geometry) | ~np.isclose(
        shapely.area(geometry), areas.reindex(fast["epci_code"]).to_numpy(), rtol=1e-9
    )
    if wrong.any():
        redo = set(fast.loc[wrong, "epci_code"])
        general = member[member["epci_code"].isin(redo)].dissolve(by="epci_code")
        geometry[wrong] = general.geometry.reindex(fast.loc[wrong, "epci_code"]).values
        fast = fast.set_geometry(geometry, crs=member.crs)
        logger.info(
            "%d EPCI unioned the general way (communes not a clean coverage)",
            int(wrong.sum()),
        )
    return fast


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
    available = set(epci.loc[is_metropole, "epci_code"])
    known = set(epci["epci_code"])
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
        See :func:`epci_adjacency`.

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
    pairs = epci_adjacency(epci, tolerance_m, min_shared_border_m)
    hops = border_hops(
        len(codes),
        pairs["epci_code"].map(position).to_numpy(dtype=np.int64),
        pairs["neighbour_code"].map(position).to_numpy(dtype=np.int64),
        [position[c] for c in metropole_codes],
        depth,
    )
    frames = []
    for metropole, row in zip(metropole_codes, hops, strict=True):
        reached = np.flatnonzero(np.isfinite(row) & (row <= depth))
        frames.append(
            pd.DataFrame(
                {
                    "metropole_code": metropole,
                    "epci_code": codes[reached],
                    "crown": row[reached].astype("int8"),
                }
            )
        )
    crowns = pd.concat(frames, ignore_index=True)
    crowns[["metropole_code", "epci_code"]] = crowns[
        ["metropole_code", "epci_code"]
    ].astype("string")
    for metropole in metropole_codes:
        counts = crowns.loc[
            crowns["metropole_code"] == metropole, "crown"
        ].value_counts()
        if counts.get(1, 0) == 0:
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
    polygons: dict[str, gpd.GeoDataFrame] = {}
    parts: list[MembershipReport] = []
    for territory, frame in communes.items():
        polygons[territory], part = epci_from_communes(frame, composition, epci)
        parts.append(part)
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
    centres = {
        territory: codes
        for territory, frame in epci.items()
        if (codes := [c for c in metropole_codes if c in set(frame["epci_code"])])
    }
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
