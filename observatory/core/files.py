"""Small file helpers shared by the stages that touch disk."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

#: Bytes read or written at a time when streaming files.
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file atomically: temporary file, fsync, rename over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write a JSON record atomically (indented, UTF-8, any value as a string)."""
    write_text_atomic(
        path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    )


def fsync_path(path: Path) -> None:
    """Flush a written file, or a folder's entries, to disk.

    Windows cannot open a folder to flush it (its renames are journaled anyway).
    """
    if path.is_dir():
        if os.name == "nt":  # pragma: no cover - not on this project's CI
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    with path.open("r+b") as handle:
        os.fsync(handle.fileno())
