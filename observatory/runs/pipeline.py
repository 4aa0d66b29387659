"""Wire the stages of a run and time them, from fetch to write."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from observatory import __version__
from observatory.config import Config
from observatory.core.errors import DataError
from observatory.core.files import sha256_file
from observatory.core.timing import new_run_id, stage
from observatory.geography import (
    TERRITORY_CRS,
    TERRITORY_EPSG,
    TERRITORY_NAMES,
    place_names,
    territory_of,
)
from observatory.layers.geoparquet import (
    data_dictionary_csv,
    geoparquet_table,
    layer_stem,
    plain_table,
    qgis_aliases,
)
from observatory.layers.schemas import layer_fields
from observatory.readers.base_flux import read_base_flux
from observatory.readers.communes import communes_by_territory, read_communes
from observatory.readers.epci import EpciComposition, read_epci_composition
from observatory.runs.publish import publish
from observatory.sources.inputs import (
    GEOGRAPHY_ROLES,
    ResolvedInput,
    input_files,
    resolve_inputs,
    role_inputs,
)
from observatory.systems.classify import NO_DATA_CLASS, classify_epci
from observatory.systems.crowns import (
    build_crowns,
    epci_from_communes,
    select_metropoles,
)
from observatory.systems.flows import (
    ORDER_OF_MAGNITUDE,
    compare_vintages,
    flows_epci,
    flows_epci_by_mode,
    flows_with_previous,
    reliability_class,
    system_matrix,
)

logger = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run did: its outputs, the systems it built, timings and warnings.

    ``output_dir`` is the run folder ``<output>/<run_id>/`` the files were
    published in.
    """

    run_id: str
    output_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    systems: list[dict[str, Any]] = field(default_factory=list)
    flows: dict[str, Any] = field(default_factory=dict)
    flows_previous: dict[str, Any] = field(default_factory=dict)
    fd: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    synthetic_flows: bool = False


def describe_inputs(
    inputs: dict[str, ResolvedInput],
    config: Config,
    vintages: dict[str, int | None],
) -> list[dict[str, Any]]:
    """Return path, size, sha256 and provenance of every input file.

    A shapefile counts all its parts; an input fetched from the catalogue carries
    the provenance recorded at download (URL, final URL, ETag, fetch time...).
    A file whose sha256 was measured already (``ResolvedInput.digests``, by the
    fetch or the refresh fingerprint) is not hashed again.
    """
    records = []
    for role, resolved in inputs.items():
        for part in input_files(resolved):
            record: dict[str, Any] = {
                "role": role,
                "path": str(part),
                "size": part.stat().st_size,
                "sha256": resolved.digests.get(str(part)) or sha256_file(part),
            }
            if role in vintages:
                record["vintage"] = vintages[role]
                record["synthetic"] = config.run.synthetic_flows
            if resolved.role in GEOGRAPHY_ROLES and config.inputs.geography:
                record["geography"] = config.inputs.geography
            if resolved.source_id:
                record["source"] = resolved.source_id
                record["provenance"] = resolved.provenance
            records.append(record)
    return records


def _flow_lines(
    flows: pd.DataFrame, crowns: pd.DataFrame, epci: gpd.GeoDataFrame, config: Config
) -> gpd.GeoDataFrame:
    points = epci.set_index("epci_code").geometry.representative_point()
    xy = pd.DataFrame({"x": points.x, "y": points.y})
    present = (flows["workers"] > 0) | (flows["workers_previous"].fillna(0) > 0)
    pairs = flows[(flows["origin_code"] != flows["destination_code"]) & present]
    o = crowns.rename(columns={"epci_code": "origin_code", "crown": "origin_crown"})
    d = crowns.rename(
        columns={"epci_code": "destination_code", "crown": "destination_crown"}
    )
    lines = pairs.merge(o, on="origin_code").merge(
        d, on=["metropole_code", "destination_code"]
    )
    lines["flow_type"] = np.select(
        [lines["destination_crown"] == 0, lines["origin_crown"] == 0],
        ["to_metropole", "from_metropole"],
        default="between_crowns",
    )
    lines["reliability"] = reliability_class(lines["workers"], config.reliability)
    start = xy.reindex(lines["origin_code"]).to_numpy()
    end = xy.reindex(lines["destination_code"]).to_numpy()
    geometry = shapely.linestrings(np.stack([start, end], axis=1)) if len(lines) else []
    return gpd.GeoDataFrame(lines, geometry=geometry, crs=epci.crs)


