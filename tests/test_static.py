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
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *command, "observatory", "tests", "scripts"],
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


#: Packages from the lowest to the highest: a module may import only from its own
#: package or from packages before it (docs/ARCHITECTURE.md). readers and systems
#: share a rank: siblings, neither imports the other.
LAYERS = [
    {"core"},
    {"geography"},
    {"config"},
    {"sources"},
    {"readers", "systems", "land"},
    {"layers"},
    {"report"},
    {"runs"},
    {"cli"},
]


def _rank(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _imported_packages(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "observatory":
                names = [f"observatory.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "observatory" and len(parts) > 1:
                found.add(parts[1])
    return found


@needs_sources
def test_packages_import_downwards_only():
    package = ROOT / "observatory"
    wrong = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        own = relative.parts[0].removesuffix(".py")
        if own in ("__init__", "__main__"):
            continue
        for other in _imported_packages(path) - {own, "__version__"}:
            if other not in {n for names in LAYERS for n in names}:
                continue
            if _rank(other) > _rank(own) or (
                _rank(other) == _rank(own) and other != own
            ):
                wrong.append(f"{relative} imports observatory.{other}")
    assert not wrong, "\n".join(wrong)
