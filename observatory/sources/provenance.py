"""The provenance record of a cached source, and its JSON form in ``provenance.json``.

:class:`Provenance` says where a cached file came from and what it measured
(URL, final URL, validators, size, sha256, times); :class:`Extraction` says which
members were extracted from it. Both convert to and from the JSON written on
disk (and copied into the run manifest) with ``to_dict`` / ``from_dict``, which
keep its keys, their order and their values.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from observatory.core.files import write_json_atomic
from observatory.sources.catalogue import PROVENANCE, Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Extraction:
    """The members extracted from an archive, as recorded after extraction."""

    #: sha256 of the archive they were extracted from
    archive_sha256: str
    #: the catalogue's ``members`` patterns they were selected by
    patterns: tuple[str, ...]
    #: member name -> size in bytes
    members: dict[str, int]
    #: member name -> sha256; None in records made before it was kept
    sha256: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``sha256`` left out when not recorded)."""
        record: dict[str, Any] = {
            "archive_sha256": self.archive_sha256,
            "patterns": list(self.patterns),
            "members": dict(self.members),
        }
        if self.sha256 is not None:
            record["sha256"] = dict(self.sha256)
        return record

    @classmethod
    def from_dict(cls, record: Any) -> Extraction | None:
        """Read the JSON form; None when it is malformed (the members are extracted again)."""
        if not isinstance(record, dict):
            return None
        archive, patterns = record.get("archive_sha256"), record.get("patterns")
        members, digests = record.get("members"), record.get("sha256")
        if not (
            isinstance(archive, str)
            and isinstance(patterns, list)
            and all(isinstance(p, str) for p in patterns)
            and isinstance(members, dict)
        ):
            return None
        return cls(
            archive_sha256=archive,
            patterns=tuple(patterns),
            members=members,
            sha256=digests if isinstance(digests, dict) else None,
        )


#: Keys of the JSON form, in the order written, and the types each may hold.
_FIELDS: dict[str, tuple[type, ...]] = {
    "source_id": (str,),
    "url": (str,),
    "final_url": (str, type(None)),
    "file": (str,),
    "etag": (str, type(None)),
    "last_modified": (str, type(None)),
    "size": (int,),
    "sha256": (str,),
    "fetched_at": (str, type(None)),
    "checked_at": (str, type(None)),
    "pinned_sha256": (str, type(None)),
    "vintage": (int, type(None)),
    "geography": (int, type(None)),
    "licence": (str,),
}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a cached file came from and what was measured on it.

    The times are ISO 8601 in UTC; ``fetched_at`` is the download, ``checked_at``
    the last revalidation with the server. A file put in the cache by hand that
    matches the pinned sha256 has no URL fetched, validators nor times.
    """

    source_id: str
    url: str
    final_url: str | None
    file: str
    etag: str | None
    last_modified: str | None
    size: int
    sha256: str
    fetched_at: str | None
    checked_at: str | None
    pinned_sha256: str | None
    vintage: int | None
    geography: int | None
    licence: str
    extracted: Extraction | None = None

    @classmethod
    def of_file(
        cls,
        source: Source,
        file: Path,
        sha256: str,
        size: int,
        *,
        final_url: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        fetched_at: str | None = None,
    ) -> Provenance:
        """Record ``file``, the cached copy of ``source`` (fetched and checked now)."""
        return cls(
            source_id=source.id,
            url=source.url,
            final_url=final_url,
            file=file.name,
            etag=etag,
            last_modified=last_modified,
            size=size,
            sha256=sha256,
            fetched_at=fetched_at,
            checked_at=fetched_at,
            pinned_sha256=source.sha256,
            vintage=source.vintage,
            geography=source.geography,
            licence=source.licence,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: the keys of ``provenance.json``, in its order."""
        record = {name: getattr(self, name) for name in _FIELDS}
        if self.extracted is not None:
            record["extracted"] = self.extracted.to_dict()
        return record

    @classmethod
    def from_dict(cls, record: Any) -> Provenance | None:
        """Read the JSON form; None when a key is missing or holds a wrong type."""
        if not isinstance(record, dict):
            return None
        for name, kinds in _FIELDS.items():
            value = record.get(name, ...)
            if not isinstance(value, kinds) or (
                int in kinds and isinstance(value, bool)
            ):
                return None
        values = {name: record[name] for name in _FIELDS}
        return cls(**values, extracted=Extraction.from_dict(record.get("extracted")))


def read_provenance(folder: Path, source_id: str) -> Provenance | None:
    """Return the provenance recorded in a source's cache folder, or None.

    A missing, unreadable or malformed record gives None (the file is then
    downloaded again, or refused offline), with a warning unless it is missing.
    """
    path = Path(folder) / PROVENANCE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning(
            "%s: ignoring unreadable provenance record %s: %s", source_id, path, exc
        )
        return None
    provenance = Provenance.from_dict(record)
    if provenance is None:
        logger.warning("%s: ignoring malformed provenance record %s", source_id, path)
    return provenance


def write_provenance(folder: Path, provenance: Provenance) -> None:
    """Write ``provenance.json`` in a source's cache folder, atomically."""
    write_json_atomic(Path(folder) / PROVENANCE, provenance.to_dict())