def _metropoles_layer(
    indicators: pd.DataFrame,
    lines: pd.DataFrame,
    epci: gpd.GeoDataFrame,
    config: Config,
) -> gpd.GeoDataFrame:
    rows = []
    class_codes = [r.class_code for r in config.classification.rules] + [NO_DATA_CLASS]
    for metropole, part in indicators.groupby("metropole_code", sort=True):
        crown = part["crown"]
        me = part[crown == 0].iloc[0]
        row: dict[str, Any] = {
            "metropole_code": metropole,
            "metropole_name": me["metropole_name"],
            "employed_residents": me["employed_residents"],
            "jobs": me["jobs"],
            "self_containment_share": me["self_containment_share"],
        }
        for k in (1, 2):
            ring = part[crown == k]
            residents = ring["employed_residents"].sum()
            row[f"n_epci_crown{k}"] = len(ring)
            row[f"employed_residents_crown{k}"] = residents
            row[f"flow_crown{k}_to_metropole"] = ring["flow_to_metropole"].sum()
            row[f"flow_metropole_to_crown{k}"] = ring["flow_from_metropole"].sum()
            row[f"dependence_share_crown{k}"] = (
                row[f"flow_crown{k}_to_metropole"] / residents
                if residents > 0
                else np.nan
            )
        system_lines = lines[lines["metropole_code"] == metropole]
        row["n_flows"] = len(system_lines)
        row["n_flows_order_of_magnitude"] = int(
            (system_lines["reliability"] == ORDER_OF_MAGNITUDE).sum()
        )
        counts = part.loc[crown > 0, "epci_class"].value_counts()
        for code in class_codes:
            row[f"n_class_{code}"] = int(counts.get(code, 0))
        rows.append(row)
    frame = pd.DataFrame(rows)
    geometry = (
        epci.set_index("epci_code").geometry.reindex(frame["metropole_code"]).values
    )
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=epci.crs)


def _epci_by_territory(
    communes: dict[str, gpd.GeoDataFrame], composition: EpciComposition
) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, Any]]:
    """Dissolve each territory's communes into EPCI polygons, in its own CRS."""
    epci = {}
    report: dict[str, Any] = {}
    for territory, frame in communes.items():
        epci[territory], part = epci_from_communes(
            frame, composition.composition, composition.epci
        )
        for key, value in part.items():
            report[key] = report.get(key, type(value)()) + value
    codes = pd.concat([frame["epci_code"] for frame in epci.values()])
    if codes.duplicated().any():
        split = sorted(set(codes[codes.duplicated()]))
        msg = (
            f"EPCI {split[:5]} have member communes in several territories of the "
            "communes file(s): check the composition file"
        )
        raise DataError(msg)
    report["communes_without_epci"] = sorted(report.get("communes_without_epci", []))
    return epci, report


def _territory_layers(
    epci: gpd.GeoDataFrame,
    crowns: pd.DataFrame,
    indicators: pd.DataFrame,
    pairs: pd.DataFrame,
    pair_modes: pd.DataFrame | None,
    names: pd.Series,
    vintages: tuple[int | None, int | None],
    config: Config,
) -> dict[str, gpd.GeoDataFrame]:
    """Build the three map layers of the systems of one territory, in its CRS."""
    lines = _with_pair_modes(_flow_lines(pairs, crowns, epci, config), pair_modes)
    lines["vintage"], lines["previous_vintage"] = vintages
    lines["metropole_name"] = lines["metropole_code"].map(names)
    lines["origin_name"] = lines["origin_code"].map(names)
    lines["destination_name"] = lines["destination_code"].map(names)
    lines = lines.sort_values(
        ["metropole_code", "origin_code", "destination_code"], ignore_index=True
    )
    epci_layer = gpd.GeoDataFrame(
        indicators,
        geometry=epci.set_index("epci_code")
        .geometry.reindex(indicators["epci_code"])
        .values,
        crs=epci.crs,
    )
    return {
        "epci_indicators": epci_layer,
        "flows": lines,
        "metropoles": _metropoles_layer(epci_layer, lines, epci, config),
    }


