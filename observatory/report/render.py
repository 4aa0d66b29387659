"""Render the maps, charts and atlas of a run on every core: :func:`render_maps`.

Drawing with matplotlib holds the GIL: two threads cannot draw at once. So
the PNG files of some systems are drawn by helper processes
(:mod:`observatory.report.helper`, started as commands of their own), while
this process draws every atlas page and the PNG files of the other systems;
each PNG is encoded in a thread (Pillow lets the GIL go) while the next figure
is drawn. Every file is drawn by the same functions with the same settings
wherever it is drawn: the bytes are those of a drawing in one process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import geopandas as gpd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from observatory.config import ClassificationSection, ReliabilitySection
from observatory.core.errors import OutputError
from observatory.core.helpers import Helper
from observatory.report.charts import dependence_chart, flows_chart
from observatory.report.mapdata import MapSystem, map_systems
from observatory.report.mapframe import contents_figure, drawing, drawn, png_bytes
from observatory.report.mapland import has_land
from observatory.report.maps import ATLAS_METADATA, land_figure, map_figure

#: Drawn pages waiting for the PNG encoder, at most (16 MB each at 200 dpi).
PENDING_PAGES = 2

#: Fewest systems for which helpers are started: a helper takes about 1.5 s to
#: start and import matplotlib, the drawing of two or three systems.
MIN_SYSTEMS_SHARED = 6


def render_maps(
    territory_layers: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
    reliability: ReliabilitySection,
    processes: int = 1,
) -> dict[str, bytes]:
    """Return the maps, the atlas and the charts of a run, by file name.

    Parameters
    ----------
    territory_layers
        The run's layers by territory, then by name (``epci_indicators``,
        ``flows``, ``metropoles``), each in its territory's CRS.
    manifest
        The run's manifest as a JSON-like dict.
    classification, reliability
        The config's rules and INSEE's thresholds.
    processes
        Processes drawing (``[output] report_processes``): this one and
        ``processes - 1`` helpers, for :data:`MIN_SYSTEMS_SHARED` systems or more.

    Returns
    -------
    dict
        ``maps/<code>.png``, ``charts/<code>_dependance.png``,
        ``charts/<code>_flux.png`` (and ``maps/<code>_sols.png`` with land) for
        every system, in that order, then ``atlas.pdf``.

    Raises
    ------
    OutputError
        A helper process failed (its message quoted).

    Notes
    -----
    Drawn with matplotlib's settings of :func:`observatory.report.mapframe.drawing`
    (restored on return), so a user's matplotlibrc changes nothing.
    """
    systems = map_systems(territory_layers, manifest)
    here, shares = _shared(systems, processes)
    args = (manifest, classification, reliability)
    helpers = [_Helper(share, *args) for share in shares]
    try:
        with _Encoder() as pngs, drawing(), _Atlas() as atlas:
            atlas.page(contents_figure(systems, manifest, classification))
            for system in systems:
                fig = map_figure(system, manifest, classification, reliability)
                if system.code in here:
                    pngs.add(f"maps/{system.code}.png", fig)
                atlas.page(fig)
                if system.code in here:
                    _add_charts(pngs, system, *args)
        files = pngs.files()
        for helper in helpers:
            files.update(helper.files())
    finally:
        for helper in helpers:  # stopped at once if this run stops
            helper.stop()
    ordered = {name: files[name] for name in _png_names(systems)}
    return {**ordered, "atlas.pdf": atlas.pdf()}


def system_pngs(
    systems: Sequence[MapSystem],
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
    reliability: ReliabilitySection,
) -> dict[str, bytes]:
    """Return the PNG files of ``systems``: what a helper process draws."""
    with _Encoder() as pngs, drawing():
        for system in systems:
            fig = map_figure(system, manifest, classification, reliability)
            pngs.add(f"maps/{system.code}.png", fig)
            _add_charts(pngs, system, manifest, classification, reliability)
    return pngs.files()


class _Helper:
    """A helper process drawing :func:`system_pngs` of a share of the systems.

    ``python -m observatory.report.helper`` (:class:`~observatory.core.helpers.Helper`):
    a thread waits for its answer while this process draws.
    """

    def __init__(self, systems: Sequence[MapSystem], *args: Any) -> None:
        self._count = len(systems)
        self._helper = Helper("observatory.report.helper", (list(systems), *args))

    def files(self) -> dict[str, bytes]:
        """Wait for the helper's files.

        Raises
        ------
        OutputError
            The helper failed: its exit status and last line quoted.
        """
        status, files, said = self._helper.answer()
        if status != 0 or files is None:
            msg = (
                f"report: the helper drawing the maps of {self._count} system(s) "
                f"failed (exit status {status}): {said}"
            )
            raise OutputError(msg, stage="report")
        return cast("dict[str, bytes]", files)

    def stop(self) -> None:
        """Kill the helper if it still runs (this run failed or stops), and reap it."""
        self._helper.stop()


def _add_charts(
    pngs: _Encoder,
    system: MapSystem,
    manifest: Mapping[str, Any],
    classification: ClassificationSection,
    reliability: ReliabilitySection,
) -> None:
    # The charts and the land panel of a system (its map is drawn apart).
    pngs.add(
        f"charts/{system.code}_dependance.png",
        dependence_chart(system, manifest, classification),
    )
    pngs.add(
        f"charts/{system.code}_flux.png", flows_chart(system, manifest, reliability)
    )
    if has_land(system):  # not in the atlas: its pages follow its list
        pngs.add(f"maps/{system.code}_sols.png", land_figure(system, manifest))


def _png_names(systems: Sequence[MapSystem]) -> list[str]:
    names = []
    for system in systems:
        names += [
            f"maps/{system.code}.png",
            f"charts/{system.code}_dependance.png",
            f"charts/{system.code}_flux.png",
        ]
        if has_land(system):
            names.append(f"maps/{system.code}_sols.png")
    return names


def _shared(
    systems: Sequence[MapSystem], processes: int
) -> tuple[set[str], list[list[MapSystem]]]:
    """Split the PNG files: the systems drawn here, and a share per helper.

    This process also draws every atlas page, about half the work of a
    system's PNG files: it keeps one system in ``2 * helpers + 1``, and the
    helpers share the others in turn.
    """
    helpers = max(processes, 1) - 1
    if helpers == 0 or len(systems) < MIN_SYSTEMS_SHARED:
        return {s.code for s in systems}, []
    here = {s.code for i, s in enumerate(systems) if i % (2 * helpers + 1) == 0}
    rest = [s for s in systems if s.code not in here]
    return here, [rest[k::helpers] for k in range(helpers) if rest[k::helpers]]


class _Encoder:
    """PNG files encoded in a thread while the next figure is drawn.

    Drawing holds the GIL, Pillow's encoding does not: on two cores the
    encoding of one figure hides behind the drawing of the next. At most
    :data:`PENDING_PAGES` drawn pages wait.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="png")
        self._futures: dict[str, Future[bytes]] = {}

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        # On an error, the pages not encoded yet are dropped.
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)

    def add(self, name: str, fig: Figure) -> None:
        """Draw ``fig`` here and encode it as ``name`` in the thread."""
        waiting = [f for f in self._futures.values() if not f.done()]
        if len(waiting) >= PENDING_PAGES:
            waiting[0].result()
        self._futures[name] = self._pool.submit(png_bytes, drawn(fig))

    def files(self) -> dict[str, bytes]:
        """Return the PNG bytes by name, in the order added (raising an encoder's error)."""
        return {name: future.result() for name, future in self._futures.items()}


class _Atlas:
    """The atlas: each page added as soon as drawn, so no figure is kept."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._pages = PdfPages(self._buffer, metadata=ATLAS_METADATA)

    def __enter__(self) -> _Atlas:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pages.close()

    def page(self, fig: Figure) -> None:
        """Add ``fig`` as the next page."""
        self._pages.savefig(fig)

    def pdf(self) -> bytes:
        """Return the PDF (once closed)."""
        return self._buffer.getvalue()
