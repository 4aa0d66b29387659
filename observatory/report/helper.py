"""A helper process drawing the PNG files of some systems: ``python -m observatory.report.helper``.

It reads one pickle on its standard input, ``(systems, manifest,
classification, reliability)``, draws those systems' maps and charts with
:func:`observatory.report.render.system_pngs` and writes the files, a pickle of
``{name: bytes}``, on its standard output. On an error it writes one line on its
standard error and exits with status 1. Started by
:func:`observatory.report.render.render_maps`, by the interpreter running the
run, as a command of its own: nothing of the run's threads or main module is
inherited.
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> int:
    """Draw what the standard input asks; return the exit status."""
    try:
        from observatory.report.render import system_pngs

        systems, manifest, classification, reliability = pickle.load(sys.stdin.buffer)
        files = system_pngs(systems, manifest, classification, reliability)
        pickle.dump(files, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()
    except Exception as exc:  # any failure is reported to the run, which stops
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Out at once, past the interpreter's finalisation: the answer is written,
    # and a library's threads left waiting for the GIL there (Arrow's readahead
    # of a CSV stopped by a refused file) could hang the exit, and the run
    # waiting for it.
    os._exit(status)
