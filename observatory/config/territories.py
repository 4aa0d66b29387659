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


#: How a métropole's system is drawn (``[territories] crown_rule``): its crowns by
#: contiguity, the EPCI whose dependence on it reaches ``hidden_crown_min_share``
#: (drawn by the flows), or the union of both.
CROWN_RULES = ("contiguity", "flows", "both")

#: Sizes that decide dominance in the dominant flows (``[territories]
#: dominant_weight``): the jobs located in an EPCI (internal flow included), or its
#: inflow (workers coming from elsewhere, as R's ``flows`` package weighs units).
DOMINANT_WEIGHTS = ("jobs", "inflow")


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
    #: Which EPCI make a métropole's system: its contiguity crowns, the EPCI
    #: whose dependence on it reaches ``hidden_crown_min_share`` (drawn by the
    #: flows), or both (see :data:`CROWN_RULES`).
    crown_rule: str = "contiguity"
    #: Dependence on the métropole from which an EPCI belongs to the system drawn
    #: by the flows; beyond the contiguity crowns it is the "hidden crown".
    #: INSEE's AAV 2020 puts a commune in a pole's crown from 15 %.
    hidden_crown_min_share: float = 0.15
    #: A crown EPCI whose dependence is under this floor is a nominal member.
    nominal_member_max_share: float = 0.05
    #: Size that decides dominance between two EPCI in the dominant flows
    #: (Nystuen & Dacey): ``jobs`` or ``inflow`` (see :data:`DOMINANT_WEIGHTS`).
    dominant_weight: str = "jobs"
    #: Share of an EPCI's population (or employed residents) in a métropole's
    #: attraction area (AAV 2020) from which the EPCI counts as inside it.
    aav_member_min_share: float = 0.5

    def check(self, where: str) -> None:
        """Refuse SIREN lists, depths, distances and thresholds that cannot build systems."""
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
        self._check_flow_rules(where)

    def _check_flow_rules(self, where: str) -> None:
        """Refuse an unknown rule or weight, and shares out of [0, 1] or out of order."""
        for key, allowed in (
            ("crown_rule", CROWN_RULES),
            ("dominant_weight", DOMINANT_WEIGHTS),
        ):
            if getattr(self, key) not in allowed:
                msg = f"{where} {key} must be one of {list(allowed)}, got {getattr(self, key)!r}"
                raise ConfigError(msg)
        for key in (
            "hidden_crown_min_share",
            "nominal_member_max_share",
            "aav_member_min_share",
        ):
            if not 0.0 <= getattr(self, key) <= 1.0:
                msg = f"{where} {key} must lie in [0, 1], got {getattr(self, key):g}"
                raise ConfigError(msg)
        if self.hidden_crown_min_share <= 0.0:
            # At 0 every EPCI of the territory would join every system.
            msg = f"{where} hidden_crown_min_share must be above 0, got 0"
            raise ConfigError(msg)
        if self.nominal_member_max_share > self.hidden_crown_min_share:
            msg = (
                f"{where} nominal_member_max_share ({self.nominal_member_max_share:g}) "
                f"must not exceed hidden_crown_min_share ({self.hidden_crown_min_share:g}): "
                "a nominal member depends less on the métropole than any EPCI the flows place"
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