@dataclass
class VintageSystems:
    """One census vintage aggregated to EPCI, and the systems computed from it."""

    flows: pd.DataFrame
    report: dict[str, Any]
    harmonisation: dict[str, Any] | None
    indicators: pd.DataFrame
    matrix: pd.DataFrame | None


def _vintage_flows(
    table: pd.DataFrame,
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any] | None]:
    """Harmonise one vintage's commune flows (when a passage is given), sum by EPCI."""
    from observatory.systems.harmonise import harmonise_flows

    passage, target = harmonisation
    harmonised = None
    if passage is not None and target is not None:
        table, harmonised = harmonise_flows(table, passage, target)
    flows, report = flows_epci(table, commune_epci)
    return flows, report, harmonised


def _systems_by_vintage(
    tables: Mapping[str, pd.DataFrame],
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    commune_epci: pd.DataFrame,
    crowns: pd.DataFrame,
    config: Config,
) -> dict[str, VintageSystems]:
    """Compute every (vintage, métropole) system as one dask graph.

    Each vintage is harmonised and summed by EPCI once; each métropole's matrix
    (current vintage) and indicators (every vintage) are then separate tasks, on
    the scheduler of ``[compute]`` (a dask.distributed cluster included).
    """
    import contextlib

    import dask

    from observatory.core.compute import computer
    from observatory.systems.flows import epci_totals, pair_flows, system_indicators

    def shared(value: Any, name: str) -> Any:
        # Named: dask would otherwise hash large frames to name them.
        return dask.delayed(value, name=f"{name}-{id(value)}", pure=True)

    systems = dict(list(crowns.groupby("metropole_code", sort=False)))
    epci_table = shared(commune_epci, "commune-epci")
    passage = shared(harmonisation, "passage")
    thresholds = config.reliability
    graph: dict[str, Any] = {}
    for key, table in tables.items():
        flows, report, harmonised = dask.delayed(_vintage_flows, nout=3)(
            shared(table, key), passage, epci_table, dask_key_name=f"{key}-epci"
        )
        totals = dask.delayed(epci_totals)(flows, dask_key_name=f"{key}-totals")
        pairs = dask.delayed(pair_flows)(flows, dask_key_name=f"{key}-pairs")
        graph[key] = {
            "flows": flows,
            "report": report,
            "harmonisation": harmonised,
            "indicators": [
                dask.delayed(system_indicators)(
                    pairs,
                    totals,
                    part,
                    thresholds,
                    dask_key_name=f"{key}-indicators-{metropole}",
                )
                for metropole, part in systems.items()
            ],
            "matrix": (
                [
                    dask.delayed(system_matrix)(
                        flows,
                        systems[metropole],
                        dask_key_name=f"{key}-matrix-{metropole}",
                    )
                    for metropole in sorted(systems)
                ]
                if key == "flows"
                else []
            ),
        }
    with contextlib.ExitStack() as stack:
        compute = computer(
            config.compute.scheduler, True, stack
        )  # bar on a terminal only
        (done,) = compute(graph)
    return {
        key: VintageSystems(
            flows=part["flows"],
            report=part["report"],
            harmonisation=part["harmonisation"],
            indicators=pd.concat(part["indicators"], ignore_index=True),
            matrix=(
                pd.concat(part["matrix"], ignore_index=True) if part["matrix"] else None
            ),
        )
        for key, part in done.items()
    }


