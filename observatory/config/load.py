"""Reading a run config from TOML: every key checked, unknown keys refused."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from observatory.config.inputs import LOCATED_ROLES, InputsSection, SourceRef
from observatory.config.runtime import (
    ComputeSection,
    OutputSection,
    RunSection,
    SourcesSection,
)
from observatory.config.territories import (
    CLASSIFIABLE_INDICATORS,
    ClassificationSection,
    ClassRule,
    ReliabilitySection,
    TerritoriesSection,
)
from observatory.core.errors import ConfigError

T = TypeVar("T")


def configs_dir() -> Path:
    """Return the folder holding the shipped configs (``demo.toml`` and others).

    In an installed wheel the configs sit inside the package; in a source checkout
    (editable install) they are the repository's ``configs/`` folder.
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "classification.toml").is_file():
            return candidate
    msg = f"the shipped configs were not found next to {here} (package incomplete?)"
    raise ConfigError(msg)


def default_config_path() -> Path:
    """Return the path of the embedded demo config, used when none is given."""
    return configs_dir() / "demo.toml"


@dataclass(frozen=True, slots=True)
class Config:
    """A complete, validated run configuration."""

    path: Path
    sha256: str
    run: RunSection
    inputs: InputsSection
    sources: SourcesSection
    compute: ComputeSection
    territories: TerritoriesSection
    reliability: ReliabilitySection
    classification: ClassificationSection
    output: OutputSection
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def _read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read config file ({exc.strerror or exc})"
        raise ConfigError(msg) from exc
    try:
        return tomllib.loads(data.decode("utf-8")), data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid TOML: {exc}"
        raise ConfigError(msg) from exc


def _check_type(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python: refuse it where a number is expected.
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if not ok:
        names = (
            kind.__name__
            if isinstance(kind, type)
            else " or ".join(k.__name__ for k in kind)
        )
        msg = f"{where} must be {names}, got {value!r}"
        raise ConfigError(msg)
    return value


def _coerce(value: Any, hint: Any, where: str, base: Path) -> Any:
    kinds = set(get_args(hint)) - {type(None)} or {hint}
    listed = [k for k in kinds if get_origin(k) is tuple]  # a union with a list
    if listed and isinstance(value, list):
        if not value:
            msg = f"{where}: expected at least one file"
            raise ConfigError(msg)
        item = get_args(listed[0])[0]
        return tuple(
            _coerce(v, item, f"{where}[{i}]", base) for i, v in enumerate(value, 1)
        )
    if SourceRef in kinds and isinstance(value, dict):
        unknown = sorted(set(value) - {"source", "member", "fallback"})
        if unknown or not isinstance(value.get("source"), str):
            msg = (
                f'{where}: a source reference is {{ source = "<catalogue id>", '
                'member = "<file in the archive>", fallback = "<catalogue id>" } '
                f"(member and fallback optional), got {value!r}"
            )
            raise ConfigError(msg)
        member, fallback = value.get("member"), value.get("fallback")
        return SourceRef(
            value["source"],
            _check_type(member, str, f"{where} member") if member else None,
            _check_type(fallback, str, f"{where} fallback") if fallback else None,
        )
    if Path in kinds:
        p = Path(_check_type(value, str, where)).expanduser()
        return p if p.is_absolute() else (base / p).resolve()
    if float in kinds:
        return float(_check_type(value, (int, float), where))
    if get_origin(hint) is tuple:
        return tuple(_check_type(value, list, where))
    return _check_type(value, next(iter(kinds)), where)


def _section(raw: dict[str, Any], name: str, cls: type[T], path: Path) -> T:
    """Build the dataclass ``cls`` from the table ``[name]``, checking every key."""
    table = raw.get(name, {})
    if not isinstance(table, dict):
        msg = f"{path}: [{name}] must be a table, got {type(table).__name__}"
        raise ConfigError(msg)
    known = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.metadata.get("toml", True)
    ]
    if unknown := sorted(table.keys() - set(known)):
        msg = f"{path}: [{name}] unknown key(s) {unknown}; expected some of {sorted(known)}"
        raise ConfigError(msg)
    required = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING
    ]
    if missing := [key for key in required if key not in table]:
        msg = f"{path}: [{name}] missing key(s) {missing}"
        raise ConfigError(msg)
    hints = get_type_hints(cls)
    section = cls(
        **{
            key: _coerce(value, hints[key], f"{path}: [{name}] {key}", path.parent)
            for key, value in table.items()
        }
    )
    if check := getattr(section, "check", None):
        check(f"{path}: [{name}]")
    return section


