"""The sources catalogue: one :class:`Source` per published file, read and checked.

The catalogue is a TOML file with ``[sources.<id>]`` tables (geodatasets-style)
naming one file per source: its URL, its format and optionally a pinned
``sha256`` and ``size``, a second pin ``md5`` measured by a third party
(``md5_from`` says who), whether a download by this project confirmed the entry
(``verified``) and who says what it holds (``evidence``). A census file states
the geography it is published in (``geography`` beside ``vintage``): nothing
computes it from the vintage. This module owns that record, the formats a
source may have (and their magic bytes), and every check made on an entry.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from observatory.core.errors import ConfigError

#: Formats a source may have; ``tif``: a bare GeoTIFF (Theia serves OSO so).
FORMATS = ("zip", "7z", "csv", "xlsx", "parquet", "tif")


#: Formats whose members can be extracted (``members`` applies to them only).
ARCHIVE_FORMATS = ("zip", "7z")


#: The first bytes of each binary format, checked on every download (any one of
#: a tuple: a TIFF is little- or big-endian, classic or BigTIFF).
MAGIC: dict[str, bytes | tuple[bytes, ...]] = {
    "zip": b"PK\x03\x04",
    "xlsx": b"PK\x03\x04",
    "7z": b"7z\xbc\xaf\x27\x1c",
    "parquet": b"PAR1",
    "tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}


#: Names the cache keeps for itself in a source's folder (see
#: :mod:`observatory.sources.cache`): a downloaded file may not take them.
PROVENANCE = "provenance.json"


EXTRACTED = "extracted"


_SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


_MD5 = re.compile(r"^[0-9a-f]{32}$")


#: Years a ``vintage`` or ``geography`` may take (the COG events start in 1943).
_YEARS = range(1943, 2101)


_STRING_FIELDS = (
    "title",
    "publisher",
    "url",
    "format",
    "sha256",
    "sha256_from",
    "md5",
    "md5_from",
    "licence",
    "attribution",
    "evidence",
)


_INTEGER_FIELDS = ("size", "vintage", "geography")


@dataclass(frozen=True, slots=True)
class Source:
    """One catalogue entry: one published file."""

    id: str
    title: str
    publisher: str
    url: str
    format: str
    sha256: str | None = None
    size: int | None = None
    members: tuple[str, ...] = ()
    vintage: int | None = None
    geography: int | None = None
    licence: str = ""
    attribution: str = ""
    #: who measured the pinned sha256 when this project did not
    sha256_from: str = ""
    #: a second pin, measured by a third party (``md5_from``), verified at download
    md5: str | None = None
    md5_from: str = ""
    #: True once a download by this project confirmed URL, format and members
    verified: bool = False
    #: who says what the file holds (URL, members, geography): INSEE's source
    #: line, or a repository and path of public code that reads it
    evidence: str = ""

    @property
    def file_name(self) -> str:
        """The name of the cached file: the last segment of the URL's path."""
        return unquote(PurePosixPath(urlsplit(self.url).path).name)


def load_catalogue(path: Path) -> dict[str, Source]:
    """Read a sources catalogue.

    Parameters
    ----------
    path
        TOML file with one ``[sources.<id>]`` table per source, holding the fields
        of :class:`Source` (``members`` as a list of strings). ``sha256`` and
        ``size`` may be missing: they are then measured at the first download.

    Returns
    -------
    dict
        Source id -> :class:`Source`, in file order.

    Raises
    ------
    ConfigError
        When the file is missing or not TOML, or an entry has unknown keys,
        lacks ``url`` or ``format``, has a ``vintage`` but no ``geography``, an
        ``md5`` without ``md5_from``, or a malformed value; the message names the
        file and every faulty source.
    """
    path = Path(path)
    tables = _read_tables(path)
    problems: list[str] = []
    catalogue: dict[str, Source] = {}
    for source_id, table in tables.items():
        where = f"[sources.{source_id}]"
        if not isinstance(table, dict):
            problems.append(f"{where} must be a table, got {table!r}")
            continue
        entry_problems = _entry_problems(table)
        if not entry_problems:
            source = _source(source_id, table)
            entry_problems = source_problems(source)
            catalogue[source_id] = source
        problems += [f"{where} {p}" for p in entry_problems]
    if problems:
        msg = f"{path}: " + "; ".join(problems)
        raise ConfigError(msg, path=path)
    return catalogue


