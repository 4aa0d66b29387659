"""The national benchmark inputs as a folder: its file names and its completeness.

``make_national_inputs.py`` writes the folder and its manifest; it and
``bench_pipeline.py`` check here that every file the manifest lists is present
with its size. Standard library only: the benchmark's workers import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FOLDER = REPO_ROOT / "benchmarks" / "data" / "pipeline"
GENERATOR = REPO_ROOT / "scripts" / "make_national_inputs.py"
CONFIG = "france-synthetic.toml"
MANIFEST = "inputs.json"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return the folder's ``inputs.json``, None when there is none."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def file_problems(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Return one message per file of the manifest missing or of another size.

    Parameters
    ----------
    folder : Path
        The inputs folder.
    manifest : dict
        Its ``inputs.json``.

    Returns
    -------
    list of str
        Empty when every listed file is there with its recorded size.
    """
    problems = []
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.exists():
            problems.append(
                f"{path}: input file missing (listed in {folder / MANIFEST})"
            )
        elif path.stat().st_size != info["bytes"]:
            problems.append(
                f"{path}: {path.stat().st_size:,} bytes, {folder / MANIFEST} says "
                f"{info['bytes']:,}: regenerate with make_national_inputs.py --force"
            )
    return problems


def input_summary(
    data_dir: Path, config: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Describe the inputs for the results file.

    Parameters
    ----------
    data_dir : Path
        Folder of the inputs.
    config : Path
        Run configuration.
    manifest : dict
        ``inputs.json``.

    Returns
    -------
    dict
        Paths relative to the repository, sizes, counts, seeds.
    """
    try:
        folder = str(data_dir.resolve().relative_to(REPO_ROOT))
    except ValueError:
        folder = str(data_dir)
    return {
        "synthetic_flows": manifest["synthetic_flows"],
        "generator": manifest["generator"],
        "folder": folder,
        "config": config.name,
        "geography": manifest["geography"],
        "communes": manifest["communes"],
        "epci": manifest["epci"],
        "commune_passage": manifest["commune_passage"],
        "flows": manifest["flows"],
        "files": {name: info["bytes"] for name, info in manifest["files"].items()},
        "options": manifest["options"],
    }
