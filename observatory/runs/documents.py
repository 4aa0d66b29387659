"""The documents of a run: what people read without a GIS, and the QGIS project.

PNG maps, charts and a PDF atlas (:mod:`observatory.report.maps`), one
self-contained ``report.html`` (:mod:`observatory.report.html`) and the QGIS
project that opens ``observatory.gpkg`` (:mod:`observatory.layers.qgis_project`),
made from the run's layers and its manifest before anything is written.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from observatory.config import Config
from observatory.core.process import release_free_memory
from observatory.layers.files import RunFiles
from observatory.layers.geopackage import GEOPACKAGE_NAME
from observatory.layers.qgis_project import PROJECT_NAME, qgis_project
from observatory.runs.stages import RunLayers


def with_documents(
    config: Config, layers: RunLayers, files: RunFiles, manifest: dict[str, Any]
) -> RunFiles:
    """Add what people read to the run's files: maps, charts, atlas, report, project.

    Which of them depends on ``[output] formats``: the QGIS project opens the
    GeoPackage, so it comes with ``geopackage``; the rest with ``report``.
    """
    formats = config.output.formats
    documents: dict[str, bytes] = {}
    # The report lists the run's files: those about to be written.
    listed = dict(manifest, files=_file_names(files, formats))
    if "report" in formats:
        # The flows' freed memory, kept for reuse until now, would only add to
        # the figures' (core/process.py).
        release_free_memory()
        # Imported here: matplotlib alone costs a run without a report 0.3 s.
        from observatory.report.html import REPORT_FILE, report_html
        from observatory.report.render import render_maps

        documents.update(
            render_maps(
                layers.territories,
                listed,
                config.classification,
                config.reliability,
                config.output.report_processes,
            )
        )
        listed["files"] = sorted([*listed["files"], *documents, REPORT_FILE])
        page = report_html(
            layers.territories,
            layers.matrix,
            listed,
            config.classification,
            documents,
            config.reliability,
        )
        documents[REPORT_FILE] = page.encode("utf-8")
    if "geopackage" in formats:
        documents[PROJECT_NAME] = qgis_project(
            GEOPACKAGE_NAME, layers.territories, files.styles, listed
        )
    return replace(files, documents=documents)


def _file_names(files: RunFiles, formats: tuple[str, ...]) -> list[str]:
    names = [*files.texts, "manifest.json"]
    if "geoparquet" in formats:
        names += [f"{stem}.parquet" for stem in files.tables]
        names += [f"{stem}.qml" for stem in files.styles]
    if "geopackage" in formats:
        names += [GEOPACKAGE_NAME, PROJECT_NAME]
    return sorted(names)
