"""Helper processes: a module of the package run as a command of its own.

A helper is ``python -m observatory.<module>``, started by the interpreter
running the job: nothing of the job's threads, locks or main module is
inherited (no fork), and it has its own GIL. It reads one pickle on its
standard input and answers one in a temporary file (:func:`serve`); a thread
of the job waits for that answer (:class:`Helper`), so the job works meanwhile.
Used by the report (maps drawn beside the atlas), by the stage ``read`` (the
census base flux read beside the geography) and by the stage ``write`` (the
GeoPackage written beside the rest of the run).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

#: The folder holding the package, put first on a helper's ``PYTHONPATH``: it
#: runs this checkout's code, installed or not.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


#: A helper started without its request, asked later (:meth:`Helper.ask`).
LATER = object()


class Helper:
    """``python -m <module> ANSWER``, fed ``request`` (pickled) and answering a pickle.

    The answer comes back through a temporary file (``ANSWER``), not a pipe: a
    pipe passes 64 KiB at a time, and the thread reading each piece waits for
    the GIL the run's own threads hold (the census flows, 43 MB, took
    0.25-0.29 s to come through that way on the whole-France run).

    Parameters
    ----------
    module
        The helper's module, e.g. ``observatory.report.helper``.
    request
        What it is asked, pickled to its standard input at once; :data:`LATER`
        to start it now (its imports done meanwhile) and :meth:`ask` it later.
    """

    def __init__(self, module: str, request: Any = LATER) -> None:
        path = [PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]
        self.module = module
        handle, name = tempfile.mkstemp(prefix="observatory-helper-", suffix=".pickle")
        os.close(handle)
        self._answer_path = Path(name)
        # Its standard error in a file too: a full pipe would hold the helper up.
        self._said = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._said,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
        )
        self._waiting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helper")
        self._answer: Future[tuple[bytes, bytes]] | None = None
        if request is not LATER:
            self.ask(request)

    def ask(self, request: Any) -> None:
        """Send the helper its request (once); a thread waits for the answer."""
        if self._answer is not None:
            msg = f"{self.module} was asked already"
            raise RuntimeError(msg)
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self._answer = self._waiting.submit(self._exchange, payload)

    def _exchange(self, payload: bytes) -> tuple[bytes, bytes]:
        # The request in one write (the GIL let go while the pipe is full),
        # then the answer and the standard error, once the helper has exited.
        process = self._process
        assert process.stdin is not None
        try:
            with process.stdin:
                process.stdin.write(payload)
        except BrokenPipeError:
            pass  # the helper is gone: its status and standard error say why
        process.wait()
        self._said.seek(0)
        answer = self._answer_path.read_bytes()
        # Removed at once: the census flows' 43 MB need not stay until the job ends.
        self._answer_path.unlink(missing_ok=True)
        return answer, self._said.read()

    def answer(self) -> tuple[int, Any, str]:
        """Wait for the helper; return its exit status, its answer and its last stderr line.

        The answer is None when the helper failed (status not 0) or wrote nothing.
        """
        if self._answer is None:
            msg = f"{self.module} was never asked"
            raise RuntimeError(msg)
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
        """Kill the helper if it still runs (the job failed or stops), reap it, tidy up."""
        if self._process.poll() is None:
            self._process.kill()
        self._waiting.shutdown(wait=True)
        if self._answer is None and self._process.stdin is not None:
            self._process.stdin.close()  # never asked: the pipe is still ours
        self._process.wait()
        self._said.close()
        self._answer_path.unlink(missing_ok=True)


def serve(work: Callable[[Any], Any]) -> NoReturn:
    """Be a helper: answer the pickle on the standard input with ``work(request)``, exit.

    The answer is pickled into the file named by the first argument (as
    :class:`Helper` starts it), or to the standard output without one (by hand).
    Any exception ``work`` raises is one line on the standard error and exit
    status 1 (a helper that wants the job to raise an error of its own returns
    it as its answer). The process leaves at once, past the interpreter's
    finalisation: the answer is written, and a library's threads left waiting
    for the GIL there (Arrow's readahead of a CSV stopped by a refused file)
    could hang the exit, and the job waiting for it.
    """
    status = 0
    try:
        answer = work(pickle.load(sys.stdin.buffer))
        if len(sys.argv) > 1:
            with Path(sys.argv[1]).open("wb") as file:
                pickle.dump(answer, file, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            pickle.dump(answer, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
            sys.stdout.buffer.flush()
    except Exception as exc:  # reported to the job, which stops
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
