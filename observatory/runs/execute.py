"""One ``observatory run`` or ``refresh`` of an output folder, from its lock to its state.

:func:`execute_job` takes the lock, fetches, compares fingerprints, runs the
pipeline when anything changed (or when forced), switches ``latest``, prunes old
runs and records the attempt; a failure is one line (:func:`failure_line`) in
the state and the log, and leaves the last good outputs and ``latest`` untouched.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from observatory import __version__
from observatory.config import Config
from observatory.core.errors import ObservatoryError
from observatory.core.fserrors import describe_os_error
from observatory.core.timing import StageTimings, new_run_id, stage
from observatory.runs.census_reading import CensusReading
from observatory.runs.fingerprint import Fingerprint, changes, fingerprint
from observatory.runs.latest import (
    heal_latest,
    prune_runs,
    remove_leftovers,
    switch_latest,
    warn_flat_layout,
)
from observatory.runs.layout import Layout
from observatory.runs.lock import Lock
from observatory.runs.logs import attempt_log, prune_logs
from observatory.runs.signals import Terminated
from observatory.runs.state import Attempt, RunState, Success, read_state, write_state
from observatory.sources.inputs import ResolvedInput, resolve_inputs

if TYPE_CHECKING:
    from observatory.runs.pipeline import RunReport


logger = logging.getLogger(__name__)


class RunFailed(ObservatoryError):
    """A run or refresh failed; its message is the one line for stderr (and cron mail).

    ``stage`` and ``source`` say where it failed, ``log`` names the attempt's log.
    """

    def __init__(
        self, line: str, *, stage: str | None, source: str | None, log: Path | None
    ) -> None:
        super().__init__(line, stage=stage, source=source)
        self.log = log


@dataclass
class Outcome:
    """What :func:`execute_job` did."""

    command: str
    status: str  # "published" or "up_to_date"
    run_id: str  # this attempt
    latest: str | None  # the run latest shows now
    reasons: list[str] = field(default_factory=list)
    report: RunReport | None = None
    log: Path | None = None
    duration_s: float = 0.0
    latest_mode: str | None = None
    pruned: list[str] = field(default_factory=list)
    previous_success: Success | None = None


@dataclass(frozen=True)
class _Job:
    """What one attempt was asked to do, and where."""

    config: Config
    layout: Layout
    run_id: str
    started: datetime
    log: Path
    offline: bool
    force: bool
    command: str


def failure_line(
    command: str, exc: BaseException, log: Path | None, stage: str | None
) -> str:
    """Return the one line saying what failed, on which stage or source, and the log.

    ``stage`` is where ``exc`` was raised (None: before the first stage); the
    source is the ``source`` of an :class:`ObservatoryError`.
    """
    where = f"stage '{stage or 'start'}'"
    source = exc.source if isinstance(exc, ObservatoryError) else None
    if isinstance(exc, ObservatoryError | Terminated):
        what = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        what = "interrupted (SIGINT)"
    elif isinstance(exc, OSError):  # disk full, permissions... outside the writers
        what = describe_os_error(exc) + (" (traceback in the log)" if log else "")
    else:
        what = f"unexpected error {type(exc).__name__}: {exc} (a bug" + (
            ": the traceback is in the log)" if log else ")"
        )
    if source:
        where += f" (source {source})"
        what = what.removeprefix(f"{source}: ")
    line = f"observatory {command} failed at {where}: {what}"
    line += f"; log: {log}" if log else ""
    return re.sub(r"\s*[\r\n]+\s*", " ", line).strip()


def execute_job(
    config: Config,
    output_dir: Path,
    *,
    offline: bool = False,
    force: bool = False,
    command: str = "refresh",
) -> Outcome:
    """Fetch, recompute if anything changed (or ``force``), publish, switch ``latest``.

    Parameters
    ----------
    config
        A loaded configuration.
    output_dir
        The output folder (run folders, ``latest``, ``.observatory/``).
    offline
        Take catalogue sources from the download cache only.
    force
        Recompute even when nothing changed (``observatory run`` always does).
    command
        ``"refresh"`` or ``"run"``, for the state and the messages.

    Raises
    ------
    Locked
        Another refresh of ``output_dir`` is running.
    RunFailed
        The run failed; the last good outputs and ``latest`` are untouched, the
        failure is recorded in the state and the attempt's log.
    """
    layout = Layout(Path(output_dir).resolve())
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    lock = Lock(layout.lock, run_id, command)
    try:
        layout.logs.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:  # an OutputError from the lock, or the folder itself
        line = failure_line(command, exc, None, "lock")
        raise RunFailed(line, stage="lock", source=None, log=None) from exc
    try:
        log = layout.logs / f"{run_id}.log"
        with attempt_log(log):
            if lock.recovered:
                logger.warning("%s", lock.recovered)
            job = _Job(config, layout, run_id, started, log, offline, force, command)
            return _execute_locked(job)
    finally:
        lock.release()


def _execute_locked(job: _Job) -> Outcome:
    clock = time.monotonic()
    logger.info(
        "observatory %s: %s %s%s: config %s, output %s",
        __version__,
        job.command,
        job.run_id,
        " --force" if job.force and job.command == "refresh" else "",
        job.config.path,
        job.layout.root,
    )
    state = read_state(job.layout)
    _note_interrupted(state)
    attempt = Attempt(
        run_id=job.run_id,
        command=job.command,
        started=_iso(job.started),
        pid=os.getpid(),
        host=socket.gethostname(),
        log=str(job.log),
        outcome="running",
    )
    state.last_attempt = attempt
    timings = StageTimings()
    outcome = Outcome(
        command=job.command,
        status="published",
        run_id=job.run_id,
        latest=None,
        log=job.log,
        previous_success=state.last_success,
    )
    try:
        current = _compute(job, state, timings, outcome)
    except BaseException as exc:
        failure = _record_failure(job, state, attempt, exc, timings, clock)
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        raise failure from exc
    outcome.duration_s = round(time.monotonic() - clock, 3)
    _record_success(job, state, attempt, outcome, current, timings)
    prune_logs(job.layout, state)
    logger.info(
        "%s %s: %s in %.1f s",
        job.command,
        job.run_id,
        outcome.status,
        outcome.duration_s,
    )
    return outcome


def _note_interrupted(state: RunState) -> None:
    """Record a last attempt still "running" (its process died) as interrupted."""
    previous = state.last_attempt
    if previous is None or previous.outcome != "running":
        return
    error = (
        f"{previous.command} {previous.run_id} ended without recording an outcome "
        "(killed, timed out or power loss)"
    )
    state.last_failure = replace(previous, outcome="interrupted", error=error)
    logger.warning("%s", error)


def _compute(
    job: _Job, state: RunState, timings: StageTimings, outcome: Outcome
) -> Fingerprint:
    """Run the stages: start, fetch, fingerprint, then the pipeline if anything changed."""
    success = state.last_success
    with stage("start", timings):
        write_state(job.layout, state)
        remove_leftovers(job.layout)
        shown = success.run_id if success else None
        heal_latest(job.layout, shown, job.config.output.latest)
        warn_flat_layout(job.layout)
    with stage("fetch", timings):
        inputs = resolve_inputs(job.config, offline=job.offline, command=job.command)
    # A forced job (``observatory run``, ``refresh --force``) recomputes whatever
    # the fingerprint says: its census flows start being read before it.
    census = _census_reading(job, inputs) if job.force else None
    try:
        with stage("fingerprint", timings):
            current = fingerprint(job.config, inputs)
            reasons = _reasons(job, success, current)
        if not reasons:
            assert success is not None  # without one there is a reason
            outcome.status = "up_to_date"
            outcome.latest = success.run_id
            logger.info(
                "up to date: inputs, config and package unchanged since run %s",
                success.run_id,
            )
            return current
        logger.info("recomputing: %s", "; ".join(reasons))
        outcome.reasons = reasons
        if census is None:
            census = _census_reading(job, inputs)
        _recompute(job, inputs, current, timings, outcome, census)
    finally:
        if census is not None:
            census.stop()
    return current


def _census_reading(
    job: _Job, inputs: dict[str, ResolvedInput]
) -> CensusReading | None:
    """Start reading the census flows in a helper process, when the run has some."""
    return CensusReading.start(job.config, inputs) if "flows" in inputs else None


def _recompute(
    job: _Job,
    inputs: dict[str, ResolvedInput],
    current: Fingerprint,
    timings: StageTimings,
    outcome: Outcome,
    census: CensusReading | None,
) -> None:
    """Run the pipeline, switch ``latest`` to its run folder, prune old runs.

    The census flows are being read by a helper process (``census``, stopped
    here once the pipeline ends) from before the pipeline's heavy imports,
    which they overlap.
    """
    try:
        from observatory.runs import pipeline  # heavy imports only when computing

        outcome.report = pipeline.run(
            job.config,
            job.layout.root,
            inputs=inputs,
            run_id=job.run_id,
            started=job.started,
            timings=timings,
            manifest_extra={
                "refresh": {
                    "command": job.command,
                    "forced": job.force,
                    "reasons": outcome.reasons,
                    "fingerprint": current,
                }
            },
            census_reading=census,
        )
    finally:
        if census is not None:
            census.stop()
    timings.update(
        outcome.report.timings
    )  # the same dict, unless the pipeline copied it
    with stage("latest", timings):
        outcome.latest_mode = switch_latest(
            job.layout, job.run_id, job.config.output.latest
        )
        outcome.latest = job.run_id
    with stage("prune", timings):
        outcome.pruned = prune_runs(job.layout, job.config.output.keep_runs)


def _reasons(job: _Job, success: Success | None, current: Fingerprint) -> list[str]:
    """Return why the outputs must be recomputed; [] when they are up to date."""
    reasons = []
    if job.force:
        command = job.command
        reasons.append("--force" if command == "refresh" else f"observatory {command}")
    if success is None:
        return [*reasons, "no successful run recorded"]
    shown = job.layout.latest_run()
    if shown != success.run_id:
        reasons.append(
            f"{job.layout.latest} shows {shown or 'nothing'}, not the last successful "
            f"run {success.run_id}"
        )
    return reasons + changes(success.fingerprint, current)


def _record_failure(
    job: _Job,
    state: RunState,
    attempt: Attempt,
    exc: BaseException,
    timings: StageTimings,
    clock: float,
) -> RunFailed:
    """Log and record a failed attempt; return the error that reports it."""
    failed_stage = timings.failed_stage(exc)
    source = exc.source if isinstance(exc, ObservatoryError) else None
    line = failure_line(job.command, exc, job.log, failed_stage)
    if isinstance(exc, ObservatoryError | Terminated | KeyboardInterrupt):
        logger.error("%s", line, extra={"console": False})
    else:
        logger.error("%s", line, exc_info=exc, extra={"console": False})
    state.last_attempt = state.last_failure = replace(
        attempt,
        outcome="failed",
        finished=_iso(datetime.now(UTC)),
        duration_s=round(time.monotonic() - clock, 3),
        stage=failed_stage,
        source=source,
        error=line,
        timings_s=dict(timings),
    )
    try:
        write_state(job.layout, state)
    except OSError as state_exc:
        logger.error("cannot record the failure in %s: %s", job.layout.state, state_exc)
    return RunFailed(line, stage=failed_stage, source=source, log=job.log)


def _record_success(
    job: _Job,
    state: RunState,
    attempt: Attempt,
    outcome: Outcome,
    current: Fingerprint,
    timings: StageTimings,
) -> None:
    """Record an attempt that published a run or found the outputs up to date."""
    ended = replace(
        attempt,
        outcome=outcome.status,
        finished=_iso(datetime.now(UTC)),
        duration_s=outcome.duration_s,
        timings_s=dict(timings),
    )
    if outcome.status == "published":
        ended = replace(ended, reasons=outcome.reasons)
        report = outcome.report
        state.last_success = Success.of(
            ended,
            run_dir=str(job.layout.run_dir(job.run_id)),
            fingerprint=current,
            rows=report.rows if report else {},
            warnings=report.warnings if report else [],
        )
    state.last_attempt = ended
    try:
        write_state(job.layout, state)
    except OSError as exc:
        line = failure_line(job.command, exc, job.log, "state")
        logger.error("%s", line, extra={"console": False})
        raise RunFailed(line, stage="state", source=None, log=job.log) from exc


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
