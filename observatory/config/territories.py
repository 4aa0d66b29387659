"""The ``[territories]``, ``[reliability]`` and classification tables: how systems are built and read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from observatory.core.errors import ConfigError

#: Indicators a classification rule may test, all shares in [0, 1].
CLASSIFIABLE_INDICATORS = (
    "dependence_share",
    "attraction_share",
    "reciprocity",
    "self_containment_share",
    "main_other_destination_share",
)


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
