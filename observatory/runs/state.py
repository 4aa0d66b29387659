"""The state file of an output folder: the last attempt, the last failure, the last success.

Each is a typed record (:class:`Attempt`, :class:`Success`) in memory and the
same JSON object as ever in ``.observatory/state.json``; :func:`read_state` and
:func:`write_state` are the only places that convert.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from observatory.core.files import write_json_atomic
from observatory.runs.layout import Layout

logger = logging.getLogger(__name__)


#: The version of the state file's format.
STATE_FORMAT = 1


#: What a record read from an older or damaged file gets for a missing key.
_FALLBACKS: dict[str, Any] = {
    "run_id": "?",
    "command": "refresh",
    "started": "",
    "pid": 0,
    "host": "?",
    "log": "",
    "outcome": "?",
}


@dataclass(frozen=True)
class Attempt:
    """One ``observatory run`` or ``refresh`` of an output folder.

    ``outcome`` is ``running`` until it ends ``published``, ``up_to_date`` or
    ``failed``; a ``running`` attempt found by the next one (its process was
    killed) becomes ``interrupted``. The fields after ``outcome`` are None
    (absent from the file) until they are known.
    """

    run_id: str
    command: str
    started: str
    pid: int
    host: str
    log: str
    outcome: str
    finished: str | None = None
    duration_s: float | None = None
    stage: str | None = None  # a failure's stage and source are written even if None
    source: str | None = None
    error: str | None = None
    timings_s: dict[str, float] | None = None
    reasons: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as the state file holds it."""
        written = {"stage", "source"} if self.outcome == "failed" else set()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None or f.name in written
        }

    @classmethod
    def from_dict(cls, data: object) -> Self | None:
        """Return the record a state file holds, None when it holds none."""
        if not isinstance(data, Mapping):
            return None
        known = {f.name for f in fields(cls)}
        values = {**_FALLBACKS, **{k: v for k, v in data.items() if k in known}}
        return cls(**values)


@dataclass(frozen=True)
class Success(Attempt):
    """An attempt that published a run: where, from what, with what result."""

    run_dir: str = ""
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        attempt: Attempt,
        *,
        run_dir: str,
        fingerprint: Mapping[str, Any],
        rows: dict[str, int],
        warnings: list[str],
    ) -> Success:
        """Return the success record of an attempt that published ``run_dir``."""
        values = {f.name: getattr(attempt, f.name) for f in fields(Attempt)}
        return cls(
            **values,
            run_dir=run_dir,
            fingerprint=fingerprint,
            rows=rows,
            warnings=warnings,
        )


@dataclass
class RunState:
    """The state of an output folder; each record is None until there is one."""

    last_attempt: Attempt | None = None
    last_success: Success | None = None
    last_failure: Attempt | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the state as its file holds it."""
        data: dict[str, Any] = {}
        if self.last_attempt is not None:
            data["last_attempt"] = self.last_attempt.to_dict()
        data["format"] = STATE_FORMAT
        if self.last_success is not None:
            data["last_success"] = self.last_success.to_dict()
        if self.last_failure is not None:
            data["last_failure"] = self.last_failure.to_dict()
        return data

    def logs(self) -> set[str]:
        """Return the names of the attempt logs the state refers to."""
        entries = (self.last_success, self.last_attempt, self.last_failure)
        return {
            Path(entry.log).name for entry in entries if entry is not None and entry.log
        }


def read_state(layout: Layout) -> RunState:
    """Return the state of an output folder, empty when there is none yet."""
    try:
        data = json.loads(layout.state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunState()
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable state file %s: %s", layout.state, exc)
        return RunState()
    if not isinstance(data, dict):
        return RunState()
    return RunState(
        last_attempt=Attempt.from_dict(data.get("last_attempt")),
        last_success=Success.from_dict(data.get("last_success")),
        last_failure=Attempt.from_dict(data.get("last_failure")),
    )


def write_state(layout: Layout, state: RunState) -> None:
    """Write the state file atomically."""
    write_json_atomic(layout.state, state.to_dict())
