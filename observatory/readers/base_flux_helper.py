"""A helper process reading base flux files: ``python -m observatory.readers.base_flux_helper``.

It reads one pickle on its standard input, ``(paths, allow_duplicate_pairs)``
with ``paths`` a ``{role: path}`` dict, reads each file with
:func:`observatory.readers.base_flux.read_base_flux`, in turn, and answers
(:func:`observatory.core.helpers.serve`: into the file its command line names,
else on its standard output) a pickle of ``("flows", {role: CommuneFlows})``, or of
``("error", error)`` when a file is refused (an
:class:`~observatory.core.errors.ObservatoryError`, with its path, line and
message, raised again by the run). Any other failure: one line on its standard
error and exit status 1. Started by :class:`observatory.runs.census_reading.CensusReading`
(:mod:`observatory.core.helpers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read(request: tuple[dict[str, Path], bool]) -> tuple[str, Any]:
    """Read the files of ``request``: ``("flows", {role: flows})`` or ``("error", error)``."""
    from observatory.core.errors import ObservatoryError
    from observatory.readers.base_flux import read_base_flux

    paths, allow_duplicate_pairs = request
    try:
        return (
            "flows",
            {
                role: read_base_flux(path, allow_duplicate_pairs=allow_duplicate_pairs)
                for role, path in paths.items()
            },
        )
    except ObservatoryError as exc:  # a refused file: the run says why
        return ("error", exc)


def main() -> None:
    """Answer the request on the standard input, then exit."""
    # What the observatory command does first, before numpy is imported.
    from observatory.core.process import tune_for_batch

    tune_for_batch()
    from observatory.core.helpers import serve

    serve(read)


if __name__ == "__main__":
    main()
