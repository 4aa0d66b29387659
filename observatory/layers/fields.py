"""One column of an output layer: :class:`Field` (name, Arrow type, description, alias).

Kept apart from :mod:`observatory.layers.schemas` so that the modules declaring
the columns of one family (:mod:`observatory.layers.flow_schemas`...) and the
schemas that gather them can both import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Field:
    """One column of an output layer."""

    name: str
    type: pa.DataType
    description: str
    alias_fr: str
