"""A helper process reading base flux files: ``python -m observatory.readers.base_flux_helper``.

It reads one pickle on its standard input, ``(paths, allow_duplicate_pairs)``
with ``paths`` a ``{role: path}`` dict, reads each file with
:func:`observatory.readers.base_flux.read_base_flux`, in turn, and writes on
its standard output a pickle of ``("flows", {role: CommuneFlows})``, or of
``("error", error)`` when a file is refused (an
:class:`~observatory.core.errors.ObservatoryError`, with its path, line and
message, raised again by the run). Any other failure: one line on its standard
error and exit status 1. Started by :class:`observatory.runs.census_reading.CensusReading`
(:mod:`observatory.core.helpers`).
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> int:
    """Read what the standard input asks; return the exit status."""
    # What the observatory command does first, before numpy is imported.
    from observatory.core.process import tune_for_batch

    tune_for_batch()
    try:
        from observatory.core.errors import ObservatoryError
        from observatory.readers.base_flux import read_base_flux

        paths, allow_duplicate_pairs = pickle.load(sys.stdin.buffer)
        try:
            answer: tuple[str, object] = (
                "flows",
                {
                    role: read_base_flux(
                        path, allow_duplicate_pairs=allow_duplicate_pairs
                    )
                    for role, path in paths.items()
                },
            )
        except ObservatoryError as exc:  # a refused file: the run says why
            answer = ("error", exc)
        pickle.dump(answer, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()
    except Exception as exc:  # anything else is reported to the run, which stops
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
