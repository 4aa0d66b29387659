"""The census base flux files, read by a helper process from the start of a run.

The national base flux is two zipped CSV files of 1.3 million pairs: about a
CPU-second of inflating, parsing and checking, a third of it holding the GIL.
Read in a thread, it slowed the geography read beside it (both want the GIL)
on a 2-core machine. Read by a helper process
(:mod:`observatory.readers.base_flux_helper`), it has a GIL of its own, and it
starts before the run imports its heavy libraries: this module imports nothing
but the standard library, so :mod:`observatory.runs.execute` can start it first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observatory.core.errors import ObservatoryError, SourceError
from observatory.core.helpers import Helper

if TYPE_CHECKING:
    from observatory.readers.base_flux import CommuneFlows

#: The input roles read as census base flux: the run's vintage, the earlier one.
CENSUS_ROLES = ("flows", "flows_previous")

#: The helper's module.
HELPER = "observatory.readers.base_flux_helper"


class CensusReading:
    """The census base flux files of a run, being read by a helper process.

    Parameters
    ----------
    paths
        The files, by input role (``flows``, ``flows_previous``).
    allow_duplicate_pairs
        ``[inputs] allow_duplicate_pairs``.
    """

    def __init__(self, paths: dict[str, Path], allow_duplicate_pairs: bool) -> None:
        self.paths = dict(paths)
        self.allow_duplicate_pairs = allow_duplicate_pairs
        self._started = time.perf_counter()
        self._helper = Helper(HELPER, (self.paths, allow_duplicate_pairs))
        self._result: dict[str, CommuneFlows] | None = None
        self.seconds: float | None = None

    @classmethod
    def start(cls, config: Any, inputs: dict[str, Any]) -> CensusReading:
        """Start reading the census files ``inputs`` names, as ``config`` says."""
        paths = {role: inputs[role].path for role in CENSUS_ROLES if role in inputs}
        return cls(paths, config.inputs.allow_duplicate_pairs)

    def matches(self, paths: dict[str, Path], allow_duplicate_pairs: bool) -> bool:
        """Tell whether this reads those files, so."""
        return (paths, allow_duplicate_pairs) == (
            self.paths,
            self.allow_duplicate_pairs,
        )

    def result(self) -> dict[str, CommuneFlows]:
        """Wait for the flows read, by role.

        Raises
        ------
        ObservatoryError
            A file refused (as :func:`~observatory.readers.base_flux.read_base_flux`
            raises it), its ``stage`` set to ``read``.
        SourceError
            The helper process failed: its exit status and last line quoted.
        """
        if self._result is not None:
            return self._result
        status, answer, said = self._helper.answer()
        self.seconds = time.perf_counter() - self._started
        if answer is None or answer[0] not in ("flows", "error"):
            files = ", ".join(str(p) for p in self.paths.values())
            msg = (
                f"the helper process reading the census flows ({files}) failed "
                f"(exit status {status}): {said}"
            )
            raise SourceError(msg, stage="read")
        kind, value = answer
        if kind == "error":
            error: ObservatoryError = value
            error.stage = error.stage or "read"
            raise error
        self._result = value
        return value

    def stop(self) -> None:
        """Kill the helper if it still reads (the run failed or stops), and reap it."""
        self._helper.stop()
