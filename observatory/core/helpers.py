"""Helper processes: a module of the package run as a command of its own.

A helper is ``python -m observatory.<module>``, started by the interpreter
running the job: nothing of the job's threads, locks or main module is
inherited (no fork), and it has its own GIL. It reads one pickle on its
standard input and writes one on its standard output; a thread of the job
waits for that answer (:class:`Helper`), so the job works meanwhile. Used by
the report (maps drawn beside the atlas) and by the stage ``read`` (the census
base flux read beside the geography).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

#: The folder holding the package, put first on a helper's ``PYTHONPATH``: it
#: runs this checkout's code, installed or not.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class Helper:
    """``python -m <module>``, fed ``request`` (pickled) and answering a pickle.

    Parameters
    ----------
    module
        The helper's module, e.g. ``observatory.report.helper``.
    request
        What it is asked, pickled to its standard input at once.
    """

    def __init__(self, module: str, request: Any) -> None:
        path = [PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]
        self.module = module
        self._process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
        )
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self._waiting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helper")
        self._answer = self._waiting.submit(self._process.communicate, payload)

    def answer(self) -> tuple[int, Any, str]:
        """Wait for the helper; return its exit status, its answer and its last stderr line.

        The answer is None when the helper failed (status not 0) or wrote nothing.
        """
        out, err = self._answer.result()
        said = err.decode("utf-8", "replace").strip().splitlines()
        status = self._process.returncode
        answer = pickle.loads(out) if status == 0 and out else None
        return status, answer, said[-1] if said else "no message"

    @property
    def returncode(self) -> int | None:
        """The helper's exit status; None while it runs."""
        return self._process.returncode

    def stop(self) -> None:
        """Kill the helper if it still runs (the job failed or stops), and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._waiting.shutdown(wait=True)
