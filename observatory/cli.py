"""Command-line interface: ``observatory run | refresh | status | fetch | sources``.

Exit codes: 0 success (or "up to date"), 1 a failure (one line on stderr says
what failed, where, and names the log), 2 wrong command-line usage, 75 another
refresh of the same output folder is running. ``run`` and ``refresh`` record
unexpected errors (bugs) with their traceback in the attempt's log.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from observatory import __version__
from observatory.config import (
    Config,
    check_scheduler,
    default_config_path,
    load_config,
)
from observatory.core.errors import ObservatoryError
from observatory.runs.refresh import (
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    LATEST,
    LOG_FORMAT,
    failure_line,
)

if TYPE_CHECKING:
    from observatory.runs.refresh import Outcome

logger = logging.getLogger("observatory")

EXIT_CODES = f"""exit codes:
  {EXIT_OK}   success, or "up to date" (refresh: nothing changed, nothing recomputed)
  {EXIT_ERROR}   failure: one line on stderr says what failed, where, and names the log
      (status: the last attempt failed or was interrupted)
  {EXIT_USAGE}   wrong command-line usage
  {EXIT_LOCKED}  another run or refresh of the same output folder is running (EX_TEMPFAIL)
"""


class _Formatter(argparse.HelpFormatter):
    """Wrap descriptions as usual but keep the exit-code table as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="observatory",
        description=(
            "Commuting flows between French métropoles and the EPCI of their first and "
            "second crowns: builds each métropole system from EPCI boundaries, computes "
            "flow matrices and indicators from INSEE's MOBPRO base flux, classifies the "
            "surrounding EPCI and writes GeoParquet layers (EPSG:2154; overseas "
            "departments in their own CRS) for QGIS."
        ),
        epilog=EXIT_CODES
        + "\nRun 'observatory run --help' for the main job, 'observatory refresh --help'"
        "\nfor cron. Documentation: README.md (section 'Running from cron').",
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="compute the indicator layers from the inputs of a config",
        description=(
            "Read the communes, EPCI composition and flows named in the config, build "
            "the crowns of each métropole, compute flows, indicators and classes, and "
            "publish epci_indicators.parquet, flows.parquet, metropoles.parquet, "
            "flow_matrix.parquet and manifest.json as a run folder DIR/<run id>/; "
            "DIR/latest/ then shows it. Always recomputes (see 'refresh'). Without "
            "--config, runs the embedded demo (real Breton geometry, SYNTHETIC flows)."
        ),
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    _add_config(run)
    _add_output(run)
    _add_offline(run)
    _add_scheduler(run)
    _add_verbosity(run)

    refresh = sub.add_parser(
        "refresh",
        help="fetch, and recompute only if an input, the config or the package changed (for cron)",
        description=(
            "For cron: take the output folder's lock, fetch the sources of the config, "
            "and recompute only if an input file, the config (or its classification "
            "rules or catalogue) or the package changed since the last successful run; "
            "otherwise say 'up to date' and exit 0. A recomputed run is written to "
            "DIR/.staging-<run id>/, validated, renamed to DIR/<run id>/, and "
            "DIR/latest switches to it in one rename; older run folders beyond "
            "[output] keep_runs are then pruned. A failure leaves DIR/latest untouched "
            "and prints one line on stderr. Log: DIR/.observatory/logs/<run id>.log; "
            "state: DIR/.observatory/state.json (see 'observatory status')."
        ),
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    _add_config(refresh)
    _add_output(refresh)
    refresh.add_argument(
        "--force", action="store_true", help="recompute even if nothing changed"
    )
    _add_offline(refresh)
    _add_scheduler(refresh)
    _add_verbosity(refresh)

    status = sub.add_parser(
        "status",
        help="last successful run, last attempt, sources, and whether a refresh would recompute",
        description=(
            "Print the last successful run and the last attempt of an output folder "
            "(time, duration, outcome), the lock, each input with its vintage, age and "
            "sha256, and whether a refresh would recompute (judged from the files on "
            "disk: only 'refresh' asks the servers). Writes and downloads nothing. "
            "Exits 1 when the last attempt failed or was interrupted."
        ),
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    _add_config(status)
    _add_output(status)
    _add_verbosity(status)

    fetch = sub.add_parser(
        "fetch",
        help="download the catalogue sources a config names into the cache",
        description=(
            "Download every catalogue source named in the [inputs] of a config into "
            "the download cache ([sources] cache_dir, $OBSERVATORY_CACHE or "
            "~/.cache/observatory), verifying size and sha256, with conditional "
            "requests so that an unchanged file is not downloaded again. Prints what "
            "was fetched, what was up to date and where each file is."
        ),
    )
    _add_config(fetch)
    fetch.add_argument(
        "--offline",
        action="store_true",
        help="check the cache only: say which source is missing or corrupted",
    )
    _add_verbosity(fetch)

    sources = sub.add_parser(
        "sources",
        help="list the catalogue of public sources",
        description=(
            "List the sources catalogue of a config (configs/sources.toml by "
            "default): id, title, publisher, vintage, URL, licence, pinned size and "
            "sha256, and whether the file is in the download cache."
        ),
    )
    _add_config(sources)
    _add_verbosity(sources)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE.toml",
        help="run configuration (default: the embedded demo, configs/demo.toml)",
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: [output] dir of the config, else ./outputs)",
    )


