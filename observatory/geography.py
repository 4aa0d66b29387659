"""The geography vocabulary: code rules, territories and their CRS, places.

Commune codes (5 characters, ``2A``/``2B`` in Corsica), EPCI SIREN, the
municipal arrondissements of Paris, Lyon and Marseille, the codes of work places
abroad and the pseudo-places of flow tables; each territory's official CRS; old
commune codes followed to their latest ones. Every stage reads these from here;
nothing here touches disk.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from observatory.core.errors import DataError

logger = logging.getLogger(__name__)


TARGET_CRS = "EPSG:2154"


#: ADMIN EXPRESS territories and their official projected CRS (IGN's per-territory
#: editions: ``LAMB93_FXX``, ``RGAF09UTM20_GLP``/``_MTQ``, ``UTM22RGFG95_GUF``,
#: ``RGR92UTM40S_REU``, ``RGM04UTM38S_MYT``). Mainland France includes Corsica.
TERRITORY_EPSG = {
    "FXX": 2154,
    "GLP": 5490,
    "MTQ": 5490,
    "GUF": 2972,
    "REU": 2975,
    "MYT": 4471,
}


TERRITORY_CRS = {code: f"EPSG:{epsg}" for code, epsg in TERRITORY_EPSG.items()}


TERRITORY_NAMES = {
    "FXX": "France métropolitaine",
    "GLP": "Guadeloupe",
    "MTQ": "Martinique",
    "GUF": "Guyane",
    "REU": "La Réunion",
    "MYT": "Mayotte",
}


MAINLAND = "FXX"


#: Département prefix of the overseas departments' commune codes.
_OVERSEAS_PREFIX = {
    "971": "GLP",
    "972": "MTQ",
    "973": "GUF",
    "974": "REU",
    "976": "MYT",
}


# [0-9], not \d: Python's \d also matches Arabic-Indic and other digits. No
# look-ahead for "not 99xxx" (countries): Arrow's regular expressions (RE2)
# check the patterns, vectorised, and RE2 has none.
COMMUNE_CODE = re.compile(r"^(?:(?:[0-8][0-9]|9[0-8])[0-9]{3}|2[AB][0-9]{3})$")


SIREN = re.compile(r"^[0-9]{9}$")


# INSEE codes countries as 99xxx; the detailed file also uses border-commune codes.
ABROAD_CODE = re.compile(
    r"^(?:99[0-9]{3}|(?:AL|BE|LU|SU|MO|IT|ES|AN)[0-9A-Z]{1,3}|ZZZZZ)$"
)


#: INSEE's code for "no EPCI" in the composition file.
NO_EPCI = "ZZZZZZZZZ"


#: Paris, Lyon and Marseille arrondissements -> their commune.
ARRONDISSEMENT_RANGES = (
    (75101, 75120, "75056"),
    (69381, 69389, "69123"),
    (13201, 13216, "13055"),
)


#: More workers than any flow can carry: above the employed people of France.
#: INSEE counts 26,180,810 employed people aged 15-64 in mainland France in
#: RP 2019 ("Population active, emploi et chômage au sens du recensement en
#: 2019", insee.fr/fr/statistiques/6455302?geo=METRO-1); those aged 65 or more
#: and those of the overseas departments add under 2 million (our estimate;
#: docs/sources-evidence.md, section 1). A commune pair, or an FD_MOBPRO
#: weight, above this bound is an error in the file (``1e308``).
MAX_WORKERS = 35_000_000


METROPOLE_NATURES = ("ME", "METLYON")


KNOWN_NATURES = ("ME", "METLYON", "CU", "CA", "CC")


# --------------------------------------------------------------------- pure helpers
def on_distinct(values: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Return ``func(values)``, computed once per distinct value.

    A national flow file repeats about 35,000 commune codes over a million rows:
    string work on the distinct codes, then a take back to the rows, is an order
    of magnitude faster than element-wise work on every row. ``func`` must map
    each value independently (a Series to a Series of the same length).
    """
    positions, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype=values.dtype)
    if (positions < 0).any():  # missing values get func(<NA>) too
        distinct = pd.concat(
            [distinct, pd.Series([pd.NA], dtype=values.dtype)], ignore_index=True
        )
        positions = np.where(positions < 0, len(distinct) - 1, positions)
    result = func(distinct)
    out = result.iloc[positions].set_axis(values.index)
    out.name = values.name
    return out


