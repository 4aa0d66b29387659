"""The run's GeoPackage, written by a helper process beside the rest of the run.

Writing the GeoPackage is 0.12 s of GDAL and SQLite on the whole-France run,
most of it holding the GIL: in a thread, it held up the GeoParquet files and
the QGIS project beside it. The helper
(:mod:`observatory.layers.geopackage_helper`) has a GIL of its own. It is
started once the census flows are summed (:meth:`GeoPackageWriting.start`),
imports its libraries meanwhile, on the core the run leaves idle from then
on, and is asked to write once the tables are exported, into a folder of its
own beside the staging folder; :func:`observatory.runs.publish.publish` moves
the file into the staging folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from observatory.core.errors import ObservatoryError, OutputError
from observatory.core.helpers import Helper
from observatory.core.timing import STAGING_PREFIX

if TYPE_CHECKING:
    from observatory.layers.files import RunFiles

#: The helper's module.
HELPER = "observatory.layers.geopackage_helper"


class GeoPackageWriting:
    """A GeoPackage being written by a helper process.

    Parameters
    ----------
    folder
        Where the helper writes it: a folder of its own, made by :meth:`write`
        and removed by :meth:`stop` (a ``.staging-`` name, so a killed run's
        folder is removed by the next run).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._helper = Helper(HELPER)
        self._asked = False

    @classmethod
    def start(cls, output_dir: Path, run_id: str) -> GeoPackageWriting:
        """Start the helper of run ``run_id``, writing beside its staging folder later."""
        return cls(Path(output_dir) / f"{STAGING_PREFIX}{run_id}-geopackage")

    def write(self, files: RunFiles) -> None:
        """Ask the helper to write ``files``' tables and styles; return at once.

        Raises
        ------
        OutputError
            When the folder cannot be made.
        """
        try:
            self.folder.mkdir(parents=True)
        except OSError as exc:
            msg = f"{self.folder}: cannot create a folder for the GeoPackage ({exc.strerror or exc})"
            raise OutputError(msg, path=self.folder) from exc
        self._helper.ask((str(self.folder), dict(files.tables), dict(files.styles)))
        self._asked = True

    @property
    def asked(self) -> bool:
        """Whether :meth:`write` was called."""
        return self._asked

    def result(self) -> Path:
        """Wait for the GeoPackage; return its path.

        Raises
        ------
        OutputError
            The file was refused (as :func:`~observatory.layers.geopackage.write_geopackage`
            raises it), or the helper failed: its exit status and last line quoted.
        """
        status, answer, said = self._helper.answer()
        if answer is None or answer[0] not in ("written", "error"):
            msg = (
                f"{self.folder}: the helper process writing the GeoPackage failed "
                f"(exit status {status}): {said}"
            )
            raise OutputError(msg, path=self.folder)
        kind, value = answer
        if kind == "error":
            error: ObservatoryError = value
            raise error
        return self.folder / value

    def stop(self) -> None:
        """Kill the helper if it still runs, reap it and remove its folder."""
        self._helper.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
