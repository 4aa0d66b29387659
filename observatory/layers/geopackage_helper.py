"""A helper process writing the GeoPackage: ``python -m observatory.layers.geopackage_helper``.

It imports its libraries at once, then reads one pickle on its standard input,
``(folder, tables, styles)`` as :func:`observatory.layers.geopackage.write_geopackage`
takes them, writes and validates the GeoPackage in ``folder``, flushes it to
disk and answers (:func:`observatory.core.helpers.serve`: into the file its
command line names, else on its standard output) a pickle of ``("written", file name)``,
or of ``("error", error)`` when the file cannot be written or does not read
back as written (an :class:`~observatory.core.errors.OutputError`, raised again
by the run). Any other failure: one line on its standard error and exit status
1. Started by :class:`observatory.runs.geopackage_writing.GeoPackageWriting`
(:mod:`observatory.core.helpers`) before the run needs it, so its imports are
done by then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write(request: tuple[str, dict[str, Any], dict[str, str]]) -> tuple[str, Any]:
    """Write the GeoPackage of ``request``: ``("written", name)`` or ``("error", error)``."""
    from observatory.core.errors import OutputError
    from observatory.core.files import fsync_path
    from observatory.layers.geopackage import write_geopackage

    folder, tables, styles = request
    try:
        path = write_geopackage(Path(folder), tables, styles)
    except OutputError as exc:
        return ("error", exc)
    try:
        fsync_path(path)
    except OSError as exc:
        msg = f"{path}: cannot flush the GeoPackage to disk ({exc.strerror or exc})"
        return ("error", OutputError(msg, path=path))
    return ("written", path.name)


def main() -> None:
    """Import the writer, answer the request on the standard input, then exit."""
    from observatory.core.process import tune_for_batch

    tune_for_batch()
    # Imported while the run still builds its layers: the request comes later.
    import observatory.layers.geopackage  # noqa: F401
    from observatory.core.helpers import serve

    serve(write)


if __name__ == "__main__":
    main()
