"""Transport modes: the harmonised modes, flows by mode, and the modal split.

:data:`MODES` is the vocabulary of every table by mode, in display order; the
``TRANS`` coding of each census vintage maps onto it
(:func:`observatory.readers.fd_mobpro.trans_coding`). :func:`modal_split`
turns flows by mode into the share of each mode by (origin, destination) pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from observatory.core.errors import DataError

#: Harmonised transport modes, in display order:
#:
#: - ``none``: no transport (mostly people working at home);
#: - ``walk``: on foot (or rollers, scooter);
#: - ``bicycle``: bicycle, electric or not (RP 2017 and later);
#: - ``two_wheel_motorised``: moped, motorcycle (RP 2017 and later);
#: - ``two_wheel``: the single two-wheeler class of RP 2016 and earlier, bicycles
#:   and motorised together. It is never split: it is 0 from RP 2017 on, and
#:   ``bicycle`` and ``two_wheel_motorised`` are 0 before. Compare vintages with
#:   ``bicycle + two_wheel_motorised`` against ``two_wheel``;
#: - ``car``: car, van, truck;
#: - ``public_transport``: public transport.
MODES: tuple[str, ...] = (
    "none",
    "walk",
    "bicycle",
    "two_wheel_motorised",
    "two_wheel",
    "car",
    "public_transport",
)


#: Keys of a table of flows by mode (one row per key, and ``workers``).
FLOW_KEYS: tuple[str, ...] = ("origin_commune", "destination_commune", "mode")


#: Keys of a table of flows by commune pair.
PAIR_KEYS: tuple[str, ...] = ("origin_commune", "destination_commune")


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    """Raise a :class:`DataError` naming the columns of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"{what}: missing column(s) {missing}; expected {list(columns)}, found {list(frame.columns)}"
        raise DataError(msg)


def modal_split(flows_by_mode: pd.DataFrame) -> pd.DataFrame:
    """Pivot flows by mode into one row per pair with the share of each mode.

    Parameters
    ----------
    flows_by_mode
        ``origin_commune``, ``destination_commune``, ``mode``, ``workers``.

    Returns
    -------
    pandas.DataFrame
        ``origin_commune``, ``destination_commune``, ``workers`` (all modes) and
        ``<mode>_share`` for every mode of :data:`MODES`, in that order. Shares
        sum to 1; a mode absent from a pair (or from the vintage's coding, such
        as ``bicycle`` before RP 2017) has share 0; a pair of 0 workers has all
        shares 0.

    Raises
    ------
    DataError
        Missing columns, or modes outside :data:`MODES`.
    """
    require_columns(flows_by_mode, (*FLOW_KEYS, "workers"), "flows_by_mode")
    modes = flows_by_mode["mode"].astype("string")
    unknown = sorted({str(m) for m in modes[~modes.isin(MODES).fillna(False)]})
    if unknown:
        msg = (
            f"flows_by_mode: unknown mode(s) {unknown}; expected some of {list(MODES)}"
        )
        raise DataError(msg)
    share_columns = [f"{mode}_share" for mode in MODES]
    if flows_by_mode.empty:
        return pd.DataFrame(
            {key: pd.Series(dtype="string") for key in PAIR_KEYS}
            | {c: pd.Series(dtype="float64") for c in ["workers", *share_columns]}
        )
    wide = (
        flows_by_mode.assign(mode=modes)
        .groupby([*PAIR_KEYS, "mode"], sort=True, observed=True)["workers"]
        .sum()
        .unstack("mode", fill_value=0.0)  # type: ignore[arg-type]  # stubs: int only
        .reindex(columns=list(MODES), fill_value=0.0)
        .astype("float64")
    )
    total = wide.sum(axis=1).to_numpy()
    values = wide.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(total[:, None] > 0, values / total[:, None], 0.0)
    out = wide.index.to_frame(index=False).astype("string")
    out["workers"] = total
    for j, column in enumerate(share_columns):
        out[column] = shares[:, j]
    return out


def pair_modes(by_mode: pd.DataFrame) -> pd.DataFrame:
    """Modal shares, straight-line distance and person-km of each EPCI pair.

    Parameters
    ----------
    by_mode
        EPCI flows by mode with person-km (:func:`observatory.systems.flows.flows_epci_by_mode`).

    Returns
    -------
    pandas.DataFrame
        ``origin_code``, ``destination_code``, ``<mode>_share`` for every mode,
        ``distance_km`` (mean over the workers who travel), ``person_km`` and
        ``<mode>_person_km`` for every mode but ``none``.
    """
    keys = ["origin_code", "destination_code"]
    commune_keys = {
        "origin_code": "origin_commune",
        "destination_code": "destination_commune",
    }
    split = modal_split(
        by_mode[[*keys, "mode", "workers"]].rename(columns=commune_keys)
    )
    split = split.rename(columns={v: k for k, v in commune_keys.items()}).drop(
        columns="workers"
    )
    person_km = by_mode.pivot_table(
        index=keys, columns="mode", values="person_km", aggfunc="sum"
    ).reindex(columns=list(MODES))
    travelling = by_mode[by_mode["mode"] != "none"].groupby(keys)["workers"].sum()
    totals = person_km.sum(axis=1, min_count=1)
    extra = pd.DataFrame(
        {
            "distance_km": totals / travelling.reindex(totals.index),
            "person_km": totals,
            **{
                f"{m}_person_km": person_km[m].fillna(0.0) for m in MODES if m != "none"
            },
        }
    ).reset_index()
    return split.merge(extra, on=keys, how="left")


def with_metropole_modes(
    indicators: pd.DataFrame, pair_modes: pd.DataFrame | None
) -> pd.DataFrame:
    """Add the modal shares of the flows to and from the métropole (null for crown 0).

    Without ``pair_modes`` (no detailed file) the columns are there and empty,
    so that the layers keep the same columns whatever the config.
    """
    out = indicators.copy()
    shares = [f"{m}_share" for m in MODES]
    for side, origin, destination in (
        ("to", "epci_code", "metropole_code"),
        ("from", "metropole_code", "epci_code"),
    ):
        names = {s: f"{side}_metropole_{s}" for s in shares}
        if pair_modes is None:
            for name in names.values():
                out[name] = np.nan
            continue
        part = pair_modes[["origin_code", "destination_code", *shares]].rename(
            columns={"origin_code": origin, "destination_code": destination, **names}
        )
        out = out.merge(part, on=["epci_code", "metropole_code"], how="left")
        out.loc[out["crown"] == 0, list(names.values())] = np.nan
    return out
