"""INSEE's detailed commuting file FD_MOBPRO, read out of core into flows by mode.

One row per sampled worker (``COMMUNE``/``ARM``, ``DCLT``, ``TRANS``, ``IPONDI``)
becomes ``origin_commune, destination_commune, mode, workers``, arrondissements
kept (:func:`read_fd`). Modules in reading order: ``source``, ``partitions``,
``coding``, ``keys``, ``frame``, ``partials``, ``read``.
"""

# FD_MOBPRO has several million rows: read_fd reads it with dask, mapping the
# one aggregation of aggregate_fd over partitions, as tobler's dask wrapper
# does, then summing the partial sums. Arrondissements (75104, 69381...) are
# kept, as the base flux reader keeps them, so both sources compare pair by
# pair. Modes are harmonised across census vintages by each vintage's TRANS
# coding (trans_coding). Modal split, distances and the comparison with the
# base flux are pure computations on the table: observatory.systems.

from __future__ import annotations

from observatory.readers.fd_mobpro.coding import (
    FD_COLUMNS,
    LAST_FIVE_MODE_VINTAGE,
    TRANS_FIVE_MODES,
    TRANS_SIX_MODES,
    trans_coding,
    trans_to_mode,
)
from observatory.readers.fd_mobpro.frame import aggregate_fd
from observatory.readers.fd_mobpro.keys import pack_codes, unpack_codes
from observatory.readers.fd_mobpro.read import FdReadReport, read_fd

__all__ = [
    "FD_COLUMNS",
    "LAST_FIVE_MODE_VINTAGE",
    "TRANS_FIVE_MODES",
    "TRANS_SIX_MODES",
    "FdReadReport",
    "aggregate_fd",
    "pack_codes",
    "read_fd",
    "trans_coding",
    "trans_to_mode",
    "unpack_codes",
]