def _add_scheduler(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help=(
            "dask scheduler for the vintages x métropoles and the detailed "
            "FD_MOBPRO file: threads (default), "
            "processes, or a dask.distributed address tcp://HOST:8786 "
            "(overrides [compute] scheduler)"
        ),
    )


def _add_offline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--offline",
        action="store_true",
        help="take catalogue sources from the download cache only, never the network",
    )


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="log debugging detail"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="log errors only (for cron)"
    )


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(_to_console)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._observatory = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def _summary(outcome: Outcome, config_path: Path) -> str:
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
        f"{flows['unmatched_origin_workers'] + flows['unmatched_destination_workers']:,.0f} unmatched)"
    )
    for warning in report.warnings:
        lines.append(f"Warning: {warning}")
    lines.append(f"Files written to {report.output_dir}:")
    for name, path in report.files.items():
        rows = report.rows.get(Path(name).stem)
        lines.append(
            f"  {path.name}"
            + (
                f" ({rows:,} rows)"
                if rows is not None and name.endswith(".parquet")
                else ""
            )
        )
    latest = report.output_dir.parent / LATEST
    lines.append(f"{latest} -> {report.run_id} ({outcome.latest_mode})")
    if outcome.pruned:
        lines.append(f"Pruned older run(s): {', '.join(outcome.pruned)}")
    lines.append(f"Done in {outcome.duration_s:.1f} s. Log: {outcome.log}")
    return "\n".join(lines)


def _up_to_date(outcome: Outcome) -> str:
    success = outcome.previous_success or {}
    return (
        f"observatory refresh: up to date; nothing recomputed: inputs, config and "
        f"package unchanged since run {outcome.latest} (published "
        f"{success.get('finished', '?')}), which latest shows."
    )


def _output_dir(args: argparse.Namespace, config: Config) -> Path:
    """Return where runs are published: --output, else [output] dir, else outputs/."""
    return args.output or config.output.dir or Path("outputs")


def _execute(args: argparse.Namespace, config: Config) -> int:
    from observatory.runs import refresh

    output = _output_dir(args, config).resolve()
    restore = refresh.install_signal_handlers()
    try:
        outcome = refresh.execute(
            config,
            output,
            offline=args.offline,
            force=args.command == "run" or args.force,
            command=args.command,
        )
    except refresh.Locked as exc:
        sys.stderr.write(f"observatory {args.command}: {exc}; exiting\n")
        return EXIT_LOCKED
    except refresh.RunFailed as exc:
        sys.stderr.write(exc.line + "\n")
        return EXIT_ERROR
    finally:
        restore()
    if not args.quiet:
        text = (
            _up_to_date(outcome)
            if outcome.status == "up_to_date"
            else _summary(outcome, config.path)
        )
        sys.stdout.write(text + "\n")
    return EXIT_OK


def _fetch(config: Config, offline: bool) -> int:
    from observatory.sources.fetch import fetch_source
    from observatory.sources.inputs import cache_dir, load_config_catalogue, source_refs

    catalogue = load_config_catalogue(config)
    wanted = sorted({ref.source for ref in source_refs(config).values()})
    if not wanted:
        sys.stdout.write(
            f"{config.path} names no catalogue source: nothing to fetch.\n"
        )
        return EXIT_OK
    failed = 0
    for source_id in wanted:
        try:
            result = fetch_source(
                catalogue[source_id], cache_dir(config), offline=offline
            )
        except ObservatoryError as exc:
            failed += 1
            logger.error("%s", exc)
            sys.stdout.write(f"FAILED      {source_id}\n")
            continue
        sys.stdout.write(f"{result.status:<11} {source_id}  {result.path}\n")
        for name, path in sorted(result.members.items()):
            sys.stdout.write(f"{'':<11}   {name} -> {path}\n")
    if failed:
        sys.stdout.write(
            f"{failed} of {len(wanted)} source(s) failed; see the errors above.\n"
        )
        return EXIT_ERROR
    return EXIT_OK


def _sources(config: Config) -> int:
    from observatory.sources.fetch import cached_provenance
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
        cached = f"cached {record['fetched_at']}" if record else "not cached"
        size = f"{source.size:,} bytes" if source.size else "size not pinned"
        sha = f"sha256 {source.sha256}" if source.sha256 else "sha256 not pinned"
        vintage = f"RP {source.vintage}, " if source.vintage else ""
        lines += [
            "",
            f"{source.id}: {source.title}",
            f"  {source.publisher}, {vintage}geography {source.geography}, {source.licence}",
            f"  {source.url}",
            f"  {size}, {sha}; {cached}",
        ]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    config_path = args.config if args.config is not None else default_config_path()
    try:
        config = load_config(config_path)
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
        exc.observatory_stage = "config"  # type: ignore[attr-defined]
        sys.stderr.write(failure_line(args.command, exc, None) + "\n")
        return EXIT_ERROR
    try:
        if args.command == "fetch":
            return _fetch(config, args.offline)
        if args.command == "sources":
            return _sources(config)
        if args.command == "status":
            from observatory.runs.refresh import status

            text, code = status(config, _output_dir(args, config))
            sys.stdout.write(text + "\n")
            return code
    except ObservatoryError as exc:
        logger.error("%s", exc)
        return EXIT_ERROR
    return _execute(args, config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
