"""The command line's grammar: commands, options, help texts and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from observatory import __version__
from observatory.config.runtime import parse_size

#: Exit codes of every command.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75  # 75: EX_TEMPFAIL


EXIT_CODES = f"""exit codes:
  {EXIT_OK}   success, or "up to date" (refresh: nothing changed, nothing recomputed)
  {EXIT_ERROR}   failure: one line on stderr says what failed, where, and names the log
      (status: the last attempt failed or was interrupted)
  {EXIT_USAGE}   wrong command-line usage
  {EXIT_LOCKED}  another run or refresh of the same output folder, or another fetch into
      the same download cache, is running; the line says which (EX_TEMPFAIL)
"""


class _Formatter(argparse.HelpFormatter):
    """Wrap descriptions as usual but keep the exit-code table as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``observatory`` and its five commands."""
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
    _add_run(sub)
    _add_refresh(sub)
    _add_status(sub)
    _add_fetch(sub)
    _add_sources(sub)
    return parser


#: What ``add_subparsers()`` returns, to which each command adds its parser.
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_run(sub: _Commands) -> None:
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
    _add_download_bounds(run)
    _add_scheduler(run)
    _add_verbosity(run)


def _add_refresh(sub: _Commands) -> None:
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
    _add_download_bounds(refresh)
    _add_scheduler(refresh)
    _add_verbosity(refresh)


def _add_status(sub: _Commands) -> None:
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


def _add_fetch(sub: _Commands) -> None:
    fetch = sub.add_parser(
        "fetch",
        help="download the catalogue sources a config names into the cache",
        description=(
            "Download every catalogue source named in the [inputs] of a config into "
            "the download cache ([sources] cache_dir, $OBSERVATORY_CACHE or "
            "~/.cache/observatory), verifying size and sha256, with conditional "
            "requests so that an unchanged file is not downloaded again, and "
            "extracting archive members within the bounds of [sources]. A source "
            "changes all at once or not at all: a refused download or archive leaves "
            "the cache as it was. One fetch at a time per cache folder. Prints what "
            "was fetched, what was up to date and where each file is."
        ),
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    _add_config(fetch)
    fetch.add_argument(
        "--offline",
        action="store_true",
        help=(
            "check the cache only: say which source is missing, corrupted, off its "
            "pinned size or checksum, or fetched from another URL than the catalogue's"
        ),
    )
    _add_download_bounds(fetch)
    _add_verbosity(fetch)


def _add_sources(sub: _Commands) -> None:
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


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        msg = f"expected seconds above 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _retries(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 20:
        msg = f"expected 0 to 20 retries, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _size(text: str) -> str:
    if not parse_size(text):
        msg = f'expected a size above 0 such as "4GiB" or "500MB", got {text!r}'
        raise argparse.ArgumentTypeError(msg)
    return text


def _ratio(text: str) -> float:
    value = float(text)
    if not value >= 1:
        msg = f"expected a ratio of at least 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_download_bounds(parser: argparse.ArgumentParser) -> None:
    """Add the options replacing the [sources] bounds of a download for one command."""
    bounds = parser.add_argument_group(
        "download bounds (default: [sources] of the config)"
    )
    bounds.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="to connect and between two reads ([sources] timeout_s, default 60)",
    )
    bounds.add_argument(
        "--retries",
        type=_retries,
        metavar="N",
        help="after a 5xx, a timeout or a body cut short ([sources] retries, default 4)",
    )
    bounds.add_argument(
        "--max-extracted-size",
        type=_size,
        metavar="SIZE",
        help=(
            "largest size of the members extracted from one archive, and of one "
            'downloaded file ([sources] max_extracted_size, default "4 GiB")'
        ),
    )
    bounds.add_argument(
        "--max-compression-ratio",
        type=_ratio,
        metavar="RATIO",
        help=(
            "largest uncompressed / compressed size of an archive member, counted "
            "while inflating ([sources] max_compression_ratio, default 100)"
        ),
    )


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", help="log debugging detail"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="log errors only (for cron)"
    )
