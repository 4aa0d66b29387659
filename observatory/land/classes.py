"""Class tables: a land-cover product's pixel codes and the land groups they fall in.

A class table is a TOML file (``configs/land/*.toml``) naming the product, the
vintages its nomenclature holds for, the pixel values meaning no data, and one
``[[classes]]`` table per code with its group and labels. It is read and checked
here, once, before any raster is opened.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from observatory.core.errors import ConfigError

#: The land groups, in the order of the output columns (docs/indicators.md).
GROUPS = (
    "artificialised",
    "agricultural",
    "forest_seminatural",
    "wetland",
    "water",
)

#: A class counted as covered land but in none of the groups (e.g. OSO 2021's
#: "Autres"): the five shares then sum to less than one.
OTHER = "other"

_TOP_KEYS = {
    "product",
    "title",
    "publisher",
    "nomenclature",
    "vintages",
    "nodata",
    "evidence",
    "classes",
}
_CLASS_KEYS = {"code", "group", "label", "label_en", "clc_code"}


@dataclass(frozen=True, slots=True)
class LandClass:
    """One pixel code of a land-cover product."""

    code: int
    group: str
    label: str
    label_en: str = ""


@dataclass(frozen=True, slots=True)
class ClassTable:
    """A land-cover product's nomenclature, mapped to :data:`GROUPS`."""

    path: Path
    product: str
    title: str
    nomenclature: str
    vintages: tuple[int, ...]
    nodata: tuple[int, ...]
    classes: tuple[LandClass, ...]
    publisher: str = ""
    evidence: str = ""

    def group_of(self) -> dict[int, str]:
        """Return ``{pixel code: group}`` for every class."""
        return {c.code: c.group for c in self.classes}

    def groups_present(self) -> tuple[str, ...]:
        """Return the groups at least one class falls in, in :data:`GROUPS` order."""
        found = {c.group for c in self.classes}
        return tuple(g for g in GROUPS if g in found)


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}", path=path)


def _integer(value: Any, path: Path, where: str) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise _fail(path, f"{where} must be an integer in 0-65535, got {value!r}")
    return value


def _text(table: dict[str, Any], key: str, path: Path, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise _fail(path, f"{where} {key} must be a string, got {value!r}")
    return value


def _land_class(entry: Any, i: int, nodata: set[int], path: Path) -> LandClass:
    where = f"class {i}"
    if not isinstance(entry, dict):
        raise _fail(path, f"{where} must be a table [[classes]], got {entry!r}")
    if unknown := sorted(set(entry) - _CLASS_KEYS):
        raise _fail(
            path, f"{where}: unknown key(s) {unknown}; expected {sorted(_CLASS_KEYS)}"
        )
    if "code" not in entry or "group" not in entry:
        raise _fail(path, f"{where}: needs 'code' and 'group', got {sorted(entry)}")
    code = _integer(entry["code"], path, f"{where} code")
    group = entry["group"]
    if group not in (*GROUPS, OTHER):
        raise _fail(
            path,
            f"code {code}: unknown group {group!r}; expected one of {[*GROUPS, OTHER]}",
        )
    if code in nodata:
        raise _fail(path, f"code {code} is both a class and a no-data value")
    return LandClass(
        code,
        group,
        _text(entry, "label", path, f"code {code}") or str(code),
        _text(entry, "label_en", path, f"code {code}"),
    )


def load_class_table(path: str | Path) -> ClassTable:
    """Read and check a class table.

    Parameters
    ----------
    path
        TOML file: ``product``, ``title``, ``nomenclature``, ``vintages`` (years
        the nomenclature holds for), ``nodata`` (pixel values meaning no data),
        and ``[[classes]]`` with ``code``, ``group`` (one of :data:`GROUPS` or
        ``"other"``), ``label`` (French) and ``label_en``.

    Raises
    ------
    ConfigError
        Naming the file and the code or key at fault: unreadable file, unknown
        key or group, a code given twice, a code that is also no data.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot read class table ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not valid TOML: {exc}") from exc
    if unknown := sorted(set(raw) - _TOP_KEYS):
        raise _fail(path, f"unknown key(s) {unknown}; expected {sorted(_TOP_KEYS)}")
    for key in ("product", "vintages", "classes"):
        if key not in raw:
            raise _fail(path, f"missing key {key!r}")
    vintages = raw["vintages"]
    if not isinstance(vintages, list) or not vintages:
        raise _fail(
            path, f"vintages must be a non-empty list of years, got {vintages!r}"
        )
    years = tuple(_integer(v, path, "a vintage") for v in vintages)
    nodata = tuple(_integer(v, path, "a nodata value") for v in raw.get("nodata", []))
    entries = raw["classes"]
    if not isinstance(entries, list) or not entries:
        raise _fail(path, "expected a non-empty array of tables [[classes]]")
    classes = tuple(
        _land_class(entry, i, set(nodata), path) for i, entry in enumerate(entries, 1)
    )
    codes = [c.code for c in classes]
    if repeated := sorted({c for c in codes if codes.count(c) > 1}):
        raise _fail(path, f"code(s) {repeated} given more than once")
    return ClassTable(
        path=path,
        product=_text(raw, "product", path, "the table's"),
        title=_text(raw, "title", path, "the table's"),
        nomenclature=_text(raw, "nomenclature", path, "the table's"),
        vintages=years,
        nodata=nodata,
        classes=classes,
        publisher=_text(raw, "publisher", path, "the table's"),
        evidence=_text(raw, "evidence", path, "the table's"),
    )