def load_classification(path: Path) -> ClassificationSection:
    """Load ordered classification rules from a TOML file.

    Parameters
    ----------
    path
        File with an array of tables ``[[rules]]``, each with ``class``, ``label``,
        an optional ``description`` and a table ``when`` of minimum thresholds on
        indicators. The last rule must have no condition: it is the fallback.
    """
    raw, _ = _read_toml(path)
    unknown_top = sorted(set(raw) - {"rules"})
    if unknown_top:
        msg = f"{path}: unknown key(s) {unknown_top}; expected an array [[rules]]"
        raise ConfigError(msg)
    entries = raw.get("rules")
    if not isinstance(entries, list) or not entries:
        msg = f"{path}: expected a non-empty array of tables [[rules]]"
        raise ConfigError(msg)
    rules = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: rule {i}"
        unknown = sorted(set(entry) - {"class", "label", "description", "when"})
        if unknown:
            msg = f"{where}: unknown key(s) {unknown}; expected class, label, description, when"
            raise ConfigError(msg)
        if "class" not in entry:
            msg = f"{where}: missing key 'class'"
            raise ConfigError(msg)
        code = _check_type(entry["class"], str, f"{where}: 'class'")
        when = _check_type(entry.get("when", {}), dict, f"{where}: 'when'")
        conditions = []
        for name, threshold in when.items():
            if name not in CLASSIFIABLE_INDICATORS:
                msg = (
                    f"{where} ({code}): unknown indicator {name!r} in 'when'; "
                    f"expected one of {list(CLASSIFIABLE_INDICATORS)}"
                )
                raise ConfigError(msg)
            value = float(
                _check_type(threshold, (int, float), f"{where} ({code}): {name}")
            )
            if not 0.0 <= value <= 1.0:
                msg = f"{where} ({code}): {name} threshold must lie in [0, 1], got {value}"
                raise ConfigError(msg)
            conditions.append((name, value))
        rules.append(
            ClassRule(
                class_code=code,
                label=_check_type(entry.get("label", code), str, f"{where}: 'label'"),
                conditions=tuple(conditions),
                description=_check_type(
                    entry.get("description", ""), str, f"{where}: 'description'"
                ),
            )
        )
    if rules[-1].conditions:
        msg = f"{path}: the last rule ({rules[-1].class_code}) must have no 'when': it is the fallback"
        raise ConfigError(msg)
    codes = [r.class_code for r in rules]
    if len(set(codes)) != len(codes):
        msg = f"{path}: class codes must be unique, got {codes}"
        raise ConfigError(msg)
    return ClassificationSection(rules=tuple(rules), source=path)


def load_config(path: str | Path) -> Config:
    """Load and validate a run configuration.

    Parameters
    ----------
    path
        TOML file; paths inside it are relative to its folder.

    Raises
    ------
    ConfigError
        Naming the file, the table and the key at fault.
    """
    path = Path(path).expanduser().resolve()
    raw, data = _read_toml(path)
    known_tables = {
        "run",
        "inputs",
        "sources",
        "compute",
        "territories",
        "reliability",
        "classification",
        "output",
    }
    if unknown := sorted(set(raw) - known_tables):
        msg = f"{path}: unknown table(s) {unknown}; expected some of {sorted(known_tables)}"
        raise ConfigError(msg)

    return Config(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        run=_section(raw, "run", RunSection, path),
        inputs=_inputs_section(raw, path),
        sources=_section(raw, "sources", SourcesSection, path),
        compute=_section(raw, "compute", ComputeSection, path),
        territories=_section(raw, "territories", TerritoriesSection, path),
        reliability=_section(raw, "reliability", ReliabilitySection, path),
        classification=load_classification(_classification_path(raw, path)),
        output=_section(raw, "output", OutputSection, path),
        raw=raw,
    )


def _inputs_section(raw: dict[str, Any], path: Path) -> InputsSection:
    """Build ``[inputs]``, taking the geographies written beside local paths apart."""
    table = raw.get("inputs")
    if not isinstance(table, dict):
        return _section(raw, "inputs", InputsSection, path)
    plain = dict(table)
    geographies: dict[str, int] = {}
    for role in LOCATED_ROLES:
        value = table.get(role)
        keyed = (
            [(f"{role}[{i}]", v) for i, v in enumerate(value, 1)]
            if isinstance(value, list)
            else [(role, value)]
        )
        paths = [
            _located_path(v, geographies, key, f"{path}: [inputs] {key}")
            for key, v in keyed
        ]
        if role in table:
            plain[role] = paths if isinstance(value, list) else paths[0]
    section = _section({**raw, "inputs": plain}, "inputs", InputsSection, path)
    return replace(section, geographies=geographies)


def _located_path(value: Any, geographies: dict[str, int], key: str, where: str) -> Any:
    """Return a ``{ path, geography }`` input's path, its geography stored by key.

    Other values (a bare path, a source reference) are returned as they are.
    """
    if not isinstance(value, dict) or "path" not in value:
        return value
    geography = value.get("geography")
    if (
        set(value) != {"path", "geography"}
        or not isinstance(value["path"], str)
        or not isinstance(geography, int)
        or isinstance(geography, bool)
        or not 1943 <= geography <= 2100
    ):
        msg = (
            f'{where}: a local input with its geography is {{ path = "<file>", '
            f"geography = <year of 1 January, e.g. 2025> }}, got {value!r}"
        )
        raise ConfigError(msg)
    geographies[key] = geography
    return value["path"]


def _classification_path(raw: dict[str, Any], path: Path) -> Path:
    """Return the rules file of ``[classification] file``, or the shipped one."""
    table = raw.get("classification", {})
    if not isinstance(table, dict) or set(table) - {"file"}:
        msg = f"{path}: [classification] accepts only the key 'file'"
        raise ConfigError(msg)
    if "file" in table:
        return _coerce(
            table["file"], Path, f"{path}: [classification] file", path.parent
        )
    return configs_dir() / "classification.toml"
