"""The flow systems' columns and the ``dominant_flows`` lines, on small frames made here."""

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from observatory.config import ReliabilitySection
from observatory.config.territories import TerritoriesSection
from observatory.layers.flow_layers import (
    dominant_flow_lines,
    with_epci_flow_columns,
    with_metropole_flow_columns,
)
from observatory.systems.dominant import dominant_flows
from observatory.systems.functional import functional_crowns

M, A, B, C = "200000001", "200000002", "200000003", "200000004"
NAMES = pd.Series({M: "Métropole", A: "CC A", B: "CC B", C: "CC C"})

#: M the métropole; A its crown; B beyond it, sending 20 % to M (hidden crown);
#: C beyond it too, with no polygon (outside the territory's files).
FLOWS = pd.DataFrame(
    [
        (M, M, 900.0),
        (M, A, 100.0),
        (A, A, 300.0),
        (A, M, 650.0),
        (A, B, 50.0),
        (B, B, 600.0),
        (B, M, 200.0),
        (B, A, 200.0),
        (C, C, 100.0),
        (C, B, 300.0),
    ],
    columns=["origin_code", "destination_code", "workers"],
)


def _polygons() -> gpd.GeoDataFrame:
    boxes = [shapely.box(x, 0, x + 10_000, 10_000) for x in (0, 10_000, 30_000)]
    return gpd.GeoDataFrame({"epci_code": [M, A, B]}, geometry=boxes, crs=2154)


def _rows() -> pd.DataFrame:
    crowns = pd.DataFrame(
        {"metropole_code": [M, M], "epci_code": [M, A], "crown": [0, 1]}
    )
    return functional_crowns(FLOWS, crowns, TerritoriesSection())


def test_dominant_lines_join_representative_points_of_the_territory_only():
    forest = dominant_flows(FLOWS)
    assert set(forest.edges["origin_code"]) == {A, B, C}
    lines = dominant_flow_lines(
        forest.edges, _polygons(), NAMES, (2022, "jobs"), ReliabilitySection()
    )
    # C has no polygon: its dominant flow (to B) is not drawn.
    assert list(lines["origin_code"]) == [A, B]
    assert list(lines["destination_code"]) == [M, M]
    assert lines.crs.to_epsg() == 2154
    points = _polygons().set_index("epci_code").representative_point()
    first = lines.geometry.iloc[0]
    assert shapely.equals(shapely.get_point(first, 0), points[A])
    assert shapely.equals(shapely.get_point(first, 1), points[M])
    assert list(lines["reliability"]) == ["reliable", "usable"]  # 650, 200 workers
    assert list(lines["terminal_name"]) == ["Métropole", "Métropole"]
    assert set(lines["vintage"]) == {2022}


def test_dominant_lines_of_a_territory_without_any_are_an_empty_layer():
    forest = dominant_flows(FLOWS)
    polygons = _polygons().iloc[:1]  # the métropole alone
    lines = dominant_flow_lines(
        forest.edges, polygons, NAMES, (2022, "jobs"), ReliabilitySection()
    )
    assert len(lines) == 0
    assert lines.crs.to_epsg() == 2154


def test_epci_columns_flag_the_hidden_crown_and_stay_null_without_aav():
    rows = _rows()
    assert list(rows.loc[rows["hidden_crown"], "epci_code"]) == [B]
    layer = gpd.GeoDataFrame(
        {
            "metropole_code": [M, M, M],
            "epci_code": [M, A, B],
            "crown": [0.0, 1.0, np.nan],
        },
        geometry=list(_polygons().geometry),
        crs=2154,
    )
    out = with_epci_flow_columns(layer, rows, dominant_flows(FLOWS).nodes, NAMES)
    assert list(out["placed_by"]) == ["metropole", "both", "flows"]
    assert list(out["hidden_crown"]) == [False, False, True]
    assert list(out["dominant_destination_name"]) == ["CC A", "Métropole", "Métropole"]
    assert list(out["in_metropole_tree"]) == [True, True, True]
    assert out["aav_code"].isna().all()
    assert out["aav_share"].isna().all()
    assert out["in_aav"].isna().all()
    assert out.geometry.equals(layer.geometry)


def test_metropole_columns_count_the_rules_and_null_the_aav_without_it():
    rows = _rows()
    layer = gpd.GeoDataFrame(
        {"metropole_code": [M]}, geometry=[_polygons().geometry[0]], crs=2154
    )
    measures = pd.DataFrame(
        {
            "metropole_code": [M],
            **{
                c: [0.5]
                for c in (
                    "employed_residents",
                    "jobs",
                    "internal_workers",
                    "between_epci_flow",
                    "between_crown_flow",
                    "polycentricity_share",
                    "self_containment_share",
                    "job_containment_share",
                )
            },
        }
    )
    out = with_metropole_flow_columns(
        layer, rows, measures, None, None, dominant_flows(FLOWS).nodes, "both", NAMES
    )
    row = out.iloc[0]
    assert row["crown_rule"] == "both"
    assert (row["n_epci_contiguity"], row["n_epci_flows"]) == (2, 3)
    assert row["n_epci_hidden_crown"] == 1
    assert row["jaccard_contiguity_flows"] == 2 / 3
    assert row["metropole_node_role"] == "dominant"
    assert row["metropole_tree_epci"] == 4  # M, A, B, and C through B
    assert pd.isna(row["aav_code"])
    assert np.isnan(row["jaccard_flows_aav"])
