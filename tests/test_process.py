"""Process-wide memory settings of the command line (observatory.core.process).

Each case runs in a fresh interpreter: the settings are per process, and
numpy reads its own when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from observatory.core.process import _glibc

PROBE = """
import json, sys
from observatory.core.process import tune_for_batch
applied = tune_for_batch()
import numpy
hugepage = numpy._core.multiarray._get_madvise_hugepage()
print(json.dumps({"applied": applied, "numpy_hugepage": bool(hugepage)}))
"""

_CLEARED = (
    "NUMPY_MADVISE_HUGEPAGE",
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def _probe(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in _CLEARED} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_numpy_gets_no_huge_pages_by_default():
    result = _probe()
    assert result["applied"]["NUMPY_MADVISE_HUGEPAGE"] == "0"
    assert result["numpy_hugepage"] is False


def test_a_users_numpy_setting_is_kept():
    result = _probe(NUMPY_MADVISE_HUGEPAGE="1")
    assert "NUMPY_MADVISE_HUGEPAGE" not in result["applied"]
    assert result["numpy_hugepage"] is True


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_glibc_keeps_large_blocks_for_reuse():
    applied = _probe()["applied"]
    assert applied["malloc mmap threshold"] == "32 MiB"
    assert applied["malloc trim threshold"] == "512 MiB"


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_a_users_glibc_tunables_are_kept():
    applied = _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")["applied"]
    assert not any(key.startswith("malloc") for key in applied)


def test_after_numpy_is_imported_its_setting_is_left_alone():
    code = "import numpy\n" + PROBE
    environment = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "NUMPY_MADVISE_HUGEPAGE" not in json.loads(done.stdout)["applied"]
