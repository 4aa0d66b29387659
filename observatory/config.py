"""Typed configuration loaded from TOML files in ``configs/``.

A run config has the tables ``[run]``, ``[inputs]``, ``[territories]``,
``[reliability]``, ``[classification]`` and ``[output]``; every key is checked,
unknown keys are errors, and paths are relative to the config file. The
classification rules live in their own file (``configs/classification.toml`` by
default) so that agencies can share and version them separately.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from observatory.core.errors import ConfigError

T = TypeVar("T")

#: Indicators a classification rule may test, all shares in [0, 1].
CLASSIFIABLE_INDICATORS = (
    "dependence_share",
    "attraction_share",
    "reciprocity",
    "self_containment_share",
    "main_other_destination_share",
)


def configs_dir() -> Path:
    """Return the folder holding the shipped configs (``demo.toml`` and others).

    In an installed wheel the configs sit inside the package; in a source checkout
    (editable install) they are the repository's ``configs/`` folder.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "classification.toml").is_file():
            return candidate
    msg = f"the shipped configs were not found next to {here} (package incomplete?)"
    raise ConfigError(msg)


def default_config_path() -> Path:
    """Return the path of the embedded demo config, used when none is given."""
    return configs_dir() / "demo.toml"


@dataclass(frozen=True, slots=True)
class RunSection:
    """What the run is about; free text copied into the outputs' metadata."""

    name: str = "observatory"
    description: str = ""
    synthetic_flows: bool = False


@dataclass(frozen=True, slots=True)
class SourceRef:
    """An input taken from the sources catalogue rather than from a local path.

    Written in TOML as ``{ source = "insee_epci_2025", member = "EPCI.xlsx" }``;
    ``member`` picks one extracted file of an archive (by name or ending);
    ``fallback`` names another catalogue source used when the first cannot be
    fetched (HTTP error, network failure; never on a checksum mismatch).
    """

    source: str
    member: str | None = None
    fallback: str | None = None


#: Inputs whose local path may carry its geography:
#: ``{ path = "file", geography = 2025 }`` (a bare path takes ``[inputs] geography``).
LOCATED_ROLES = (
    "communes",
    "epci_composition",
    "flows",
    "flows_previous",
    "commune_passage",
    "fd_mobpro",
)


