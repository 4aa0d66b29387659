"""What ``observatory status`` reports on an output folder, as a typed record.

:func:`folder_status` reads the state, the lock, ``latest`` and the inputs, and
judges from the files on disk whether a refresh would recompute. It writes and
downloads nothing; the command line turns the record into text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from observatory.config import Config, SourceRef
from observatory.core.files import sha256_file
from observatory.runs.fingerprint import static_changes, static_fingerprint
from observatory.runs.layout import Layout
from observatory.runs.lock import LockState, lock_state
from observatory.runs.state import Attempt, Success, read_state
from observatory.sources.inputs import (
    ResolvedInput,
    cache_dir,
    configured_inputs,
    input_files,
    source_refs,
)


@dataclass(frozen=True)
class AttemptStatus:
    """An attempt of the state file, and its outcome judged now.

    ``outcome`` is the recorded one, except that a "running" attempt whose lock
    is no longer held by a live process is "interrupted".
    """

    attempt: Attempt
    outcome: str


@dataclass(frozen=True)
class SourceInput:
    """An input taken from a catalogue source, and its file in the download cache."""

    role: str
    source_id: str
    publisher: str
    vintage: int | None
    geography: int | None
    url: str
    cache: Path
    cached: bool
    fetched_at: str | None = None
    checked_at: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class LocalFile:
    """A file a local input is read from; ``sha256`` is None when it is missing."""

    path: Path
    sha256: str | None
    age_s: float = 0.0


@dataclass(frozen=True)
class LocalInput:
    """An input read from local files."""

    role: str
    vintage: Any  # as the manifest of the run latest shows recorded it
    geography: int | None
    files: tuple[LocalFile, ...]


@dataclass(frozen=True)
class FolderStatus:
    """The state of an output folder, and whether a refresh would recompute."""

    root: Path
    config: Path
    keep_runs: int
    last_success: Success | None
    latest: Path
    latest_run: str | None  # None: latest is missing or dangling
    latest_is_symlink: bool
    last_attempt: AttemptStatus | None
    last_failure: AttemptStatus | None  # None too when it is the last attempt
    lock: LockState
    run_ids: tuple[str, ...]
    inputs: tuple[SourceInput | LocalInput, ...]
    reasons: tuple[str, ...]  # why a refresh would recompute; () if it would not

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed or was interrupted."""
        attempt = self.last_attempt
        return attempt is not None and attempt.outcome in ("failed", "interrupted")


def folder_status(config: Config, output_dir: Path) -> FolderStatus:
    """Return the status of an output folder.

    Nothing is written and nothing is downloaded: whether a source changed
    upstream is only known to the next ``refresh``.
    """
    layout = Layout(Path(output_dir).resolve())
    state = read_state(layout)
    lock = lock_state(layout.lock)
    success, attempt, failure = (
        state.last_success,
        state.last_attempt,
        state.last_failure,
    )
    if failure and attempt and failure.run_id == attempt.run_id:
        failure = None
    previous = success.fingerprint if success else {}
    inputs, reasons = _inputs(config, layout, previous if success else None)
    shown = layout.latest_run()
    if not success:
        reasons.insert(0, "no successful run recorded")
    else:
        reasons = static_changes(previous, static_fingerprint(config)) + reasons
        if shown != success.run_id:
            reasons.append(f"{layout.latest} does not show run {success.run_id}")
    return FolderStatus(
        root=layout.root,
        config=config.path,
        keep_runs=config.output.keep_runs,
        last_success=success,
        latest=layout.latest,
        latest_run=shown,
        latest_is_symlink=layout.latest.is_symlink(),
        last_attempt=_judged(attempt, lock),
        last_failure=_judged(failure, lock),
        lock=lock,
        run_ids=tuple(layout.run_ids()),
        inputs=tuple(inputs),
        reasons=tuple(reasons),
    )


def _judged(attempt: Attempt | None, lock: LockState) -> AttemptStatus | None:
    if attempt is None:
        return None
    holder = lock.holder
    alive = (
        lock.present
        and lock.stale is None
        and holder is not None
        and holder.run_id == attempt.run_id
    )
    outcome = attempt.outcome
    return AttemptStatus(
        attempt, outcome if outcome != "running" or alive else "interrupted"
    )


def _inputs(
    config: Config, layout: Layout, previous: Mapping[str, Any] | None
) -> tuple[list[SourceInput | LocalInput], list[str]]:
    """Return each configured input, and why a refresh would recompute for it."""
    from observatory.sources.cache import cached_provenance
    from observatory.sources.inputs import load_config_catalogue

    before = {(r["role"], r["path"]): r for r in (previous or {}).get("inputs", [])}
    run_inputs = {r.get("role"): r for r in layout.latest_manifest().get("inputs", [])}
    catalogue = load_config_catalogue(config) if source_refs(config) else {}
    inputs: list[SourceInput | LocalInput] = []
    reasons: list[str] = []
    for role, (kind, value) in configured_inputs(config).items():
        if isinstance(value, SourceRef):
            source = catalogue[value.source]
            record = cached_provenance(source, cache_dir(config))
            entry = SourceInput(
                role=role,
                source_id=value.source,
                publisher=source.publisher,
                vintage=source.vintage,
                geography=source.geography,
                url=source.url,
                cache=cache_dir(config),
                cached=record is not None,
                fetched_at=record.fetched_at if record else None,
                checked_at=record.checked_at if record else None,
                sha256=record.sha256 if record else None,
            )
            inputs.append(entry)
            reasons += _source_reasons(entry, before, previous is not None)
            continue
        files = tuple(_local_files(ResolvedInput(kind, value), value))
        # The geography written beside the path, else the config's: every local
        # input states one (a bare path takes [inputs] geography).
        geography = config.inputs.geographies.get(role, config.inputs.geography)
        vintage = run_inputs.get(role, {}).get("vintage")
        inputs.append(LocalInput(role, vintage, geography, files))
        reasons += _local_reasons(role, files, before, previous is not None)
    return inputs, reasons


def _local_files(resolved: ResolvedInput, value: Path) -> list[LocalFile]:
    files = []
    for part in input_files(resolved) or [value]:
        if not part.is_file():
            files.append(LocalFile(part, None))
            continue
        age = time.time() - part.stat().st_mtime
        files.append(LocalFile(part, sha256_file(part), age))
    return files


def _source_reasons(
    entry: SourceInput, before: dict[tuple[str, str], Any], succeeded: bool
) -> list[str]:
    if not entry.cached:
        return [f"source {entry.source_id} is not in the cache"]
    recorded = {r.get("source_sha256") for k, r in before.items() if k[0] == entry.role}
    if succeeded and recorded and recorded != {entry.sha256}:
        return [f"source {entry.source_id} changed in the cache"]
    return []


def _local_reasons(
    role: str,
    files: tuple[LocalFile, ...],
    before: dict[tuple[str, str], Any],
    succeeded: bool,
) -> list[str]:
    reasons = []
    for file in files:
        if file.sha256 is None:
            reasons.append(f"input {role} is missing: {file.path}")
            continue
        known = before.get((role, str(file.path)))
        if succeeded and (known is None or known["sha256"] != file.sha256):
            reasons.append(f"input {role} changed: {file.path}")
    return reasons
