"""What the commands print: a run's summary, the status report, the up-to-date line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from observatory import __version__
from observatory.core.timing import human_duration
from observatory.runs.execute import Outcome
from observatory.runs.layout import LATEST
from observatory.runs.lock import LockState, describe_holder
from observatory.runs.status import (
    AttemptStatus,
    FolderStatus,
    LocalInput,
    SourceInput,
)

if TYPE_CHECKING:  # pandas and the systems stay unimported for --help and status
    from observatory.systems.flows import FlowsReport


def summary_text(outcome: Outcome, config_path: Path) -> str:
    """Return what a computed run prints: systems, flows, warnings and files."""
    report = outcome.report
    assert report is not None
    lines = [
        f"observatory {__version__}: {outcome.command} {report.run_id} on {config_path}"
    ]
    if outcome.command == "refresh":
        lines.append("Recomputed because: " + "; ".join(outcome.reasons))
    if report.synthetic_flows:
        lines.append(
            "NOTE: the flows of this config are SYNTHETIC (demo), not INSEE figures."
        )
    lines.append(f"{len(report.systems)} métropole(s):")
    for system in report.systems:
        crowns = ", ".join(
            f"crown {k}: {n} EPCI" for k, n in system["epci_per_crown"].items()
        )
        lines.append(
            f"  {system['metropole_name']} ({system['metropole_code']}): {crowns or 'no neighbour'}"
        )
    flows = report.flows
    lines.append(
        f"Flows: {flows['commune_pairs']:,} commune pairs -> {flows['epci_pairs']:,} EPCI pairs, "
        f"{flows['workers_total']:,.0f} workers ({flows['workers_abroad']:,.0f} abroad, "
        f"{flows['unmatched_workers']:,.0f} unmatched)"
    )
    for role, summed in (("flows", flows), ("flows_previous", report.flows_previous)):
        if summed and (largest := summed.get("unmatched_largest")):
            lines.append(_unmatched_line(role, summed, largest))
    for warning in report.warnings:
        lines.append(f"Warning: {warning}")
    lines.append(f"Files written to {report.output_dir}:")
    for name in sorted(report.files):  # names relative to the run folder
        rows = report.rows.get(Path(name).stem)
        counted = rows is not None and name.endswith(".parquet")
        lines.append(f"  {name}" + (f" ({rows:,} rows)" if counted else ""))
    latest = report.output_dir.parent / LATEST
    lines.append(f"{latest} -> {report.run_id} ({outcome.latest_mode})")
    if outcome.pruned:
        lines.append(f"Pruned older run(s): {', '.join(outcome.pruned)}")
    lines.append(f"Done in {outcome.duration_s:.1f} s. Log: {outcome.log}")
    return "\n".join(lines)


def _unmatched_line(role: str, flows: FlowsReport, largest: dict[str, float]) -> str:
    """Return the warning listing the largest unmatched codes of one vintage."""
    codes = ", ".join(f"{code} ({workers:,.0f})" for code, workers in largest.items())
    return (
        f"Warning: {role}: {flows['unmatched_share']:.2%} of the workers "
        f"({flows['unmatched_workers']:,.0f}) live or work in a commune matching no "
        f"EPCI (under the gate of [inputs] max_unmatched_share); largest unmatched "
        f"codes (workers): {codes}"
    )


def up_to_date_text(outcome: Outcome) -> str:
    """Return the line of a refresh that found nothing changed."""
    success = outcome.previous_success
    finished = success.finished if success and success.finished else "?"
    return (
        f"observatory refresh: up to date; nothing recomputed: inputs, config and "
        f"package unchanged since run {outcome.latest} (published "
        f"{finished}), which latest shows."
    )


def status_text(status: FolderStatus) -> str:
    """Return the report of ``observatory status``."""
    success = status.last_success
    lines = [f"observatory {__version__}: output {status.root}, config {status.config}"]
    if success:
        lines.append(
            f"Last success:  {success.run_id}, finished {_since(success.finished)}, "
            f"took {success.duration_s or 0:.1f} s, in {success.run_dir}"
        )
    else:
        lines.append("Last success:  none (no refresh has published a run here yet)")
    kind = "symlink" if status.latest_is_symlink else "folder"
    lines.append(
        f"Latest:        {status.latest} -> {status.latest_run} ({kind})"
        if status.latest_run
        else f"Latest:        {status.latest} is missing"
    )
    lines.append(
        f"Last attempt:  {_attempt_line(status.last_attempt)}"
        if status.last_attempt
        else "Last attempt:  none"
    )
    if status.last_failure:
        lines.append(f"Last failure:  {_attempt_line(status.last_failure)}")
    lines.append(f"Lock:          {_lock_line(status.lock)}")
    runs = status.run_ids
    lines.append(
        f"Run folders:   {len(runs)} (keep_runs = {status.keep_runs})"
        + (f", oldest {runs[0]}" if runs else "")
    )
    lines.append("Inputs:")
    for entry in status.inputs:
        lines += _input_lines(entry)
    if status.reasons:
        lines.append(f"A refresh would recompute: yes ({'; '.join(status.reasons)})")
    else:
        lines.append(
            "A refresh would recompute: no (inputs, config and package unchanged "
            f"since run {success and success.run_id}; refresh also asks the "
            "servers whether a catalogue source changed)"
        )
    return "\n".join(lines)


def _since(iso: str | None) -> str:
    """Return an ISO time and how long ago it was."""
    if not iso:
        return "?"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    ago = human_duration((datetime.now(UTC) - moment).total_seconds())
    return f"{iso} ({ago} ago)"


def _attempt_line(entry: AttemptStatus) -> str:
    attempt, outcome = entry.attempt, entry.outcome
    if outcome == "running":
        said = "running now"
    elif outcome == "interrupted" and attempt.outcome == "running":
        said = "interrupted (ended without recording an outcome: killed, timed out or power loss)"
    elif outcome in ("failed", "interrupted"):
        said = f"{outcome}: {attempt.error if attempt.error is not None else '?'}"
    elif outcome == "up_to_date":
        said = "up to date, nothing recomputed"
    else:
        said = outcome
    took = (
        f", took {attempt.duration_s:.1f} s" if attempt.duration_s is not None else ""
    )
    return f"{attempt.command} {attempt.run_id}, started {_since(attempt.started)}{took}: {said}"


def _lock_line(lock: LockState) -> str:
    if not lock.present:
        return "free"
    if lock.stale is None:
        return f"held by {describe_holder(lock.holder)}"
    return f"stale ({lock.stale}); the next refresh recovers it"


def _input_lines(entry: SourceInput | LocalInput) -> list[str]:
    if isinstance(entry, SourceInput):
        vintage = f"RP {entry.vintage}, " if entry.vintage else ""
        head = (
            f"  {entry.role}: source {entry.source_id} ({entry.publisher}, "
            f"{vintage}geography {entry.geography})"
        )
        if not entry.cached:
            return [f"{head}: not in the cache {entry.cache}"]
        return [
            head,
            f"      {entry.url}",
            f"      fetched {_since(entry.fetched_at)}, checked "
            f"{_since(entry.checked_at)}, sha256 {entry.sha256}",
        ]
    detail = ", ".join(
        x
        for x in (
            f"vintage {entry.vintage}" if entry.vintage else "",
            f"geography {entry.geography}" if entry.geography else "",
        )
        if x
    )
    lines = [f"  {entry.role}: local file{f' ({detail})' if detail else ''}"]
    for file in entry.files:
        if file.sha256 is None:
            lines.append(f"      {file.path}: MISSING")
        else:
            age = human_duration(file.age_s)
            lines.append(
                f"      {file.path.name}: modified {age} ago, sha256 {file.sha256}"
            )
    return lines
