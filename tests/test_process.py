"""Process-wide settings of the command line (observatory.core.process).

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
import gc, json, os, sys
from observatory.core.process import tune_for_batch
applied = tune_for_batch()
import numpy
hugepage = numpy._core.multiarray._get_madvise_hugepage()
print(json.dumps({
    "applied": applied,
    "numpy_hugepage": bool(hugepage),
    "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
    "gc": gc.get_threshold(),
}))
"""

_CLEARED = (
    "NUMPY_MADVISE_HUGEPAGE",
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
)


def _probe(code: str = PROBE, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in _CLEARED} | env
    done = subprocess.run(
        [sys.executable, "-c", code],
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


def test_openblas_starts_no_thread_pool_and_the_gc_is_left_alone():
    result = _probe()
    assert result["openblas"] == "1"
    assert result["applied"]["OPENBLAS_NUM_THREADS"] == "1"
    default = subprocess.run(
        [sys.executable, "-c", "import gc; print(list(gc.get_threshold()))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A higher threshold made the report's run peak 360 MB higher (core/process.py).
    assert str(result["gc"]) == default


@pytest.mark.parametrize("variable", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_users_thread_setting_is_kept(variable):
    result = _probe(**{variable: "2"})
    assert "OPENBLAS_NUM_THREADS" not in result["applied"]
    assert result["openblas"] == ("2" if variable == "OPENBLAS_NUM_THREADS" else None)


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
    applied = _probe("import numpy\n" + PROBE)["applied"]
    assert "NUMPY_MADVISE_HUGEPAGE" not in applied


TRIM = """
import json, os
from observatory.core.process import release_free_memory, tune_for_batch
tune_for_batch()
import numpy as np

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

blocks = [np.ones(10 << 20, dtype=np.uint8) for _ in range(30)]  # 300 MB on the heap
del blocks
kept = rss()
released = release_free_memory()
print(json.dumps({"kept": kept, "after": rss(), "released": released}))
"""


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_free_memory_kept_for_reuse_is_given_back_before_the_report():
    result = _probe(TRIM)
    assert result["released"] is True
    assert result["kept"] - result["after"] > 200 << 20  # of the 300 MB freed
