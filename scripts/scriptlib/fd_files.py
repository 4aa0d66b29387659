"""Names and defaults of the synthetic FD_MOBPRO files (standard library only).

``make_synthetic_fd.py`` writes the files, ``bench_fd.py`` finds them and
``make_national_inputs.py`` sums the same rows into base flux: all three take
the defaults from here. Light on purpose: the benchmark's worker processes
import it before they time their own imports.
"""

from __future__ import annotations

#: Rows of INSEE's RP 2019 FD_MOBPRO, the national size.
DEFAULT_ROWS = 7_930_000
DEFAULT_SEED = 2021
#: Census vintage the files are named after (its ``TRANS`` coding: 6 modes).
VINTAGE = 2020
#: Rows drawn at a time. The chunking changes the draws, so every user of the
#: same rows must chunk alike.
CHUNK_ROWS = 1_000_000

#: The 32 variables in INSEE's order (geography first, then alphabetical).
COLUMNS = [
    "COMMUNE", "ARM", "DCFLT", "DCLT", "AGEREVQ", "CS1", "DEROU", "DIPL_15",
    "EMPL", "ILT", "ILTUU", "IMMI", "INATC", "INEEM", "INPOM", "INPSM", "IPONDI",
    "LPRM", "METRODOM", "MOCO", "NA5", "NPERR", "REGION", "REGLT", "SEXE", "STAT",
    "STOCD", "TP", "TRANS", "TYPL", "TYPMR", "VOIT",
]  # fmt: skip


def stem_for(rows: int) -> str:
    """Return the file stem for ``rows`` rows, e.g. ``FD_MOBPRO_2020_synthetic_7930000``."""
    return f"FD_MOBPRO_{VINTAGE}_synthetic_{rows}"
