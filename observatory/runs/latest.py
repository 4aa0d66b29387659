"""What readers open: ``latest`` switched in one rename, old runs pruned, leftovers removed.

A reader opening ``latest/...`` gets one complete run, never a mix. Nothing
outside a run's staging folder changes before the switch; old runs are pruned
only after it, and what a killed run left is removed by the next one.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
from pathlib import Path

from observatory.core.errors import OutputError
from observatory.core.files import fsync_path, write_text_atomic
from observatory.core.timing import STAGING_PREFIX
from observatory.runs.layout import LATEST_FILE, Layout, remove_path
from observatory.runs.signals import critical_section

logger = logging.getLogger(__name__)


#: Names of what an interrupted run leaves in the output folder.
_LEFTOVER_PREFIXES = (
    STAGING_PREFIX,
    ".trash-",
    ".latest-",
    ".tmp-",
    f".{LATEST_FILE}.",
)


#: Files that earlier versions wrote directly into the output folder.
_FLAT_FILES = (
    "epci_indicators.parquet",
    "flows.parquet",
    "metropoles.parquet",
    "flow_matrix.parquet",
    "manifest.json",
)


def remove_leftovers(layout: Layout) -> list[str]:
    """Remove what killed runs left: staging and temporary folders, stale lock copies.

    Call it only with the lock held: these names belong to the lock holder.
    """
    removed = []
    places = [(layout.root, _LEFTOVER_PREFIXES), (layout.meta, ("lock.stale-", "."))]
    for folder, prefixes in places:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.name.startswith(prefixes):
                continue
            try:
                remove_path(path)
            except OSError as exc:
                logger.warning("cannot remove leftover %s: %s", path, exc)
                continue
            logger.info("removed %s, left by an interrupted run", path)
            removed.append(path.name)
    return removed


def switch_latest(layout: Layout, run_id: str, mode: str = "auto") -> str:
    """Make ``latest`` show the run folder ``run_id`` in one rename; return the mode used.

    ``symlink``: a relative symlink made under a temporary name, then
    :func:`os.replace`'d over ``latest``. ``copy`` (Windows shares, filesystems
    without symlinks): the run folder is copied to a temporary folder, flushed,
    then ``latest`` is renamed aside and the copy renamed to ``latest``; a reader
    may find no ``latest`` for the instant between the two renames, never a mix.
    ``auto`` tries a symlink and falls back to a copy. The ``LATEST`` file then
    names the run.

    Raises
    ------
    OutputError
        When the run folder is incomplete or ``latest`` cannot be switched; it
        then still shows the previous run.
    """
    target = layout.run_dir(run_id)
    if not (target / "manifest.json").is_file():
        msg = f"{target} is not a complete run folder"
        raise OutputError(msg, path=target)
    token = secrets.token_hex(4)
    tmp = layout.root / f".latest-{token}"
    old = layout.root / f".latest-old-{token}"
    used = _make_symlink(layout, tmp, run_id, mode)
    try:
        if used == "copy":
            _make_copy(target, tmp)
        with critical_section():
            _replace_latest(layout.latest, tmp, old, used)
    except OSError as exc:
        with contextlib.suppress(OSError):
            remove_path(tmp)
        hint = (
            " (a file in it may be open, e.g. in QGIS on Windows)"
            if used == "copy"
            else ""
        )
        msg = (
            f"{layout.latest}: cannot switch to run {run_id} ({exc.strerror or exc}); "
            f"it stays on the previous run{hint}; the new run is complete in {target}"
        )
        raise OutputError(msg, path=layout.latest) from exc
    if old.exists():
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
    fsync_path(layout.root)
    write_text_atomic(layout.root / LATEST_FILE, run_id + "\n")
    logger.info("%s -> %s (%s)", layout.latest, run_id, used)
    return used


def _make_symlink(layout: Layout, tmp: Path, run_id: str, mode: str) -> str:
    """Make ``tmp`` a symlink to the run unless ``mode`` is copy; return the mode used."""
    if mode not in ("auto", "symlink"):
        return mode
    try:
        tmp.symlink_to(run_id, target_is_directory=True)
    except (OSError, NotImplementedError) as exc:
        if mode == "symlink":
            msg = f'{layout.root}: cannot create a symlink ({exc}); set [output] latest = "copy"'
            raise OutputError(msg, path=layout.root) from exc
        logger.info("no symlinks in %s (%s): latest is a copy", layout.root, exc)
        return "copy"
    return "symlink"


def _make_copy(target: Path, tmp: Path) -> None:
    shutil.copytree(target, tmp, symlinks=False)
    for path in tmp.iterdir():
        fsync_path(path)
    fsync_path(tmp)


def _replace_latest(link: Path, tmp: Path, old: Path, used: str) -> None:
    """Put ``tmp`` in the place of ``latest``; a real folder is moved aside first."""
    if link.is_symlink():
        if used == "copy":
            link.unlink()
    elif link.exists():
        link.rename(old)
    try:
        tmp.replace(link)
    except OSError:
        if old.exists() and not link.exists():
            old.rename(link)
        raise


def heal_latest(layout: Layout, run_id: str | None, mode: str) -> None:
    """Point a missing ``latest`` at ``run_id`` again (a copy-mode switch killed between its renames)."""
    if layout.latest.exists() or layout.latest.is_symlink() or run_id is None:
        return
    if (layout.run_dir(run_id) / "manifest.json").is_file():
        logger.warning(
            "%s is missing: pointing it at run %s again", layout.latest, run_id
        )
        switch_latest(layout, run_id, mode)


def warn_flat_layout(layout: Layout) -> None:
    """Warn about layers an earlier version wrote flat into the output folder."""
    flat = [name for name in _FLAT_FILES if (layout.root / name).is_file()]
    if flat:
        logger.warning(
            "%s holds %s from an earlier version that wrote layers flat: they are no "
            "longer updated; open %s/ instead and delete them",
            layout.root,
            ", ".join(flat),
            layout.latest,
        )


def prune_runs(layout: Layout, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` run folders, never the one ``latest`` shows.

    A folder is first renamed to ``.trash-<run id>`` (it vanishes in one step),
    then deleted. Errors are logged, not raised: the new run is published.
    """
    shown = layout.latest_run()
    runs = layout.run_ids()
    kept = set(runs[-keep:]) | {shown}
    pruned = []
    for run_id in runs:
        if run_id in kept:
            continue
        trash = layout.root / f".trash-{run_id}"
        try:
            layout.run_dir(run_id).rename(trash)
            shutil.rmtree(trash)
        except OSError as exc:
            logger.warning("cannot prune %s: %s", layout.run_dir(run_id), exc)
            continue
        logger.info("pruned run %s (keep_runs = %d)", run_id, keep)
        pruned.append(run_id)
    return pruned