def text_array(codes: pd.Series | pd.Index) -> pa.Array:
    """Return ``codes`` as one Arrow array of strings (missing values null)."""
    values = (
        codes if isinstance(codes.dtype, pd.StringDtype) else codes.astype("string")
    )
    array = pa.array(values.array)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def text_values(array: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Return an Arrow array of strings as the values of a pandas ``string`` column."""
    return pd.arrays.ArrowStringArray(array.cast(pa.large_string()))


def text_series(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Return an Arrow array of strings as a pandas ``string`` Series."""
    return pd.Series(text_values(array))


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    # An Arrow boolean array as numpy, null as False.
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False))


def _matching(text: pa.Array, pattern: str) -> np.ndarray:
    # The pattern, anchored, checked by Arrow (RE2) once per distinct string.
    encoded = pc.dictionary_encode(text)
    matched = _mask(pc.match_substring_regex(encoded.dictionary, pattern))
    at = pc.fill_null(encoded.indices, len(matched)).to_numpy(zero_copy_only=False)
    return np.append(matched, False)[at]


def _full_match(codes: pd.Series, pattern: str) -> pd.Series:
    found = _matching(text_array(codes), pattern)
    return pd.Series(found, index=codes.index, name=codes.name)


def is_commune_code(codes: pd.Series) -> pd.Series:
    """Tell which values are INSEE commune codes (5 characters, 2A/2B for Corsica)."""
    return _full_match(codes, COMMUNE_CODE.pattern)


def is_abroad_code(codes: pd.Series) -> pd.Series:
    """Tell which values designate a work place abroad (INSEE country codes 99xxx...)."""
    return _full_match(codes, ABROAD_CODE.pattern)


def commune_code_flags(text: pa.Array) -> np.ndarray:
    """:func:`is_commune_code` of Arrow strings, as a numpy mask (null: False)."""
    return _matching(text, COMMUNE_CODE.pattern)


def work_place_flags(text: pa.Array) -> np.ndarray:
    """Tell which Arrow strings are commune or abroad codes (a work place), as numpy."""
    return _matching(text, COMMUNE_CODE.pattern) | _matching(text, ABROAD_CODE.pattern)


def territory_of(codes: pd.Series) -> pd.Series:
    """Return the ADMIN EXPRESS territory of commune codes (``FXX``, ``REU``...).

    Codes of the overseas collectivities (``975``, ``977``, ``978``, ``98x``:
    outside ADMIN EXPRESS and the EPCI) and anything that is not a commune code
    give ``<NA>``; so do abroad codes.
    """
    return on_distinct(codes.astype("string"), _territory_distinct)


def _territory_distinct(codes: pd.Series) -> pd.Series:
    prefix = codes.str[:3]
    out = prefix.map(_OVERSEAS_PREFIX).astype("string")
    overseas = prefix.str[:2].isin(["97", "98"]).fillna(False)
    mainland = is_commune_code(codes) & ~overseas
    return out.mask(mainland.fillna(False), MAINLAND)


#: Each arrondissement code of Paris, Lyon and Marseille, and its commune's code.
_ARRONDISSEMENTS = {
    f"{number}": commune
    for first, last, commune in ARRONDISSEMENT_RANGES
    for number in range(first, last + 1)
}


def rollup_arrondissements(codes: pd.Series) -> pd.Series:
    """Replace Paris, Lyon and Marseille arrondissement codes by their commune code.

    Parameters
    ----------
    codes
        Commune codes as strings.

    Returns
    -------
    pandas.Series
        Same index; ``75101``-``75120`` become ``75056``, ``69381``-``69389``
        ``69123``, ``13201``-``13216`` ``13055``; other values are unchanged.
    """
    text = text_array(codes)
    # A hash lookup among the 45 arrondissements, by Arrow: no work per code here.
    found = pc.index_in(
        text, value_set=pa.array(list(_ARRONDISSEMENTS), pa.large_string())
    )
    communes = pa.array(list(_ARRONDISSEMENTS.values()), pa.large_string()).take(found)
    out = text_series(pc.coalesce(communes, text)).set_axis(codes.index)
    out.name = codes.name
    return out


ABROAD = "ABROAD"


ABROAD_PREFIX = f"{ABROAD}-"


UNMATCHED = "UNMATCHED"


REST_OF_FRANCE = "REST_OF_FRANCE"


PSEUDO_CODES = (UNMATCHED, REST_OF_FRANCE)


