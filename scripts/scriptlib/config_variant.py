"""A run config with a few settings changed, for a benchmark to run it both ways.

The variant is written beside the original (``.bench-<name>.toml``), so that
the relative paths of its inputs still hold, and removed when done. Settings
are inserted under their table's header (or in a new table); ``tomllib`` then
reads the variant back to check that each setting took. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def variant_text(text: str, settings: Mapping[tuple[str, str], Any]) -> str:
    """Return config ``text`` with each ``(table, key) -> value`` of ``settings`` set.

    Values are strings or lists of strings (written as JSON, which TOML reads).

    Raises
    ------
    ValueError
        When a key is already set in its table: the variant would be invalid.
    """
    data = tomllib.loads(text)
    for (table, key), value in settings.items():
        if key in data.get(table, {}):
            message = f"[{table}] {key} is already set in the config; edit it there"
            raise ValueError(message)
        line = f"{key} = {json.dumps(value, ensure_ascii=False)}"
        header = re.compile(rf"^\[{re.escape(table)}\][ \t]*(#.*)?$", re.MULTILINE)
        found = header.search(text)
        if found:
            text = f"{text[: found.end()]}\n{line}{text[found.end() :]}"
        else:
            text = f"{text.rstrip()}\n\n[{table}]\n{line}\n"
    check = tomllib.loads(text)
    for (table, key), value in settings.items():
        assert check[table][key] == value, (table, key)
    return text


@contextlib.contextmanager
def config_variant(
    config: Path, name: str, settings: Mapping[tuple[str, str], Any]
) -> Iterator[Path]:
    """Yield a variant of ``config`` with ``settings`` (the original when empty).

    Parameters
    ----------
    config : Path
        The run configuration.
    name : str
        Names the variant file, ``.bench-<name>.toml`` beside ``config``.
    settings : mapping
        ``(table, key) -> value`` (see :func:`variant_text`).
    """
    if not settings:
        yield config
        return
    path = config.with_name(f".bench-{name}.toml")
    path.write_text(
        variant_text(config.read_text(encoding="utf-8"), settings), encoding="utf-8"
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
