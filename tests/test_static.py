"""The package passes its own lint and type checks (ruff, mypy), as CI runs them.

Both read their settings from pyproject.toml; mypy is strict on ``systems/`` and
``layers/``. They run from the repository root, so they skip in an installed
copy without the sources.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

needs_sources = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file(), reason="no source checkout"
)


@needs_sources
def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    done = subprocess.run(
        [ruff, "check", "observatory", "tests", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_sources
def test_mypy_is_clean():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install '.[test]')")
    done = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