#: INSEE country codes of the countries French residents commute to most.
COUNTRY_NAMES = {
    "99109": "Allemagne",
    "99127": "Italie",
    "99130": "Andorre",
    "99131": "Belgique",
    "99132": "Royaume-Uni",
    "99134": "Espagne",
    "99135": "Pays-Bas",
    "99136": "Irlande",
    "99137": "Luxembourg",
    "99138": "Monaco",
    "99140": "Suisse",
}


def place_names(codes: pd.Series, epci_names: pd.Series) -> pd.Series:
    """Name each place code: the EPCI's name, or a French label for pseudo-places.

    ``ABROAD-99140`` becomes "Étranger : Suisse", ``REST_OF_FRANCE`` "Reste de la
    France", ``UNMATCHED`` "Commune non rattachée à un EPCI".
    """
    codes = codes.astype("string")
    names = codes.map(epci_names).astype("string")
    country = codes.str.removeprefix(ABROAD_PREFIX)
    abroad = is_abroad(codes)
    abroad_names = "Étranger : " + country.map(COUNTRY_NAMES).fillna(
        "pays " + country
    ).astype("string")
    names = names.mask(abroad, abroad_names)
    names = names.mask(codes == REST_OF_FRANCE, "Reste de la France")
    return names.mask(codes == UNMATCHED, "Commune non rattachée à un EPCI")


def abroad_code(country: str) -> str:
    """Return the place code of work places in a country: ``ABROAD-99140``."""
    return f"{ABROAD_PREFIX}{country}"


def _flags(codes: pd.Series, found: pa.Array) -> pd.Series:
    # Arrow flags as a nullable boolean Series on ``codes``' index, null as False.
    flags = pd.array(_mask(found), dtype="boolean")
    return pd.Series(flags, index=codes.index, name=codes.name)


def is_pseudo(codes: pd.Series) -> pd.Series:
    """Tell which place codes are not EPCI (abroad, unmatched, rest of France)."""
    text = text_array(codes)
    pseudo = pa.array(PSEUDO_CODES, pa.large_string())
    found = pc.or_(
        pc.is_in(text, value_set=pseudo), pc.starts_with(text, ABROAD_PREFIX)
    )
    return _flags(codes, found)


def is_abroad(codes: pd.Series) -> pd.Series:
    """Tell which place codes are work places abroad (any country)."""
    return _flags(codes, pc.starts_with(text_array(codes), ABROAD_PREFIX))


# --------------------------------------------------------------------- code passage
#: Columns of a commune passage: each old code and a code it became.
PASSAGE_COLUMNS = ("old_code", "new_code")


def listed_codes(codes: list[str], limit: int = 5) -> str:
    """Quote the first ``limit`` codes for a message, and say how many more."""
    shown = ", ".join(repr(code) for code in codes[:limit])
    more = len(codes) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def resolve_code_chains(pairs: pd.DataFrame) -> pd.DataFrame:
    """Follow ``old_code -> new_code`` chains to the latest codes.

    ``a -> b`` and ``b -> c`` give ``a -> c`` (and ``b -> c``); identity rows and
    duplicates go. The readers of passage files and the harmonisation both
    resolve chains this way.

    Raises
    ------
    DataError
        On a cycle: following the chains leads back to a code, so no current
        code can be chosen.
    """
    pairs = pairs[pairs["old_code"] != pairs["new_code"]].drop_duplicates()
    for _ in range(len(pairs) + 1):
        chained = _mask(  # by Arrow: pandas' isin of strings loops in Python
            pc.is_in(
                text_array(pairs["new_code"]),
                value_set=text_array(pairs["old_code"]),
            )
        )
        if not chained.any():
            return pairs.reset_index(drop=True)
        following = pairs[chained].merge(
            pairs, left_on="new_code", right_on="old_code", suffixes=("", "_next")
        )
        pairs = pd.concat(
            [
                pairs[~chained],
                following[["old_code", "new_code_next"]].rename(
                    columns={"new_code_next": "new_code"}
                ),
            ],
            ignore_index=True,
        ).drop_duplicates()
        loops = pairs["old_code"] == pairs["new_code"]
        if loops.any():
            codes = sorted(pairs.loc[loops, "old_code"].unique().tolist())
            msg = (
                f"commune passage: cycle through code(s) {listed_codes(codes)}: "
                "following old_code -> new_code leads back to the same code, so no "
                "current code can be chosen; fix or remove these rows"
            )
            raise DataError(msg)
    msg = "commune passage: chains do not end (cycle)"  # pragma: no cover
    raise DataError(msg)  # pragma: no cover