def _detailed_flows(
    path: Path,
    config: Config,
    vintage: int | None,
    base_flux: pd.DataFrame,
    communes: dict[str, gpd.GeoDataFrame],
    commune_epci: pd.DataFrame,
    harmonisation: tuple[pd.DataFrame | None, set[str] | None],
    warnings: list[str],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read FD_MOBPRO out of core and return modes, distances and person-km by EPCI pair."""
    from observatory.readers import fd_mobpro as mobpro
    from observatory.systems.harmonise import harmonise_codes

    by_mode, read_report = mobpro.read_fd(
        path,
        config.inputs.fd_vintage,
        scheduler=config.compute.scheduler,
        blocksize=config.compute.blocksize,
        progress=True,  # shown only on a terminal (observatory.core.compute)
    )
    check = mobpro.compare_with_base_flux(by_mode, base_flux)
    if read_report.get("vintage") != vintage:
        warnings.append(
            f"{path}: the detailed file is RP {read_report.get('vintage')}, the base "
            f"flux RP {vintage}: modal shares come from another census"
        )
    elif not check["consistent"]:
        warnings.append(
            f"{path}: flows summed from the detailed file differ from the base flux "
            f"on {check['pairs_above_tolerance']} commune pair(s) (largest gap "
            f"{check['max_abs_gap']:.1f} workers); see the manifest (fd_mobpro)"
        )
    passage, target = harmonisation
    if passage is not None and target is not None:
        keys = ["origin_commune", "destination_commune", "mode"]
        by_mode = (
            by_mode.assign(
                origin_commune=harmonise_codes(
                    by_mode["origin_commune"], passage, target
                ),
                destination_commune=harmonise_codes(
                    by_mode["destination_commune"], passage, target
                ),
            )
            .groupby(keys, as_index=False)["workers"]
            .sum()
        )
    # Each territory's points in its own CRS (metres that mean something there).
    points = pd.concat(
        [mobpro.commune_points(frame, crs=None) for frame in communes.values()]
    )
    km = mobpro.person_km(by_mode, points)
    # Points of two territories are in two CRS: no straight line between them.
    across = territory_of(km["origin_commune"]) != territory_of(
        km["destination_commune"]
    )
    km.loc[across.fillna(False).to_numpy(), ["distance_km", "person_km"]] = np.nan
    by_pair = flows_epci_by_mode(km, commune_epci)
    return _pair_modes(by_pair), {"read": read_report, "base_flux_check": check}


def _pair_modes(by_mode: pd.DataFrame) -> pd.DataFrame:
    """Modal shares, straight-line distance and person-km of each EPCI pair."""
    from observatory.readers.fd_mobpro import MODES, modal_split

    keys = ["origin_code", "destination_code"]
    commune_keys = {
        "origin_code": "origin_commune",
        "destination_code": "destination_commune",
    }
    split = modal_split(
        by_mode[[*keys, "mode", "workers"]].rename(columns=commune_keys)
    )
    split = split.rename(columns={v: k for k, v in commune_keys.items()}).drop(
        columns="workers"
    )
    person_km = by_mode.pivot_table(
        index=keys, columns="mode", values="person_km", aggfunc="sum"
    ).reindex(columns=list(MODES))
    travelling = by_mode[by_mode["mode"] != "none"].groupby(keys)["workers"].sum()
    totals = person_km.sum(axis=1, min_count=1)
    extra = pd.DataFrame(
        {
            "distance_km": totals / travelling.reindex(totals.index),
            "person_km": totals,
            **{
                f"{m}_person_km": person_km[m].fillna(0.0) for m in MODES if m != "none"
            },
        }
    ).reset_index()
    return split.merge(extra, on=keys, how="left")


def _with_pair_modes(
    lines: gpd.GeoDataFrame, pair_modes: pd.DataFrame | None
) -> gpd.GeoDataFrame:
    from observatory.readers.fd_mobpro import MODES

    columns = [f"{m}_share" for m in MODES] + ["distance_km", "person_km"]
    columns += [f"{m}_person_km" for m in MODES if m != "none"]
    if pair_modes is None:
        return lines.assign(**dict.fromkeys(columns, np.nan))
    keys = ["origin_code", "destination_code"]
    merged = lines.merge(pair_modes[[*keys, *columns]], on=keys, how="left")
    return gpd.GeoDataFrame(merged, geometry=lines.geometry.name, crs=lines.crs)


def _with_metropole_modes(
    indicators: pd.DataFrame, pair_modes: pd.DataFrame | None
) -> pd.DataFrame:
    """Add the modal shares of the flows to and from the métropole (null for crown 0)."""
    from observatory.readers.fd_mobpro import MODES

    out = indicators.copy()
    shares = [f"{m}_share" for m in MODES]
    for side, origin, destination in (
        ("to", "epci_code", "metropole_code"),
        ("from", "metropole_code", "epci_code"),
    ):
        names = {s: f"{side}_metropole_{s}" for s in shares}
        if pair_modes is None:
            for name in names.values():
                out[name] = np.nan
            continue
        part = pair_modes[["origin_code", "destination_code", *shares]].rename(
            columns={"origin_code": origin, "destination_code": destination, **names}
        )
        out = out.merge(part, on=["epci_code", "metropole_code"], how="left")
        out.loc[out["crown"] == 0, list(names.values())] = np.nan
    return out


def run(
    config: Config,
    output_dir: Path,
    offline: bool = False,
    *,
    inputs: dict[str, ResolvedInput] | None = None,
    run_id: str | None = None,
    started: datetime | None = None,
    timings: dict[str, float] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
) -> RunReport:
    """Run the whole job described by ``config`` and publish its run folder.

    The layers are published as ``output_dir/<run_id>/`` (see
    :func:`observatory.runs.publish.publish`); switching ``output_dir/latest`` to it is
    left to :func:`observatory.runs.refresh.execute`, which calls this function.

    Parameters
    ----------
    config
        A loaded configuration.
    output_dir
        Folder holding the run folders.
    offline
        Take catalogue sources from the download cache only.
    inputs
        Inputs resolved already (by the caller's fetch stage); resolved here
        when None.
    run_id, started
        Identity of the run (made up here when None).
    timings
        Stage timings measured already by the caller; this run's are added.
    manifest_extra
        Keys added to the manifest (the refresh fingerprint, the reasons).

    Returns
    -------
    RunReport
        Files written, row counts, the métropole systems, timings and warnings.
    """
    started = started or datetime.now(UTC)
    run_id = run_id or new_run_id(started)
    report = RunReport(
        run_id=run_id,
        output_dir=output_dir / run_id,
        synthetic_flows=config.run.synthetic_flows,
    )
    if timings is not None:
        report.timings = timings  # the caller's dict: it sees stages as they end
    timings = report.timings
    logger.info("run %s: config %s", run_id, config.path)

    if inputs is None:
        with stage("fetch", timings):
            inputs = resolve_inputs(config, offline=offline)

    with stage("read", timings):
        layers = []
        for resolved in role_inputs(inputs, "communes"):
            layer = read_communes(
                resolved.path, config.inputs.communes_layer, target_crs=None
            )
            logger.info("%s: %d communes (%s)", resolved.path, len(layer), layer.crs)
            layers.append((resolved.path, layer))
        communes, outside = communes_by_territory(layers)
        if outside:
            report.warnings.append(
                f"{len(outside)} commune(s) outside the territories of ADMIN EXPRESS "
                "(overseas collectivities) set aside: " + ", ".join(outside[:10])
            )
        epci_list = inputs["epci_list"].path if "epci_list" in inputs else None
        composition = read_epci_composition(inputs["epci_composition"].path, epci_list)
        logger.info(
            "%s: %d EPCI, %d communes",
            inputs["epci_composition"].path,
            len(composition.epci),
            len(composition.composition),
        )
        commune_flows = read_base_flux(inputs["flows"].path)
        vintage = config.inputs.flows_vintage or commune_flows.vintage
        previous = (
            read_base_flux(inputs["flows_previous"].path)
            if "flows_previous" in inputs
            else None
        )
        if previous is not None and previous.vintage == vintage:
            msg = (
                f"{inputs['flows_previous'].path}: the previous flows have the same "
                f"vintage ({vintage}) as {inputs['flows'].path}"
            )
            raise DataError(msg)
        if (
            config.inputs.geography
            and vintage
            and config.inputs.geography != vintage + 2
            and "commune_passage" not in inputs
        ):
            report.warnings.append(
                f"census vintage {vintage} is published in the geography of {vintage + 2}, "
                f"the config states geography {config.inputs.geography} and gives no "
                "commune_passage to harmonise codes: some may not match"
            )

    with stage("territories", timings):
        epci, membership = _epci_by_territory(communes, composition)
        if membership["communes_without_epci"]:
            report.warnings.append(
                f"{len(membership['communes_without_epci'])} commune polygon(s) in no EPCI: "
                + ", ".join(membership["communes_without_epci"][:10])  # type: ignore[index]
            )
        attributes = pd.concat(
            [frame.drop(columns="geometry") for frame in epci.values()]
        )
        t = config.territories
        metropoles = select_metropoles(attributes, t.metropoles, t.poles)
        if not metropoles:
            msg = (
                "no métropole (NATURE_EPCI ME or METLYON) has a polygon in the "
                "communes file(s), and [territories] poles is empty"
            )
            raise DataError(msg)
        # The systems of each territory, in the order of ``metropoles``.
        centres = {
            territory: codes
            for territory, frame in epci.items()
            if (codes := [c for c in metropoles if c in set(frame["epci_code"])])
        }
        crowns = pd.concat(
            [
                build_crowns(
                    epci[territory],
                    codes,
                    t.crown_depth,
                    t.contiguity_tolerance_m,
                    t.min_shared_border_m,
                )
                for territory, codes in centres.items()
            ],
            ignore_index=True,
        )
        systems_territory = {c: t_ for t_, codes in centres.items() for c in codes}
        membership["territories"] = {
            territory: {
                "name": TERRITORY_NAMES[territory],
                "crs": TERRITORY_CRS[territory],
                "communes": len(communes[territory]),
                "epci": len(frame),
                "systems": sorted(centres.get(territory, [])),
            }
            for territory, frame in epci.items()
        }

    raw_base = commune_flows.table  # the detailed file is checked against it as read
    passage = target = None
    if "commune_passage" in inputs:
        with stage("harmonise", timings):
            from observatory.readers.passage import read_commune_passage

            # Events after the target geography's 1 January would move codes to
            # communes that do not exist yet in the composition.
            until = (
                date(config.inputs.geography, 1, 1) if config.inputs.geography else None
            )
            if until is None:
                report.warnings.append(
                    "[inputs] geography is not set: every event of the commune passage "
                    "file is applied, whatever its date"
                )
            passage = read_commune_passage(inputs["commune_passage"].path, until=until)
            target = set(composition.composition["commune_code"])

    with stage("flows", timings):
        tables = {"flows": commune_flows.table}
        if previous is not None:
            tables["flows_previous"] = previous.table
        by_vintage = _systems_by_vintage(
            tables, (passage, target), composition.composition, crowns, config
        )
        current = by_vintage["flows"]
        flows, matrix, indicators = current.flows, current.matrix, current.indicators
        report.flows = current.report
        for side in ("origin", "destination"):
            codes = report.flows[f"unmatched_{side}_codes"]
            if codes:
                report.warnings.append(
                    f"{len(codes)} {side} commune code(s) match no EPCI "  # type: ignore[arg-type]
                    f"({report.flows[f'unmatched_{side}_workers']} workers kept as UNMATCHED)"
                )
        flows_previous = indicators_previous = None
        if previous is not None:
            earlier = by_vintage["flows_previous"]
            flows_previous, indicators_previous = earlier.flows, earlier.indicators
            report.flows_previous = earlier.report
        harmonisation = {
            key: result.harmonisation
            for key, result in by_vintage.items()
            if result.harmonisation is not None
        }
        indicators = compare_vintages(indicators, indicators_previous)
        pairs = flows_with_previous(flows, flows_previous)
        previous_vintage = previous.vintage if previous is not None else None

    pair_modes = None
    if "fd_mobpro" in inputs:
        with stage("fd_mobpro", timings):
            pair_modes, report.fd = _detailed_flows(
                inputs["fd_mobpro"].path,
                config,
                vintage,
                raw_base,
                communes,
                composition.composition,
                (passage, target),
                report.warnings,
            )
    indicators = _with_metropole_modes(indicators, pair_modes)

    with stage("classify", timings):
        indicators = classify_epci(indicators, config.classification)

    with stage("layers", timings):
        names = pd.Series(
            composition.epci["epci_name"].to_numpy(),
            index=composition.epci["epci_code"].to_numpy(),
        )
        props = attributes.set_index("epci_code")
        indicators["vintage"] = vintage
        indicators["previous_vintage"] = previous_vintage
        indicators["metropole_name"] = indicators["metropole_code"].map(names)
        indicators["epci_name"] = indicators["epci_code"].map(names)
        indicators["epci_nature"] = indicators["epci_code"].map(props["epci_nature"])
        indicators["n_communes"] = indicators["epci_code"].map(props["n_communes"])
        indicators["main_other_destination_name"] = indicators[
            "main_other_destination_code"
        ].map(names)
        territory_layers = {
            territory: _territory_layers(
                epci[territory],
                crowns[crowns["metropole_code"].isin(codes)],
                indicators[indicators["metropole_code"].isin(codes)],
                pairs,
                pair_modes,
                names,
                (vintage, previous_vintage),
                config,
            )
            for territory, codes in centres.items()
        }
        reliability = pd.concat(
            [layers["flows"]["reliability"] for layers in territory_layers.values()]
        )
        fragile = int((reliability == ORDER_OF_MAGNITUDE).sum())
        if fragile:
            report.warnings.append(
                f"{fragile} of {len(reliability)} flow line(s) are below INSEE's usable "
                f"threshold ({config.reliability.usable_min:g} workers): an order of "
                "magnitude only (reliability = order_of_magnitude)"
            )
        matrix["origin_name"] = place_names(matrix["origin_code"], names)
        matrix["destination_name"] = place_names(matrix["destination_code"], names)

    with stage("export", timings):
        fields = layer_fields(config.classification)
        input_records = describe_inputs(
            inputs,
            config,
            {"flows": vintage, "flows_previous": previous_vintage},
        )
        provenance = {
            "run_id": run_id,
            "package": f"observatory {__version__}",
            "created": started.isoformat(timespec="seconds"),
            "config": str(config.path),
            "config_sha256": config.sha256,
            "flows_vintage": vintage,
            "synthetic_flows": config.run.synthetic_flows,
            "inputs": [
                {k: r[k] for k in ("role", "path", "sha256")} for r in input_records
            ],
        }
        tables: dict[str, tuple[pa.Table, int | None]] = {}
        texts = {}
        for territory, layers in territory_layers.items():
            epsg = TERRITORY_EPSG[territory]
            for layer, frame in layers.items():
                stem = layer_stem(layer, territory)
                table = geoparquet_table(frame, fields[layer], provenance)
                tables[stem] = (table, epsg)
                texts[f"{stem}.qml"] = qgis_aliases(fields[layer])
        tables["flow_matrix"] = (
            plain_table(matrix, fields["flow_matrix"], provenance),
            None,
        )
        texts["data_dictionary.csv"] = data_dictionary_csv(fields)
        report.systems = _systems_summary(crowns, names, systems_territory)
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "package": {"name": "observatory", "version": __version__},
            "python": platform.python_version(),
            "started": started.isoformat(timespec="seconds"),
            "config": {
                "path": str(config.path),
                "sha256": config.sha256,
                "content": config.raw,
            },
            "classification": {
                "path": str(config.classification.source),
                "rules": [
                    {"class": r.class_code, "when": r.describe()}
                    for r in config.classification.rules
                ],
            },
            "synthetic_flows": config.run.synthetic_flows,
            "flows_vintage": vintage,
            "previous_vintage": previous_vintage,
            "geography": config.inputs.geography,
            "inputs": input_records,
            "systems": report.systems,
            "territories": membership,
            "flows": report.flows,
            "flows_previous": report.flows_previous,
            "fd_mobpro": report.fd,
            "harmonisation": harmonisation,
            "warnings": report.warnings,
            **(manifest_extra or {}),
        }

    manifest["timings_s"] = dict(timings)  # publish adds the time spent writing
    with stage("write", timings):
        report.files = publish(output_dir, run_id, tables, texts, manifest)
        report.rows = {stem: table.num_rows for stem, (table, _) in tables.items()}
    return report


def _systems_summary(
    crowns: pd.DataFrame, names: pd.Series, territories: Mapping[str, str]
) -> list[dict[str, Any]]:
    summary = []
    for metropole, part in crowns.groupby("metropole_code", sort=True):
        counts = part["crown"].value_counts()
        summary.append(
            {
                "metropole_code": metropole,
                "metropole_name": names.get(metropole),
                "territory": territories[metropole],
                "epci_per_crown": {
                    int(k): int(counts[k]) for k in sorted(counts.index) if k > 0
                },
            }
        )
    return summary
