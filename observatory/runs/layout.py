"""The paths of an output folder: run folders, ``latest``, the bookkeeping folder.

::

    outputs/
      20251123T020000.412Z-1a2b3c/    one folder per published run, manifest.json inside
      20251124T020000.087Z-4d5e6f/
      latest -> 20251124T020000.087Z-4d5e6f   what readers (QGIS) open: symlink or copy
      LATEST                          text file naming the run ``latest`` shows
      .observatory/state.json         last success, last attempt, last failure
      .observatory/lock               held by the running refresh: pid, host, start
      .observatory/logs/<run id>.log  one log per attempt, DEBUG level
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The bookkeeping folder of an output folder.
META_DIR = ".observatory"


#: The stable name readers open.
LATEST = "latest"


#: The text file naming the run ``latest`` shows.
LATEST_FILE = "LATEST"


#: The name of a run folder: its run id.
RUN_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


@dataclass(frozen=True)
class Layout:
    """The paths of an output folder."""

    root: Path

    @property
    def meta(self) -> Path:
        """The bookkeeping folder ``.observatory/``."""
        return self.root / META_DIR

    @property
    def state(self) -> Path:
        """The state file."""
        return self.meta / "state.json"

    @property
    def lock(self) -> Path:
        """The lock file."""
        return self.meta / "lock"

    @property
    def logs(self) -> Path:
        """The folder of attempt logs."""
        return self.meta / "logs"

    @property
    def latest(self) -> Path:
        """The stable path readers open."""
        return self.root / LATEST

    def run_dir(self, run_id: str) -> Path:
        """Return the folder of a published run."""
        return self.root / run_id

    def run_ids(self) -> list[str]:
        """Return the published run folders, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if RUN_ID.match(p.name) and p.is_dir() and not p.is_symlink()
        )

    def latest_manifest(self) -> dict[str, Any]:
        """Return the manifest ``latest`` shows, empty when it is missing or unreadable."""
        try:
            manifest = json.loads(
                (self.latest / "manifest.json").read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return {}
        return manifest if isinstance(manifest, dict) else {}

    def latest_run(self) -> str | None:
        """Return the run ``latest`` shows, or None when it is missing or dangling."""
        link = self.latest
        if link.is_symlink():
            name = link.readlink().name
            return name if RUN_ID.match(name) and link.is_dir() else None
        if link.is_dir():
            run_id = self.latest_manifest().get("run_id")
            return run_id if isinstance(run_id, str) else None
        return None


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a whole folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
