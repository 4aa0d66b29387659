"""What every map, page and report says about a run, read from its manifest.

Whether its flows are synthetic, and the census vintages of its inputs: the QGIS
project (:mod:`observatory.layers.qgis_project`), the maps and the report
(:mod:`observatory.report`) all word their notices and sources from these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_synthetic(manifest: Mapping[str, Any]) -> bool:
    """Tell whether the manifest says the run's flows are synthetic (anywhere)."""
    run = manifest.get("run")
    content = (manifest.get("config") or {}).get("content") or {}
    return bool(
        manifest.get("synthetic_flows")
        or (isinstance(run, Mapping) and run.get("synthetic_flows"))
        or (content.get("run") or {}).get("synthetic_flows")
        or any(r.get("synthetic") for r in manifest.get("inputs") or [])
    )


def input_role(record: Mapping[str, Any]) -> str:
    """Return the role of a manifest input record (``communes[2]`` -> ``communes``)."""
    return str(record.get("role", "")).split("[")[0]


def input_vintages(inputs: Sequence[Mapping[str, Any]], role: str) -> str:
    """Return the census vintages of the inputs of ``role``: ``2022``, ``2017 et 2018``."""
    found = {
        str(r["vintage"]) for r in inputs if input_role(r) == role and r.get("vintage")
    }
    return " et ".join(sorted(found))


def census_text(manifest: Mapping[str, Any]) -> str:
    """Return the census vintages in words: ``recensement 2022 (comparé à 2017), ...``.

    Lower case, for a subtitle's middle; capitalise it to start a sentence.
    """
    vintage, previous = manifest.get("flows_vintage"), manifest.get("previous_vintage")
    text = f"recensement {vintage}" if vintage else "recensement"
    if previous:
        text += f" (comparé à {previous})"
    geography = manifest.get("geography")
    if geography:
        text += f", communes et EPCI au 1er janvier {geography}"
    return text
