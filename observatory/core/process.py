"""Process-wide settings for a batch run, applied by the command line.

A run allocates and frees the same few dozen arrays of 10-100 MB again and
again (1.3 million commune pairs per vintage). Two defaults of the platform
make each of them cost fresh memory from the kernel, zeroed page by page:

- numpy asks for transparent huge pages on arrays of 4 MB and more
  (``madvise``), so a page fault zeroes 2 MB at a time, touched or not;
- glibc's ``malloc`` maps blocks over a threshold (128 KB, rising with use)
  afresh and gives them back when freed, and trims the heap's free top.

Measured on the whole-France benchmark (``scripts/bench_pipeline.py``), each
costs about 5 % of the run's time, nearly all of it in the kernel. Both are
documented switches: numpy's ``NUMPY_MADVISE_HUGEPAGE`` environment variable
(read when numpy is imported) and glibc's ``mallopt``.

OpenBLAS (numpy's linear algebra) starts a thread per core, which spins a
while after numpy's import waiting for work; the package does no linear
algebra, so ``OPENBLAS_NUM_THREADS=1`` (read at numpy's import) starts none.

Memory kept for reuse only helps the stages that reuse it: before the report,
whose figures allocate otherwise, :func:`release_free_memory` gives it back.

Python's garbage collector is left as it is: a first-generation threshold of
50,000 saved about 1.5 % of the whole-France run, but the run with the report
(matplotlib's figures are cycles) then peaked at 1,479 MB instead of 1,119 MB.

A user who set the variables (``NUMPY_MADVISE_HUGEPAGE``, ``GLIBC_TUNABLES``,
``MALLOC_*_``, ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``) keeps their
choice. Nothing here changes a result: only where memory and CPU go.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap, to be reused: glibc's maximum on
#: 64-bit systems (half of a heap), where a column of 1.3 million float64 is 10 MB.
MMAP_THRESHOLD = 32 << 20
#: Free memory at the heap's top given back to the system beyond this.
TRIM_THRESHOLD = 512 << 20
#: Variables through which a user sets OpenBLAS's threads (in its order).
_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
#: Variables through which a user sets glibc's allocator themselves.
_GLIBC_VARIABLES = (
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def tune_for_batch() -> dict[str, str]:
    """Keep large arrays' memory for reuse, and start no idle BLAS threads.

    Call it before numpy is imported (the command line does, first thing);
    later, numpy's and OpenBLAS's settings are left as they are. The variables
    set are inherited by the run's helper processes (which call it too).
    Returns what was set, for the log.
    """
    applied: dict[str, str] = {}
    if "numpy" not in sys.modules:
        if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
            os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
            applied["NUMPY_MADVISE_HUGEPAGE"] = "0"
        if not any(name in os.environ for name in _BLAS_VARIABLES):
            os.environ["OPENBLAS_NUM_THREADS"] = "1"
            applied["OPENBLAS_NUM_THREADS"] = "1"
    if _glibc() and not any(name in os.environ for name in _GLIBC_VARIABLES):
        libc = ctypes.CDLL(None)
        # mallopt returns 1 on success, 0 when glibc refuses the value.
        if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
            applied["malloc mmap threshold"] = f"{MMAP_THRESHOLD >> 20} MiB"
        if libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
            applied["malloc trim threshold"] = f"{TRIM_THRESHOLD >> 20} MiB"
    return applied


def release_free_memory() -> bool:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``).

    :func:`tune_for_batch` keeps up to :data:`TRIM_THRESHOLD` of freed memory
    for the next stage's arrays. Before a stage that allocates otherwise (the
    report's matplotlib figures: Python objects in arenas of their own), that
    memory only adds to the peak: on the national inputs the run with the
    report peaked at 1,161 MB without this call, 964 MB with it. Returns
    whether memory was given back (never on other C libraries).
    """
    if not _glibc():
        return False
    return ctypes.CDLL(None).malloc_trim(0) == 1


def _glibc() -> bool:
    # mallopt's parameters are glibc's; musl and other systems have none.
    # (confstr answers at once; platform.libc_ver reads the interpreter's binary).
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name here
        return False
    return version is not None and version.startswith("glibc")
