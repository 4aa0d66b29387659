"""Classify the EPCI around each métropole with ordered, configurable rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.config import ClassificationSection

#: Class of the métropole itself (crown 0), outside the rules.
METROPOLE_CLASS = "metropole"


#: Class of an EPCI with no employed resident in the flows (nothing to classify).
NO_DATA_CLASS = "sans_donnees"


def classify_epci(
    indicators: pd.DataFrame, rules: ClassificationSection
) -> pd.DataFrame:
    """Give each (métropole, EPCI) row its class and the rule that fired.

    Parameters
    ----------
    indicators
        Output of :func:`observatory.systems.flows.system_indicators`.
    rules
        Ordered rules; the first whose conditions all hold (``indicator >=
        threshold``) gives the class. A missing indicator satisfies no condition.

    Returns
    -------
    pandas.DataFrame
        ``indicators`` with ``epci_class``, ``epci_class_label`` and ``class_rule``
        added. Crown 0 is ``metropole``; an EPCI with no employed resident in the
        flows is ``sans_donnees``.
    """
    out = indicators.copy()
    n = len(out)
    assigned = np.zeros(n, dtype=bool)
    codes = np.full(n, "", dtype=object)
    labels = np.full(n, "", dtype=object)
    fired = np.full(n, "", dtype=object)

    def _assign(mask: np.ndarray, code: str, label: str, rule: str) -> None:
        take = mask & ~assigned
        codes[take], labels[take], fired[take] = code, label, rule
        assigned[take] = True

    _assign((out["crown"] == 0).to_numpy(), METROPOLE_CLASS, "Métropole", "crown == 0")
    _assign(
        (out["employed_residents"] <= 0).to_numpy(),
        NO_DATA_CLASS,
        "Sans données",
        "employed_residents == 0",
    )
    for rule in rules.rules:
        mask = np.ones(n, dtype=bool)
        for name, threshold in rule.conditions:
            # NaN >= x is False: an undefined indicator never satisfies a rule.
            mask &= out[name].to_numpy(dtype="float64", na_value=np.nan) >= threshold
        _assign(mask, rule.class_code, rule.label, rule.describe())
    out["epci_class"] = pd.array(codes, dtype="string")
    out["epci_class_label"] = pd.array(labels, dtype="string")
    out["class_rule"] = pd.array(fired, dtype="string")
    return out