@dataclass(frozen=True, slots=True)
class InputsSection:
    """Input files: local paths (relative to the config) or catalogue sources.

    ``communes`` may list several files, e.g. ADMIN EXPRESS's mainland and
    overseas editions, each in its own CRS. ``geography`` is the target
    geography, the EPCI composition's (taken from its catalogue entry or inline
    geography when unset, by :func:`observatory.sources.inputs.check_geography`);
    ``geographies`` holds the geography written beside a local path, by input key
    (``flows``, ``communes[2]``...).
    """

    communes: Path | SourceRef | tuple[Path | SourceRef, ...]
    epci_composition: Path | SourceRef
    flows: Path | SourceRef
    flows_previous: Path | SourceRef | None = None
    commune_passage: Path | SourceRef | None = None
    fd_mobpro: Path | SourceRef | None = None
    fd_vintage: int | None = None
    communes_layer: str | None = None
    epci_list: Path | None = None
    flows_vintage: int | None = None
    geography: int | None = None
    #: Largest share of workers whose commune matches no EPCI after harmonisation
    #: before a run fails: more means the inputs are in different geographies.
    max_unmatched_share: float = 0.005
    geographies: dict[str, int] = field(default_factory=dict, metadata={"toml": False})

    def check(self, where: str) -> None:
        """Refuse a gate on unmatched workers outside [0, 1]."""
        if not 0.0 <= self.max_unmatched_share <= 1.0:
            msg = (
                f"{where} max_unmatched_share must lie in [0, 1], "
                f"got {self.max_unmatched_share:g}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class TerritoriesSection:
    """How métropole systems are built.

    ``metropoles`` empty means the 22 métropoles; ``poles`` adds EPCI of any
    nature studied the same way (e.g. the CINOR in La Réunion, which has no
    métropole).
    """

    metropoles: tuple[str, ...] = ()
    poles: tuple[str, ...] = ()
    crown_depth: int = 2
    contiguity_tolerance_m: float = 100.0
    min_shared_border_m: float = 500.0

    def check(self, where: str) -> None:
        """Refuse SIREN lists, depths and distances that cannot build crowns."""
        for key in ("metropoles", "poles"):
            for code in getattr(self, key):
                if not (
                    isinstance(code, str)
                    and len(code) == 9
                    and code.isascii()
                    and code.isdigit()
                ):
                    msg = f"{where} {key}: expected 9-digit SIREN strings, got {code!r}"
                    raise ConfigError(msg)
        if self.crown_depth < 1:
            msg = f"{where} crown_depth must be >= 1, got {self.crown_depth}"
            raise ConfigError(msg)
        if self.contiguity_tolerance_m < 0 or self.min_shared_border_m <= 0:
            msg = (
                f"{where} contiguity_tolerance_m must be >= 0 and "
                "min_shared_border_m > 0"
            )
            raise ConfigError(msg)
        if self.min_shared_border_m <= 2 * self.contiguity_tolerance_m:
            # A corner contact measures about 2 x tolerance: the bar must be above it.
            msg = (
                f"{where} min_shared_border_m ({self.min_shared_border_m:g}) "
                "must exceed twice contiguity_tolerance_m "
                f"({self.contiguity_tolerance_m:g}), or corner contacts count as borders"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class ReliabilitySection:
    """INSEE's rule on weighted counts: reliable from 500, usable from 200."""

    reliable_min: float = 500.0
    usable_min: float = 200.0

    def check(self, where: str) -> None:
        """Refuse thresholds out of order."""
        if not 0 < self.usable_min <= self.reliable_min:
            msg = f"{where} expected 0 < usable_min <= reliable_min"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class ClassRule:
    """One classification rule: all conditions ``indicator >= threshold`` hold."""

    class_code: str
    label: str
    conditions: tuple[tuple[str, float], ...]
    description: str = ""

    def describe(self) -> str:
        """Return the rule as a readable condition, e.g. ``dependence_share >= 0.4``."""
        if not self.conditions:
            return "otherwise"
        return " and ".join(f"{name} >= {value:g}" for name, value in self.conditions)


@dataclass(frozen=True, slots=True)
class ClassificationSection:
    """Ordered classification rules (first match wins) and where they came from."""

    rules: tuple[ClassRule, ...]
    source: Path


def default_cache_dir() -> Path:
    """Return the download cache: ``$OBSERVATORY_CACHE``, else the XDG cache folder."""
    if env := os.environ.get("OBSERVATORY_CACHE"):
        return Path(env).expanduser()
    return (
        Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "observatory"
    )


@dataclass(frozen=True, slots=True)
class SourcesSection:
    """Where the catalogue of public sources is and where downloads are cached."""

    catalogue: Path | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class ComputeSection:
    """Where parallel work runs (see :mod:`observatory.core.compute`), FD partition size.

    ``scheduler`` is ``"threads"`` (default), ``"processes"``, ``"synchronous"``
    or the address of a dask.distributed scheduler, ``"tcp://host:8786"``.
    """

    scheduler: str | None = None
    blocksize: str = "64MiB"

    def check(self, where: str) -> None:
        """Refuse a scheduler that is neither local nor an address."""
        check_scheduler(self.scheduler, f"{where} scheduler")


#: How ``outputs/latest`` is switched: a symlink, a copied folder, or the first
#: that works (symlinks are refused by some Windows shares).
LATEST_MODES = ("auto", "symlink", "copy")

#: What a run writes: GeoParquet files (one per layer, QGIS styles beside them);
#: one GeoPackage (every layer, styles inside) that GDAL 3.6 / QGIS 3.22 open, with
#: its QGIS project (a group and an atlas page per métropole); the report (PNG maps,
#: charts, a PDF atlas and report.html, for readers without QGIS).
OUTPUT_FORMATS = ("geoparquet", "geopackage", "report")


@dataclass(frozen=True, slots=True)
class OutputSection:
    """Where runs are published unless ``--output`` says otherwise, and how many are kept."""

    dir: Path | None = None
    keep_runs: int = 5
    latest: str = "auto"
    formats: tuple[str, ...] = OUTPUT_FORMATS

    def check(self, where: str) -> None:
        """Refuse a retention below one run and an unknown ``latest`` mode."""
        if self.keep_runs < 1:
            msg = f"{where} keep_runs must be >= 1, got {self.keep_runs}"
            raise ConfigError(msg)
        if not self.formats or set(self.formats) - set(OUTPUT_FORMATS):
            msg = (
                f"{where} formats must be a non-empty list of {list(OUTPUT_FORMATS)}, "
                f"got {list(self.formats)}"
            )
            raise ConfigError(msg)
        if self.latest not in LATEST_MODES:
            msg = f"{where} latest must be one of {list(LATEST_MODES)}, got {self.latest!r}"
            raise ConfigError(msg)


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


def check_scheduler(scheduler: str | None, where: str) -> None:
    """Refuse a dask scheduler that is neither local nor an address, naming ``where``."""
    from observatory.core.compute import scheduler_kind

    try:
        scheduler_kind(scheduler)
    except ConfigError as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc


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
