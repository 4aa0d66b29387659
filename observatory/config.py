"""Typed configuration loaded from TOML files in ``configs/``.

A run config has the tables ``[run]``, ``[inputs]``, ``[territories]``,
``[reliability]``, ``[classification]`` and ``[output]``; every key is checked,
unknown keys are errors, and paths are relative to the config file. The
classification rules live in their own file (``configs/classification.toml`` by
default) so that agencies can share and version them separately.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from observatory.errors import ConfigError

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
class InputsSection:
    """Paths of the input files, resolved against the config file's folder."""

    communes: Path
    epci_composition: Path
    flows: Path
    communes_layer: str | None = None
    epci_list: Path | None = None
    flows_vintage: int | None = None
    geography: int | None = None


@dataclass(frozen=True, slots=True)
class TerritoriesSection:
    """How métropole systems are built."""

    metropoles: tuple[str, ...] = ()
    crown_depth: int = 2
    contiguity_tolerance_m: float = 100.0
    min_shared_border_m: float = 500.0


@dataclass(frozen=True, slots=True)
class ReliabilitySection:
    """INSEE's rule on weighted counts: reliable from 500, usable from 200."""

    reliable_min: float = 500.0
    usable_min: float = 200.0


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


@dataclass(frozen=True, slots=True)
class OutputSection:
    """Where layers are written unless ``--output`` says otherwise."""

    dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A complete, validated run configuration."""

    path: Path
    sha256: str
    run: RunSection
    inputs: InputsSection
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


def _section(
    raw: dict[str, Any], name: str, cls: type[T], path: Path
) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        msg = f"{path}: [{name}] must be a table, got {type(table).__name__}"
        raise ConfigError(msg)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown := sorted(table.keys() - known):
        msg = f"{path}: [{name}] unknown key(s) {unknown}; expected some of {sorted(known)}"
        raise ConfigError(msg)
    return dict(table)


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python: refuse it where a number is expected.
    if isinstance(value, bool) and kind is not bool:
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        names = (
            kind.__name__
            if isinstance(kind, type)
            else " or ".join(k.__name__ for k in kind)
        )
        msg = f"{where} must be {names}, got {value!r}"
        raise ConfigError(msg)
    return value


def _resolve(base: Path, value: Any, where: str) -> Path:
    _typed(value, str, where)
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


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
        code = _typed(entry["class"], str, f"{where}: 'class'")
        when = _typed(entry.get("when", {}), dict, f"{where}: 'when'")
        conditions = []
        for name, threshold in when.items():
            if name not in CLASSIFIABLE_INDICATORS:
                msg = (
                    f"{where} ({code}): unknown indicator {name!r} in 'when'; "
                    f"expected one of {list(CLASSIFIABLE_INDICATORS)}"
                )
                raise ConfigError(msg)
            value = float(_typed(threshold, (int, float), f"{where} ({code}): {name}"))
            if not 0.0 <= value <= 1.0:
                msg = f"{where} ({code}): {name} threshold must lie in [0, 1], got {value}"
                raise ConfigError(msg)
            conditions.append((name, value))
        rules.append(
            ClassRule(
                class_code=code,
                label=_typed(entry.get("label", code), str, f"{where}: 'label'"),
                conditions=tuple(conditions),
                description=_typed(
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
    base = path.parent
    known_tables = {
        "run",
        "inputs",
        "territories",
        "reliability",
        "classification",
        "output",
    }
    if unknown := sorted(set(raw) - known_tables):
        msg = f"{path}: unknown table(s) {unknown}; expected some of {sorted(known_tables)}"
        raise ConfigError(msg)

    run_t = _section(raw, "run", RunSection, path)
    run = RunSection(
        name=_typed(run_t.get("name", "observatory"), str, f"{path}: [run] name"),
        description=_typed(
            run_t.get("description", ""), str, f"{path}: [run] description"
        ),
        synthetic_flows=_typed(
            run_t.get("synthetic_flows", False), bool, f"{path}: [run] synthetic_flows"
        ),
    )

    inp = _section(raw, "inputs", InputsSection, path)
    for key in ("communes", "epci_composition", "flows"):
        if key not in inp:
            msg = f"{path}: [inputs] missing key '{key}' (a path relative to the config file)"
            raise ConfigError(msg)
    inputs = InputsSection(
        communes=_resolve(base, inp["communes"], f"{path}: [inputs] communes"),
        epci_composition=_resolve(
            base, inp["epci_composition"], f"{path}: [inputs] epci_composition"
        ),
        flows=_resolve(base, inp["flows"], f"{path}: [inputs] flows"),
        communes_layer=(
            _typed(inp["communes_layer"], str, f"{path}: [inputs] communes_layer")
            if "communes_layer" in inp
            else None
        ),
        epci_list=(
            _resolve(base, inp["epci_list"], f"{path}: [inputs] epci_list")
            if "epci_list" in inp
            else None
        ),
        flows_vintage=(
            _typed(inp["flows_vintage"], int, f"{path}: [inputs] flows_vintage")
            if "flows_vintage" in inp
            else None
        ),
        geography=(
            _typed(inp["geography"], int, f"{path}: [inputs] geography")
            if "geography" in inp
            else None
        ),
    )

    ter = _section(raw, "territories", TerritoriesSection, path)
    metropoles = _typed(
        ter.get("metropoles", []), list, f"{path}: [territories] metropoles"
    )
    for code in metropoles:
        if not (isinstance(code, str) and len(code) == 9 and code.isdigit()):
            msg = f"{path}: [territories] metropoles: expected 9-digit SIREN strings, got {code!r}"
            raise ConfigError(msg)
    territories = TerritoriesSection(
        metropoles=tuple(metropoles),
        crown_depth=_typed(
            ter.get("crown_depth", 2), int, f"{path}: [territories] crown_depth"
        ),
        contiguity_tolerance_m=float(
            _typed(
                ter.get("contiguity_tolerance_m", 100.0),
                (int, float),
                f"{path}: [territories] contiguity_tolerance_m",
            )
        ),
        min_shared_border_m=float(
            _typed(
                ter.get("min_shared_border_m", 500.0),
                (int, float),
                f"{path}: [territories] min_shared_border_m",
            )
        ),
    )
    if territories.crown_depth < 1:
        msg = f"{path}: [territories] crown_depth must be >= 1, got {territories.crown_depth}"
        raise ConfigError(msg)
    if territories.contiguity_tolerance_m < 0 or territories.min_shared_border_m <= 0:
        msg = (
            f"{path}: [territories] contiguity_tolerance_m must be >= 0 and "
            "min_shared_border_m > 0"
        )
        raise ConfigError(msg)
    if territories.min_shared_border_m <= 2 * territories.contiguity_tolerance_m:
        # A corner contact measures about 2 x tolerance: the bar must be above it.
        msg = (
            f"{path}: [territories] min_shared_border_m ({territories.min_shared_border_m:g}) "
            "must exceed twice contiguity_tolerance_m "
            f"({territories.contiguity_tolerance_m:g}), or corner contacts count as borders"
        )
        raise ConfigError(msg)

    rel = _section(raw, "reliability", ReliabilitySection, path)
    reliability = ReliabilitySection(
        reliable_min=float(
            _typed(
                rel.get("reliable_min", 500.0),
                (int, float),
                f"{path}: [reliability] reliable_min",
            )
        ),
        usable_min=float(
            _typed(
                rel.get("usable_min", 200.0),
                (int, float),
                f"{path}: [reliability] usable_min",
            )
        ),
    )
    if not 0 < reliability.usable_min <= reliability.reliable_min:
        msg = f"{path}: [reliability] expected 0 < usable_min <= reliable_min"
        raise ConfigError(msg)

    cls_t = raw.get("classification", {})
    if not isinstance(cls_t, dict) or (unknown := sorted(set(cls_t) - {"file"})):
        msg = f"{path}: [classification] accepts only the key 'file'"
        raise ConfigError(msg)
    rules_path = (
        _resolve(base, cls_t["file"], f"{path}: [classification] file")
        if "file" in cls_t
        else configs_dir() / "classification.toml"
    )
    classification = load_classification(rules_path)

    out_t = _section(raw, "output", OutputSection, path)
    output = OutputSection(
        dir=_resolve(base, out_t["dir"], f"{path}: [output] dir")
        if "dir" in out_t
        else None
    )

    return Config(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        run=run,
        inputs=inputs,
        territories=territories,
        reliability=reliability,
        classification=classification,
        output=output,
        raw=raw,
    )