def _read_tables(path: Path) -> dict[str, Any]:
    """Return the ``[sources.<id>]`` tables of a catalogue file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{path}: sources catalogue not found"
        raise ConfigError(msg, path=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the sources catalogue: {exc}"
        raise ConfigError(msg, path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML: {exc}"
        raise ConfigError(msg, path=path) from exc
    tables = raw.get("sources")
    if not isinstance(tables, dict) or not tables:
        msg = f"{path}: no [sources.<id>] table found; expected e.g. [sources.base_flux_2021]"
        raise ConfigError(msg, path=path)
    return tables


def _known_keys() -> set[str]:
    return {f.name for f in fields(Source)} - {"id"}


def _entry_problems(table: dict[str, Any]) -> list[str]:
    """Check the keys and value types of one table, before a Source is built."""
    known = _known_keys()
    problems = []
    if unknown := sorted(table.keys() - known):
        problems.append(f"unknown key(s) {unknown}; expected some of {sorted(known)}")
    problems += [f"missing {k!r}" for k in ("url", "format") if k not in table]
    for name in _STRING_FIELDS:
        if name in table and not isinstance(table[name], str):
            problems.append(f"{name!r} must be a string, got {table[name]!r}")
    for name in _INTEGER_FIELDS:
        value = table.get(name)
        if name in table and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"{name!r} must be an integer, got {value!r}")
    if "verified" in table and not isinstance(table["verified"], bool):
        problems.append(f"'verified' must be true or false, got {table['verified']!r}")
    members = table.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        problems.append(f"'members' must be a list of strings, got {members!r}")
    return problems


def _source(source_id: str, table: dict[str, Any]) -> Source:
    """Build the Source of a table whose keys and types were checked."""
    values = {k: v for k, v in table.items() if k in _known_keys()}
    values["members"] = tuple(values.get("members", ()))
    for pin in ("sha256", "md5"):
        if isinstance(values.get(pin), str):
            values[pin] = values[pin].strip().lower()
    values.setdefault("title", "")
    values.setdefault("publisher", "")
    return Source(id=source_id, **values)


def source_problems(source: Source) -> list[str]:
    """Check one source's values; return readable problems (empty when fine)."""
    problems = []
    if not _SOURCE_ID.match(source.id):
        problems.append(
            "id must be letters, digits, '.', '_' or '-' (it names the cache folder)"
        )
    if source.format not in FORMATS:
        problems.append(
            f"'format' must be one of {list(FORMATS)}, got {source.format!r}"
        )
    if source.sha256 is not None and not _SHA256.match(source.sha256):
        problems.append(
            f"'sha256' must be 64 hexadecimal characters, got {source.sha256!r}"
        )
    if source.size is not None and source.size <= 0:
        problems.append(f"'size' must be a positive number of bytes, got {source.size}")
    problems += _pin_problems(source) + _year_problems(source)
    if source.members and source.format not in ARCHIVE_FORMATS:
        problems.append(
            f"'members' only applies to archives {list(ARCHIVE_FORMATS)}, "
            f"not to format {source.format!r}"
        )
    if any(not m.strip() for m in source.members):
        problems.append("'members' holds an empty name")
    return problems + _url_problems(source)


def _pin_problems(source: Source) -> list[str]:
    """Check the third-party md5 pin and the labels of who measured each pin."""
    problems = []
    if source.md5 is not None:
        if not _MD5.match(source.md5):
            problems.append(
                f"'md5' must be 32 hexadecimal characters, got {source.md5!r}"
            )
        if not source.md5_from.strip():
            problems.append(
                "'md5' needs 'md5_from': who measured it (INSEE and IGN publish no md5 "
                "for these files, a third party did)"
            )
    return problems


def _year_problems(source: Source) -> list[str]:
    """Check that a census entry states its geography and that years are plausible."""
    problems = [
        f"{name!r} must be a year between {_YEARS[0]} and {_YEARS[-1]}, got {year}"
        for name in ("vintage", "geography")
        if (year := getattr(source, name)) is not None and year not in _YEARS
    ]
    if source.vintage is not None and source.geography is None:
        problems.append(
            f"has 'vintage' = {source.vintage} but no 'geography': state the year "
            "(1 January) of the geography INSEE publishes this census in, with its "
            "'evidence' (it is not always vintage + 3)"
        )
    return problems


def _url_problems(source: Source) -> list[str]:
    parts = urlsplit(source.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [f"'url' must be an http(s) URL, got {source.url!r}"]
    name = source.file_name
    if (
        not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or name in (PROVENANCE, EXTRACTED)
    ):
        return [
            f"'url' must end with a file name (it names the cached file), got {source.url!r}"
        ]
    return []


def check_source(source: Source) -> None:
    """Raise a :class:`ConfigError` naming every problem of ``source``, if any."""
    if problems := source_problems(source):
        msg = f"source {source.id!r}: " + "; ".join(problems)
        raise ConfigError(msg, source=source.id)
