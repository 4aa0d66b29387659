"""Command-line interface: ``observatory run``.

Exit codes: 0 success, 1 a problem with the config or the input files (one
message on stderr says which file and what was expected), 2 wrong command-line
usage. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from observatory import __version__
from observatory.config import Config, default_config_path, load_config
from observatory.errors import ObservatoryError

if TYPE_CHECKING:
    from observatory.pipeline import RunReport

logger = logging.getLogger("observatory")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="observatory",
        description=(
            "Commuting flows between French métropoles and the EPCI of their first and "
            "second crowns: builds each métropole system from EPCI boundaries, computes "
            "flow matrices and indicators from INSEE's MOBPRO base flux, classifies the "
            "surrounding EPCI and writes GeoParquet layers (EPSG:2154) for QGIS."
        ),
        epilog="Run 'observatory run --help' for the main job. Documentation: README.md.",
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
            "write epci_indicators.parquet, flows.parquet, metropoles.parquet, "
            "flow_matrix.parquet and manifest.json. Without --config, runs the "
            "embedded demo (real Breton geometry, SYNTHETIC flows)."
        ),
    )
    _add_config(run)
    run.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: [output] dir of the config, else ./outputs)",
    )
    run.add_argument(
        "--offline",
        action="store_true",
        help="take catalogue sources from the download cache only, never the network",
    )
    _add_verbosity(run)

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


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="log debugging detail"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="log errors only (for cron)"
    )


def _configure_logging(verbose: bool, quiet: bool) -> None:
    # Handlers go on the package logger, not the root one, so that a host program
    # (or pytest) keeps its own; repeated calls replace our handler.
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    for handler in [h for h in logger.handlers if getattr(h, "_observatory", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler._observatory = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def _summary(report: RunReport, config_path: Path) -> str:
    lines = [f"observatory {__version__}: run {report.run_id} on {config_path}"]
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
    lines.append(f"Done in {sum(report.timings.values()):.1f} s.")
    return "\n".join(lines)


def _fetch(config: Config, offline: bool) -> int:
    from observatory.fetch import fetch_source
    from observatory.inputs import cache_dir, load_config_catalogue, source_refs

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
    from observatory.fetch import cached_provenance
    from observatory.inputs import cache_dir, catalogue_path, load_config_catalogue

    catalogue = load_config_catalogue(config)
    cache = cache_dir(config)
    lines = [
        f"Catalogue {catalogue_path(config)} ({len(catalogue)} sources), cache {cache}"
    ]
    for source in catalogue.values():
        record = cached_provenance(source, cache)
        cached = f"cached {record['fetched_at']}" if record else "not cached"
        size = f"{source.size:,} bytes" if source.size else "size not pinned"
        sha = source.sha256 or "sha256 not pinned"
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
        if args.command == "fetch":
            return _fetch(config, args.offline)
        if args.command == "sources":
            return _sources(config)
        from observatory import pipeline  # heavy imports only when a job runs

        output = args.output or config.output.dir or Path("outputs")
        report = pipeline.run(config, output.resolve(), offline=args.offline)
    except ObservatoryError as exc:
        logger.error("%s", exc)
        return EXIT_ERROR
    if not args.quiet:
        sys.stdout.write(_summary(report, config.path) + "\n")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
