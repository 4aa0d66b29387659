"""The files of a run folder, ready to publish: every layer as a typed Arrow table.

Each territory's map layers become GeoParquet tables named by :func:`layer_stem`
(``flows``, ``flows_REU``...) in its official CRS, each with its QGIS style; the
flow matrix is a plain table (styled too: aliases, value maps); the data
dictionary goes with them. Writing them is :mod:`observatory.runs.publish`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow as pa

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.geography import MAINLAND, TERRITORY_EPSG
from observatory.layers.geoparquet import geoparquet_table, plain_table
from observatory.layers.schemas import data_dictionary_csv, layer_fields
from observatory.layers.styles import layer_styles


def layer_stem(layer: str, territory: str) -> str:
    """Return the file stem of a map layer: ``flows`` (mainland), ``flows_REU``..."""
    return layer if territory == MAINLAND else f"{layer}_{territory}"


@dataclass(frozen=True, slots=True)
class RunFiles:
    """The tables and side files of a run folder.

    ``tables`` maps a file stem to its Arrow table and the EPSG code of a
    spatial layer (None for a plain table); ``styles`` maps a file stem to its
    QGIS style (QML); ``texts`` maps a file name to its content;
    ``documents`` maps a file name (``maps/<code>.png``, ``report.html``...) to
    the bytes of the maps, charts, report and QGIS project made from them.
    """

    tables: dict[str, tuple[pa.Table, int | None]]
    styles: dict[str, str]
    texts: dict[str, str]
    documents: dict[str, bytes] = field(default_factory=dict)

    def rows(self) -> dict[str, int]:
        """Return the row count of each table, by file stem."""
        return {stem: table.num_rows for stem, (table, _) in self.tables.items()}


def run_files(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    matrix: pd.DataFrame,
    classification: ClassificationSection,
    reliability: ReliabilitySection,
    provenance: Mapping[str, Any],
) -> RunFiles:
    """Convert the layers of every territory and the flow matrix to typed tables.

    Parameters
    ----------
    territory_layers
        Map layers by territory, then by layer name.
    matrix
        The named flow matrix of every system.
    classification
        The rules (the métropoles layer has one class count per class; the EPCI
        style has one category per class).
    reliability
        INSEE's thresholds, which the flow lines' style draws as width classes.
    provenance
        Stored in the metadata of every table.
    """
    fields = layer_fields(classification)
    style_of = layer_styles(classification, reliability)
    tables: dict[str, tuple[pa.Table, int | None]] = {}
    styles = {}
    for territory, layers in territory_layers.items():
        epsg = TERRITORY_EPSG[territory]
        for layer, frame in layers.items():
            stem = layer_stem(layer, territory)
            tables[stem] = (geoparquet_table(frame, fields[layer], provenance), epsg)
            styles[stem] = style_of[layer]
    tables["flow_matrix"] = (
        plain_table(matrix, fields["flow_matrix"], provenance),
        None,
    )
    styles["flow_matrix"] = style_of["flow_matrix"]
    texts = {"data_dictionary.csv": data_dictionary_csv(fields)}
    return RunFiles(tables, styles, texts)
