"""Run a command: load the config, set up logging, call the package, return an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from observatory.cli.parser import (
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
)
from observatory.cli.text import status_text, summary_text, up_to_date_text
from observatory.config import (
    Config,
    check_scheduler,
    default_config_path,
    load_config,
)
from observatory.core.errors import ObservatoryError
from observatory.core.fserrors import describe_os_error
from observatory.core.process import tune_for_batch
from observatory.runs.execute import RunFailed, execute_job, failure_line
from observatory.runs.lock import Locked
from observatory.runs.logs import LOG_FORMAT
from observatory.runs.signals import install_signal_handlers
from observatory.runs.status import (
    folder_status,
)

logger = logging.getLogger("observatory")


class _Console(logging.StreamHandler[TextIO]):
    """The stderr handler of the command line."""

    #: Marks the handlers observatory adds to its logger (replaced, not stacked).
    _observatory = True


def _to_console(record: logging.LogRecord) -> bool:
    # Records logged with extra={"console": False} go to the attempt's log only:
    # on stderr, a failed run or refresh prints its one line itself.
    return getattr(record, "console", True)


def _configure_logging(verbose: bool, quiet: bool) -> None:
    # Handlers go on the package logger, not the root one, so that a host program
    # (or pytest) keeps its own; repeated calls replace our handler. The level is
    # set on the handler too: a run lowers the logger's to DEBUG for its log file.
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    for handler in [h for h in logger.handlers if getattr(h, "_observatory", False)]:
        logger.removeHandler(handler)
    handler = _Console(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(_to_console)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)


def _output_dir(args: argparse.Namespace, config: Config) -> Path:
    """Return where runs are published: --output, else [output] dir, else outputs/."""
    return args.output or config.output.dir or Path("outputs")


def _output_problem(
    args: argparse.Namespace, config: Config, output: Path
) -> str | None:
    """Say, in one sentence, why runs cannot be published in ``output``; None if they can."""
    if args.output:
        named = f"--output {output}"
    elif config.output.dir:
        named = f"[output] dir {output} (in {config.path})"
    else:
        named = f"the output folder {output}"
    if output.exists() and not output.is_dir():
        return (
            f"{named} is a file, not a folder: name a folder (it is created if absent)"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {named}: {describe_os_error(exc)}"
    if not os.access(output, os.W_OK | os.X_OK):
        return (
            f"cannot write in {named}: the file system is read-only or "
            "you lack the permission"
        )
    return None


def _with_download_bounds(args: argparse.Namespace, config: Config) -> Config:
    """Return ``config`` with the download bounds given on the command line."""
    given = {
        "timeout_s": getattr(args, "timeout", None),
        "retries": getattr(args, "retries", None),
        "max_extracted_size": getattr(args, "max_extracted_size", None),
        "max_compression_ratio": getattr(args, "max_compression_ratio", None),
    }
    bounds = {key: value for key, value in given.items() if value is not None}
    if not bounds:
        return config
    return replace(config, sources=replace(config.sources, **bounds))


def _run_or_refresh(args: argparse.Namespace, config: Config) -> int:
    output = _output_dir(args, config).resolve()
    if problem := _output_problem(args, config, output):
        sys.stderr.write(f"observatory {args.command} failed: {problem}\n")
        return EXIT_ERROR
    restore = install_signal_handlers()
    try:
        outcome = execute_job(
            config,
            output,
            offline=args.offline,
            force=args.command == "run" or args.force,
            command=args.command,
        )
    except Locked as exc:
        sys.stderr.write(f"observatory {args.command}: {exc}; exiting\n")
        return EXIT_LOCKED
    except RunFailed as exc:
        sys.stderr.write(f"{exc}\n")
        # refused by the lock of the download cache: try again later, like a run's lock
        return EXIT_LOCKED if isinstance(exc.__cause__, Locked) else EXIT_ERROR
    finally:
        restore()
    if not args.quiet:
        text = (
            up_to_date_text(outcome)
            if outcome.status == "up_to_date"
            else summary_text(outcome, config.path)
        )
        sys.stdout.write(text + "\n")
    return EXIT_OK


# --------------------------------------------------------------------- status
def _status(config: Config, output_dir: Path) -> int:
    status = folder_status(config, output_dir)
    sys.stdout.write(status_text(status) + "\n")
    return EXIT_ERROR if status.failing else EXIT_OK


# --------------------------------------------------------------------- sources
def _fetch(config: Config, offline: bool) -> int:
    from observatory.sources.inputs import fetch_config_sources, source_refs

    if not source_refs(config):
        sys.stdout.write(
            f"{config.path} names no catalogue source: nothing to fetch.\n"
        )
        return EXIT_OK
    fetched = fetch_config_sources(config, offline, keep_going=True)
    shown: set[str] = set()
    failed: set[str] = set()
    for item in sorted(fetched.values(), key=lambda f: f.ref.source):
        if item.replaced and item.ref.source not in shown:
            shown.add(item.ref.source)
            sys.stdout.write(
                f"{'unavailable':<11} {item.ref.source}: {item.error}; "
                f"using its fallback {item.ref.fallback}\n"
            )
        result = item.result
        used = item.ref.fallback if item.replaced else item.ref.source
        if result is None or used is None:
            if used is not None and used not in failed:
                failed.add(used)
                logger.error("%s", item.error)
                sys.stdout.write(f"FAILED      {used}\n")
            continue
        if used in shown:
            continue
        shown.add(used)
        sys.stdout.write(f"{result.status:<11} {used}  {result.path}\n")
        for name, path in sorted(result.members.items()):
            sys.stdout.write(f"{'':<11}   {name} -> {path}\n")
    if failed:
        wanted = {f.ref.source for f in fetched.values()}
        sys.stdout.write(
            f"{len(failed)} of {len(wanted)} source(s) failed; see the errors above.\n"
        )
        return EXIT_ERROR
    return EXIT_OK


def _sources(config: Config) -> int:
    from observatory.sources.cache import cached_provenance
    from observatory.sources.inputs import (
        cache_dir,
        catalogue_path,
        load_config_catalogue,
    )

    catalogue = load_config_catalogue(config)
    cache = cache_dir(config)
    lines = [
        f"Catalogue {catalogue_path(config)} ({len(catalogue)} sources), cache {cache}"
    ]
    for source in catalogue.values():
        record = cached_provenance(source, cache)
        cached = f"cached {record.fetched_at}" if record else "not cached"
        size = f"{source.size:,} bytes" if source.size else "size not pinned"
        sha = f"sha256 {source.sha256}" if source.sha256 else "sha256 not pinned"
        if source.sha256_from:
            sha += f" (third-party, measured by {source.sha256_from})"
        if source.md5:
            sha += f", md5 {source.md5} (third-party, measured by {source.md5_from})"
        vintage = f"RP {source.vintage}, " if source.vintage else ""
        verified = "" if source.verified else " [unverified]"
        lines += [
            "",
            f"{source.id}: {source.title}{verified}",
            f"  {source.publisher}, {vintage}geography {source.geography}, {source.licence}",
            f"  {source.url}",
            f"  {size}, {sha}; {cached}",
        ]
        if source.evidence:
            lines.append(f"  evidence: {source.evidence}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _load_config(args: argparse.Namespace) -> Config | int:
    """Return the config the command line names, or the exit code of its failure."""
    config_path = args.config if args.config is not None else default_config_path()
    try:
        config = load_config(config_path)
        if args.command in ("run", "refresh", "fetch", "status"):
            # one geography, checked before anything is downloaded or read
            from observatory.sources.inputs import check_geography

            config = check_geography(config)
        if getattr(args, "scheduler", None):
            check_scheduler(args.scheduler, "--scheduler")
            config = replace(
                config, compute=replace(config.compute, scheduler=args.scheduler)
            )
    except ObservatoryError as exc:
        if args.command not in ("run", "refresh"):
            logger.error("%s", exc)
            return EXIT_ERROR
        # The config is the first stage of a run: one line, as for the others.
        logger.error("%s", exc, extra={"console": False})
        sys.stderr.write(failure_line(args.command, exc, None, "config") + "\n")
        return EXIT_ERROR
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    tuned = tune_for_batch()  # before numpy is imported
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    if tuned:
        logger.debug("batch settings of this process: %s", tuned)
    config = _load_config(args)
    if isinstance(config, int):
        return config
    config = _with_download_bounds(args, config)
    try:
        if args.command == "fetch":
            return _fetch(config, args.offline)
        if args.command == "sources":
            return _sources(config)
        if args.command == "status":
            return _status(config, _output_dir(args, config))
    except Locked as exc:
        sys.stderr.write(f"observatory {args.command}: {exc}; exiting\n")
        return EXIT_LOCKED
    except ObservatoryError as exc:
        logger.error("%s", exc)
        return EXIT_ERROR
    except OSError as exc:  # a file-system error no layer turned into a sentence
        logger.error("observatory %s failed: %s", args.command, describe_os_error(exc))
        return EXIT_ERROR
    return _run_or_refresh(args, config)
