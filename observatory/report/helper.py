"""A helper process drawing the PNG files of some systems: ``python -m observatory.report.helper``.

It reads one pickle on its standard input, ``(systems, manifest,
classification, reliability)``, draws those systems' maps and charts with
:func:`observatory.report.render.system_pngs` and answers the files, a pickle of
``{name: bytes}`` (:func:`observatory.core.helpers.serve`: into the file its
command line names, else on its standard output). On an error it writes one line on its
standard error and exits with status 1. Started by
:func:`observatory.report.render.render_maps`, by the interpreter running the
run, as a command of its own (:mod:`observatory.core.helpers`): nothing of the
run's threads or main module is inherited.
"""

from __future__ import annotations

from typing import Any


def draw(request: tuple[Any, ...]) -> dict[str, bytes]:
    """Draw the PNG files of ``(systems, manifest, classification, reliability)``."""
    from observatory.report.render import system_pngs

    return system_pngs(*request)


def main() -> None:
    """Answer the request on the standard input, then exit."""
    from observatory.core.helpers import serve

    serve(draw)


if __name__ == "__main__":
    main()
