"""Where a run's parallel work goes: dask's local schedulers or a dask.distributed cluster.

Two kinds of work are spread: the partitions of the detailed FD_MOBPRO file
(:mod:`observatory.readers.fd_mobpro`) and, in :mod:`observatory.runs.pipeline`, the census
vintages (harmonising and aggregating each flow file) crossed with the métropole
systems (matrix and indicators of each). Both go through :func:`computer`, so the
same task graph runs on one machine (``threads``, ``processes``,
``synchronous``) or on a cluster (``tcp://host:8786``), with the same results.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable
from typing import Any

from observatory.core.errors import ConfigError, SourceError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")


_ADDRESS = re.compile(r"(?:tcp|tls|inproc|ucx|ws|wss)://\S+")


def scheduler_kind(scheduler: str | None) -> str:
    """Return ``threads`` (default), another local scheduler, or ``distributed``.

    Raises
    ------
    ConfigError
        When ``scheduler`` is neither a local scheduler nor a scheduler address.
    """
    if scheduler is None:
        return "threads"
    if scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if _ADDRESS.fullmatch(scheduler):
        return "distributed"
    msg = (
        f"scheduler must be one of {list(LOCAL_SCHEDULERS)} or a dask.distributed "
        f"scheduler address such as 'tcp://127.0.0.1:8786', got {scheduler!r}"
    )
    raise ConfigError(msg)


class Computer:
    """Runs dask collections on one scheduler; call it like ``dask.compute``.

    :meth:`share` puts a large input into a graph without copying it into the
    graph: on a cluster the graph sent to the scheduler then holds its key only,
    however large the territory.
    """

    def __init__(
        self, compute: Callable[..., tuple], scatter: Callable[[Any], Any] | None
    ) -> None:
        self._compute = compute
        self._scatter = scatter

    def __call__(self, *collections: Any) -> tuple:
        """Compute ``collections`` and return their results, as ``dask.compute`` does."""
        return self._compute(*collections)

    def share(self, value: Any, name: str) -> Any:
        """Return ``value`` as a node of a dask graph, not copied into the graph.

        Locally, a delayed object named ``name`` (neither hashed nor walked
        through: dask would otherwise hash a large frame to name it); on a
        cluster, the future of ``value`` scattered once to a worker, which other
        workers fetch from it when their tasks need it.
        """
        from dask.delayed import delayed

        if self._scatter is None:
            return delayed(value, name=f"{name}-{id(value)}", traverse=False)
        return self._scatter(value)


def computer(
    scheduler: str | None,
    progress: bool,
    stack: contextlib.ExitStack,
    timeout: str = "30s",
) -> Computer:
    """Return a :class:`Computer`: a ``dask.compute``-like function bound to ``scheduler``.

    Parameters
    ----------
    scheduler
        None (threads), a local scheduler name, or a dask.distributed address.
    progress
        Show a progress bar on a terminal: dask's on stderr for a local scheduler,
        distributed's on stdout for a cluster.
    stack
        Holds the cluster client open until the caller is done with it.
    timeout
        How long to try reaching a cluster's scheduler.

    Raises
    ------
    ConfigError
        An address without dask.distributed installed.
    SourceError
        The scheduler cannot be reached.
    """
    import dask
    from dask.base import named_schedulers

    kind = scheduler_kind(scheduler)
    if kind != "distributed":
        show = progress and sys.stderr.isatty()
        # The scheduler's function, not its name: given a name, dask imports
        # dask.distributed (0.15 s) to look for a client this run never has.
        local = named_schedulers[kind]

        def compute_local(*collections: Any) -> tuple:
            if show:
                from dask.diagnostics import ProgressBar

                with ProgressBar(out=sys.stderr):
                    return dask.compute(*collections, scheduler=local)
            return dask.compute(*collections, scheduler=local)

        return Computer(compute_local, None)

    try:
        from distributed import Client
        from distributed import progress as progress_bar
    except ImportError as exc:
        msg = f"scheduler={scheduler!r} needs dask.distributed: pip install distributed"
        raise ConfigError(msg) from exc
    try:
        client = stack.enter_context(
            Client(scheduler, timeout=timeout, set_as_default=False)
        )
    except OSError as exc:  # TimeoutError and connection errors
        msg = f"cannot reach the dask scheduler at {scheduler}: {exc}"
        raise SourceError(msg) from exc
    show = progress and sys.stdout.isatty()  # distributed draws on stdout

    def compute_distributed(*collections: Any) -> tuple:
        futures = client.compute(list(collections))
        if show:
            progress_bar(futures)
        return tuple(client.gather(futures))

    def scatter(value: Any) -> Any:
        # In a list, so that a tuple or a dict is sent as one value.
        (future,) = client.scatter([value], hash=False)
        return future

    return Computer(compute_distributed, scatter)
