"""French formatting and escaped HTML fragments for the run report.

Numbers are written the French way (``12 345``, ``12,5 %``, ``+2,3 pts``, with
no-break spaces so that a number never wraps), dates in words, classification
rules in words. Every text goes through :func:`esc` on its way into the page:
only :class:`Html` values (built here from escaped parts) pass unchanged.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

#: Thin no-break space, between groups of thousands (French typography).
THIN = "\u202f"

#: No-break space, before ``%`` and units.
NBSP = "\u00a0"

#: What a missing value is shown as.
MISSING = "–"

#: French names of the indicators a classification rule may test.
INDICATOR_LABELS = {
    "dependence_share": "dépendance",
    "attraction_share": "attraction",
    "reciprocity": "réciprocité",
    "self_containment_share": "autocontention",
    "main_other_destination_share": "part vers une autre destination",
}

#: The rules :mod:`observatory.systems.classify` writes outside the configured ones.
FIXED_RULES = {
    "crown == 0": "la métropole elle-même",
    "employed_residents == 0": "aucun actif résident dans les flux",
    "otherwise": "aucune des règles précédentes (classe par défaut)",
}

_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

_CONDITION = re.compile(r"^\s*([a-z_]+)\s*>=\s*([-+0-9.eE]+)\s*$")


class Html(str):
    """Markup already escaped: :func:`esc` inserts it unchanged."""

    __slots__ = ()


def esc(value: object) -> Html:
    """Return ``value`` as HTML text: escaped, unless it is :class:`Html` already."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    """Join escaped fragments (each part goes through :func:`esc`)."""
    return Html(sep.join(esc(part) for part in parts))


def tag(name: str, content: object = "", **attrs: object) -> Html:
    """Return the element ``<name attrs>content</name>``, attributes escaped.

    ``class_`` stands for ``class``; an attribute whose value is None is left out.
    """
    text = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Html(f"<{name}{text}>{esc(content)}</{name}>")


def table(
    headers: Sequence[object],
    rows: Iterable[Sequence[object]],
    numeric: Sequence[bool] | None = None,
    class_: str | None = None,
) -> Html:
    """Return a table; ``numeric`` right-aligns the columns it flags."""
    flags = list(numeric or [False] * len(headers))

    def _cells(cells: Sequence[object], name: str) -> Html:
        return join(
            tag(name, cell, class_="num" if flag else None)
            for cell, flag in zip(cells, flags, strict=True)
        )

    head = tag("thead", tag("tr", _cells(headers, "th")))
    body = tag("tbody", join(tag("tr", _cells(row, "td")) for row in rows))
    return tag("table", join([head, body]), class_=class_)


def finite(value: object) -> float | None:
    """Return ``value`` as a float, or None when it is missing or not a number."""
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fr_number(value: object, digits: int = 0, signed: bool = False) -> str:
    """Format a number the French way: ``12 345,6`` (``+``/``−`` when ``signed``)."""
    number = finite(value)
    if number is None:
        return MISSING
    rounded = round(number, digits)
    text = f"{abs(rounded):,.{digits}f}".replace(",", THIN).replace(".", ",")
    if rounded < 0:
        return f"\u2212{text}"
    return f"+{text}" if signed and rounded > 0 else text


def fr_count(value: object) -> str:
    """Format a count (weighted census counts are rounded): ``12 345``."""
    return fr_number(value)


def fr_percent(share: object, digits: int = 1) -> str:
    """Format a share in [0, 1] as a percentage: ``12,5 %``."""
    number = finite(share)
    if number is None:
        return MISSING
    return f"{fr_number(100 * number, digits)}{NBSP}%"


def fr_points(change: object, digits: int = 1) -> str:
    """Format a change of a share in percentage points: ``+2,3 pts``."""
    number = finite(change)
    if number is None:
        return MISSING
    return f"{fr_number(100 * number, digits, signed=True)}{NBSP}pt"


def fr_threshold(name: str, value: float) -> str:
    """Format a rule threshold: a percentage for a share, a decimal otherwise."""
    if name.endswith("_share"):
        return fr_percent(value, 0 if float(value * 100).is_integer() else 1)
    return fr_number(value, 2)


def fr_datetime(iso: object) -> str:
    """Format an ISO 8601 time in words: ``29 novembre 2026 à 11 h 53 (UTC)``."""
    try:
        moment = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso) if iso else MISSING
    day = "1er" if moment.day == 1 else str(moment.day)
    text = (
        f"{day} {_MONTHS[moment.month - 1]} {moment.year} à {moment:%H} h {moment:%M}"
    )
    offset = moment.utcoffset()
    if offset is None:
        return text
    if not offset:
        return f"{text} (UTC)"
    return f"{text} (UTC{moment:%z})"


def rule_conditions(rule: str) -> list[tuple[str, float]] | None:
    """Read ``a >= x and b >= y`` (a rule as the layers store it); None otherwise."""
    conditions = []
    for part in rule.split(" and "):
        match = _CONDITION.match(part)
        if match is None:
            return None
        conditions.append((match[1], float(match[2])))
    return conditions


def rule_parts(rule: object, values: Mapping[str, object] | None = None) -> list[str]:
    """Say in French each condition of the rule that placed an EPCI in its class.

    Parameters
    ----------
    rule
        The ``class_rule`` of the EPCI layer (``dependence_share >= 0.15 and
        reciprocity >= 0.25``, ``otherwise``, ``crown == 0``...).
    values
        The EPCI's indicators: each condition then shows the value it tested
        (``dépendance 32,8 % ≥ 15 %``).
    """
    text = "" if rule is None else str(rule).strip()
    if not text or text in {"nan", "<NA>", "None"}:
        return [MISSING]
    if text in FIXED_RULES:
        return [FIXED_RULES[text]]
    conditions = rule_conditions(text)
    if conditions is None:
        return [text]
    said = []
    for name, threshold in conditions:
        label = INDICATOR_LABELS.get(name, name)
        value = None if values is None else finite(values.get(name))
        # The value and its threshold stay on one line: "32,8 % ≥ 15 %".
        shown = "" if value is None else f"{NBSP}{fr_threshold_value(name, value)}"
        said.append(f"{label}{shown}{NBSP}≥{NBSP}{fr_threshold(name, threshold)}")
    return said


def rule_fr(rule: object, values: Mapping[str, object] | None = None) -> str:
    """Say a rule in French on one line (:func:`rule_parts` joined by « et »)."""
    return " et ".join(rule_parts(rule, values))


def rule_html(rule: object, values: Mapping[str, object] | None = None) -> Html:
    """Say a rule in French, one condition a line (for a table cell)."""
    parts = rule_parts(rule, values)
    return join([parts[0], *(join([Html("<br>"), "et ", p]) for p in parts[1:])])


def fr_threshold_value(name: str, value: float) -> str:
    """Format the value an indicator takes, as its thresholds are written."""
    return fr_percent(value) if name.endswith("_share") else fr_number(value, 2)


def data_uri(name: str, content: bytes) -> str:
    """Return ``content`` as a ``data:`` URI, its type told by the file name."""
    kinds = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".svg": "image/svg+xml",
    }
    kind = next(
        (v for k, v in kinds.items() if name.lower().endswith(k)),
        "application/octet-stream",
    )
    return f"data:{kind};base64,{base64.b64encode(content).decode('ascii')}"
