"""FD_MOBPRO samples shared by the tests of the reader and of the modes.

Hand-written rows of RP 2021 (6 modes), RP 2016 (5 modes) and of Corsica and
abroad codes, synthetic files of realistic records, and helpers on flow tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["COMMUNE", "ARM", "DCLT", "TRANS", "IPONDI"]

# RP2021: every one of the 6 codes, an arrondissement of residence, work abroad.
RP2021_ROWS = [
    ("75056", "75104", "75108", "6", "2.5"),
    ("75056", "75104", "75108", "6", "1.5"),
    ("75056", "75104", "75108", "3", "1.0"),
    ("01001", "ZZZZZ", "99140", "5", "3.25"),
    ("01001", "ZZZZZ", "01001", "1", "2.0"),
    ("01001", "ZZZZZ", "01001", "2", "1.0"),
    ("01002", "ZZZZZ", "01001", "4", "0.5"),
    ("01002", "ZZZZZ", "01001", "5.0", "1.75"),
]

# RP2016: every one of the 5 codes; 3 is the single two-wheeler class.
RP2016_ROWS = [
    ("01001", "ZZZZZ", "01002", "1", "1.0"),
    ("01001", "ZZZZZ", "01002", "2", "2.0"),
    ("01001", "ZZZZZ", "01002", "3", "3.0"),
    ("01001", "ZZZZZ", "01002", "4", "4.0"),
    ("01001", "ZZZZZ", "01002", 4.0, "1.5"),
    ("01001", "ZZZZZ", "01002", "5", "0.5"),
]

CORSICA_ROWS = [
    ("2B033", "ZZZZZ", "2A004", "5", "1.5"),
    ("2A004", "ZZZZZ", "2B033", "5", "2.0"),
    ("29019", "ZZZZZ", "2A004", "6", "1.0"),
    ("30007", "ZZZZZ", "99140", "1", "0.5"),
    ("2A004", "ZZZZZ", "2A004", "2", "0.25"),
    (" 2A004 ", "ZZZZZ", "2A004 ", "2", "0.25"),  # stripped
    ("01001", "ZZZZZ", "AL12", "5", "3.0"),
    ("01001", "ZZZZZ", "BE1", "5", "1.0"),
    ("01001", "ZZZZZ", "BE10", "5", "1.0"),
    ("01001", "ZZZZZ", "01001", "5.0", "1.0"),
]


def fd_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def flows(rows) -> pd.DataFrame:
    """A long table in the shape aggregate_fd returns, from hand-written rows."""
    frame = pd.DataFrame(
        rows, columns=["origin_commune", "destination_commune", "mode", "workers"]
    )
    return frame.astype(
        {"origin_commune": "string", "destination_commune": "string", "mode": "string"}
    )


def synthetic_fd(n: int = 3_000, seed: int = 7) -> pd.DataFrame:
    """Realistic-looking records: weights with 6+ decimals, Paris arrondissements."""
    rng = np.random.default_rng(seed)
    communes = ["01001", "01002", "2A004", "29019", "75056", "69123"]
    commune = rng.choice(communes, n)
    arm = np.where(
        commune == "75056",
        rng.choice(["75101", "75104", "75120"], n),
        np.where(commune == "69123", rng.choice(["69381", "69389"], n), "ZZZZZ"),
    )
    dclt = rng.choice(["01001", "01002", "29019", "75108", "69381", "99140"], n)
    return pd.DataFrame(
        {
            "COMMUNE": commune,
            "ARM": arm,
            "DCLT": dclt,
            "TRANS": rng.choice(["1", "2", "3", "4", "5", "6"], n),
            "IPONDI": [f"{w:.9f}" for w in rng.uniform(0.5, 9.5, n)],
            "CS1": rng.choice(["3", "4", "5"], n),
            "ILT": rng.choice(["1", "2", "7"], n),
        }
    )


def write_csv(frame: pd.DataFrame, path):
    frame.to_csv(path, sep=";", index=False)
    return path


def assert_same_flows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    # Partial sums add up in another order: equal to the last few bits.
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-12)


def commune_pairs(flows_by_mode: pd.DataFrame) -> pd.DataFrame:
    """Sum flows over modes: ``origin_commune, destination_commune, workers``.

    The shape of ``CommuneFlows.table`` of the base flux reader, sorted by pair.
    """
    keys = ["origin_commune", "destination_commune"]
    out = flows_by_mode.groupby(keys, sort=True, observed=True)["workers"].sum()
    out = out.reset_index()
    out[keys] = out[keys].astype("string")
    out["workers"] = out["workers"].astype("float64")
    return out
