"""Resolve the inputs of a config to local files, through the sources catalogue.

An input is either a local path or a reference to a catalogue entry
(``{ source = "insee_epci_2025", member = "EPCI_au_01-01-2025.xlsx" }``); the
latter is fetched into the cache (or taken from it with ``offline=True``) by
:mod:`observatory.sources.cache`, and its provenance follows it into the run
manifest. A reference may name a ``fallback`` source, used when the first
cannot be fetched (HTTP error, network failure, or absent from the cache
offline); a checksum mismatch never falls back.

Every input is in one geography: :func:`check_geography` checks, when the config
loads and before anything is downloaded or read, that the communes and the
flows are in the EPCI composition's geography (flows in an older one need a
commune passage reaching it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from observatory.config import Config, SourceRef, configs_dir, default_cache_dir
from observatory.core.errors import ConfigError, ObservatoryError, SourceError

if TYPE_CHECKING:
    from observatory.sources.cache import FetchResult
    from observatory.sources.catalogue import Source
    from observatory.sources.provenance import Provenance


logger = logging.getLogger(__name__)


#: Land rasters (observatory.land, issue 14): a file or a list of tiles each; no
#: commune codes, so no geography.
LAND_ROLES = (
    "land_cover",
    "built_up",
    "built_up_previous",
    "population_grid",
    "population_grid_previous",
)


INPUT_ROLES = (
    "communes",
    "epci_composition",
    "flows",
    "flows_previous",
    "commune_passage",
    "epci_list",
    "fd_mobpro",
    "aav",
    *LAND_ROLES,
)


#: Inputs in the target geography (``[inputs] geography``): boundaries, composition.
GEOGRAPHY_ROLES = ("communes", "epci_composition")


#: Inputs of commune flows: in the target geography, or in an older one that the
#: commune passage brings to it.
FLOW_ROLES = ("flows", "flows_previous", "fd_mobpro")


SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    """A local file ready to be read, and where it came from."""

    role: str
    path: Path
    #: the catalogue source the file comes from (its fallback's id when used)
    source_id: str | None = None
    #: the provenance of a catalogue source's file (None for a local path)
    provenance: Provenance | None = None
    #: sha256 measured by the fetch (downloaded file, extracted members), by path
    digests: dict[str, str] = field(default_factory=dict)
    #: the geography (1 January) of the file: its catalogue entry's, the one
    #: written beside its path, or ``[inputs] geography`` for a bare path
    geography: int | None = None
    #: the source the config names when its fallback ``source_id`` replaced it
    replaces: str | None = None


def input_files(resolved: ResolvedInput) -> list[Path]:
    """Return the files an input is read from: every part of a shapefile, else its path."""
    path = resolved.path
    if path.suffix.lower() != ".shp":
        return [path]
    return [p for ext in SHAPEFILE_PARTS if (p := path.with_suffix(ext)).exists()]


def catalogue_path(config: Config) -> Path:
    """Return the catalogue a config uses (the shipped ``sources.toml`` by default)."""
    return config.sources.catalogue or configs_dir() / "sources.toml"


def cache_dir(config: Config) -> Path:
    """Return the download cache a config uses."""
    return config.sources.cache_dir or default_cache_dir()


def load_config_catalogue(config: Config) -> dict[str, Source]:
    """Load the catalogue of ``config``; check every referenced id (and fallback) exists."""
    from observatory.sources.catalogue import load_catalogue

    path = catalogue_path(config)
    catalogue = load_catalogue(path)
    for role, ref in source_refs(config).items():
        for key, source_id in (("source", ref.source), ("fallback", ref.fallback)):
            if source_id is not None and source_id not in catalogue:
                msg = (
                    f"{config.path}: [inputs] {role}: {key} {source_id!r} is not in "
                    f"the catalogue {path}; known: {sorted(catalogue)}"
                )
                raise ConfigError(msg, path=config.path, source=source_id)
    return catalogue


def configured_inputs(config: Config) -> dict[str, tuple[str, Path | SourceRef]]:
    """Return every input a config names: ``{key: (role, path or source)}``.

    The key is the role, or ``role[i]`` (from 1) for a role given as a list, such
    as several ``communes`` files (one per territory).
    """
    out: dict[str, tuple[str, Path | SourceRef]] = {}
    for role in INPUT_ROLES:
        value = getattr(config.inputs, role)
        if isinstance(value, tuple):
            out.update({f"{role}[{i}]": (role, v) for i, v in enumerate(value, 1)})
        elif value is not None:
            out[role] = (role, value)
    return out


def role_inputs(inputs: dict[str, ResolvedInput], role: str) -> list[ResolvedInput]:
    """Return the resolved inputs of one role, in the config's order."""
    return [resolved for resolved in inputs.values() if resolved.role == role]


def source_refs(config: Config) -> dict[str, SourceRef]:
    """Return the inputs of ``config`` that name a catalogue source, by key."""
    return {
        key: value
        for key, (_, value) in configured_inputs(config).items()
        if isinstance(value, SourceRef)
    }


# --------------------------------------------------------------------- geography
def input_geographies(
    config: Config, catalogue: dict[str, Source]
) -> dict[str, int | None]:
    """Return the geography (1 January) of every input, by key; None when unstated.

    A catalogue source's is its entry's ``geography``; a local path's is the one
    written beside it (``{ path = "...", geography = 2025 }``), else
    ``[inputs] geography``.
    """
    out: dict[str, int | None] = {}
    for key, (role, value) in configured_inputs(config).items():
        if isinstance(value, SourceRef):
            out[key] = catalogue[value.source].geography
        elif role in LAND_ROLES:
            out[key] = None  # a raster has no commune codes
        else:
            out[key] = config.inputs.geographies.get(key, config.inputs.geography)
    return out


def check_geography(
    config: Config, catalogue: dict[str, Source] | None = None
) -> Config:
    """Check that every input is in the EPCI composition's geography; return the config.

    The target geography is ``[inputs] geography``, else the composition's (its
    catalogue entry's, or the one beside its path): the returned config has it in
    ``inputs.geography``. The communes must be in it; ``flows``,
    ``flows_previous`` and ``fd_mobpro`` too, or in an older geography when a
    ``commune_passage`` reaching the target is given. A fallback source must be in
    its primary's geography. An input whose geography is unstated is not checked.

    Parameters
    ----------
    config
        A loaded configuration.
    catalogue
        Its catalogue, loaded when the config names a source and it is not given.

    Raises
    ------
    ConfigError
        Naming the config file, each input out of the geography with its year,
        the composition's year and what to change or add.
    """
    if catalogue is None:
        catalogue = load_config_catalogue(config) if source_refs(config) else {}
    geographies = input_geographies(config, catalogue)
    target = _target_geography(config, catalogue, geographies)
    problems: list[str | None] = list(_fallback_problems(config, catalogue))
    for key, (role, _) in configured_inputs(config).items():
        year = geographies[key]
        if target is None or year is None or year == target:
            continue
        if role not in ("communes", *FLOW_ROLES):
            continue
        problems.append(
            _misplaced(config, catalogue, geographies, key, target)
            if role == "communes" or year > target
            else _unharmonised(config, catalogue, geographies, key, target)
        )
    if found := [p for p in problems if p]:
        msg = f"{config.path}: " + "; ".join(found)
        raise ConfigError(msg, path=config.path)
    if target is None or config.inputs.geography == target:
        return config
    logger.debug("[inputs] geography taken from the EPCI composition: %d", target)
    return replace(config, inputs=replace(config.inputs, geography=target))


def _describe(config: Config, catalogue: dict[str, Source], key: str) -> str:
    """Name an input: ``[inputs] flows (source insee_base_flux_rp2023, RP 2023)``."""
    _, value = configured_inputs(config)[key]
    if not isinstance(value, SourceRef):
        return f"[inputs] {key} ({value.name})"
    vintage = catalogue[value.source].vintage
    census = f", RP {vintage}" if vintage is not None else ""
    return f"[inputs] {key} (source {value.source}{census})"


def _target_geography(
    config: Config, catalogue: dict[str, Source], geographies: dict[str, int | None]
) -> int | None:
    """Return ``[inputs] geography``, else the composition's; refuse a disagreement."""
    stated = config.inputs.geography
    value = config.inputs.epci_composition
    own = (
        catalogue[value.source].geography
        if isinstance(value, SourceRef)
        else config.inputs.geographies.get("epci_composition")
    )
    if stated is not None and own is not None and own != stated:
        msg = (
            f"{config.path}: [inputs] geography = {stated} but "
            f"{_describe(config, catalogue, 'epci_composition')} is in the geography "
            f"of {own}: the target geography is the composition's, set geography = "
            f"{own} or take the composition of {stated}"
        )
        raise ConfigError(msg, path=config.path)
    return stated if stated is not None else geographies.get("epci_composition")


def _misplaced(
    config: Config,
    catalogue: dict[str, Source],
    geographies: dict[str, int | None],
    key: str,
    target: int,
) -> str:
    """Say that an input is in a geography no passage can bring to the target."""
    year = geographies[key]
    what = "communes" if key.startswith("communes") else "flows"
    why = (
        "boundaries are never harmonised"
        if what == "communes"
        else "a commune passage cannot take codes back to an older geography"
    )
    return (
        f"{_describe(config, catalogue, key)} is in the geography of {year} but the "
        f"EPCI composition is in that of {target} ({why}): take {what} published in "
        f"the geography of {target}, or the EPCI composition and communes of {year}"
    )


def _unharmonised(
    config: Config,
    catalogue: dict[str, Source],
    geographies: dict[str, int | None],
    key: str,
    target: int,
) -> str | None:
    """Say what passage an input of an older geography needs; None when it has it."""
    year = geographies[key]
    where = (
        f"{_describe(config, catalogue, key)} is in the geography of {year} but the "
        f"EPCI composition is in that of {target}"
    )
    if "commune_passage" not in geographies:
        suggestion = _passage_suggestion(catalogue, target)
        return (
            f"{where}: add commune_passage = {suggestion} (INSEE's COG events of "
            f"{target} or later) to harmonise its commune codes"
        )
    reach = geographies["commune_passage"]
    if reach is None or reach >= target:
        return None
    return (
        f"{where} and {_describe(config, catalogue, 'commune_passage')} stops at the "
        f"geography of {reach}: take INSEE's COG events of {target} or later "
        f"({_passage_suggestion(catalogue, target)})"
    )


def _passage_suggestion(catalogue: dict[str, Source], target: int) -> str:
    """Name the catalogue's first COG events file reaching ``target``, if any."""
    reaching = sorted(
        (source.geography, source.id)
        for source in catalogue.values()
        if source.file_name.startswith("v_mvt_commune")
        and source.geography is not None
        and source.geography >= target
    )
    if reaching:
        return f'{{ source = "{reaching[0][1]}" }}'
    return f'"v_mvt_commune_{target}.csv"'


def _fallback_problems(config: Config, catalogue: dict[str, Source]) -> list[str]:
    """Check that each fallback is in its primary's geography (it replaces it silently)."""
    problems = []
    for key, ref in source_refs(config).items():
        if ref.fallback is None:
            continue
        own, other = catalogue[ref.source].geography, catalogue[ref.fallback].geography
        if own is not None and other is not None and own != other:
            problems.append(
                f"[inputs] {key}: fallback {ref.fallback} is in the geography of "
                f"{other}, its source {ref.source} in that of {own}: a fallback "
                "must be in the same geography"
            )
    return problems


# --------------------------------------------------------------------- fetching
@dataclass(frozen=True, slots=True)
class FetchedInput:
    """The file fetched for one input: its own source's, or its fallback's."""

    key: str
    ref: SourceRef
    #: what the fetch gave (None when it failed and the caller asked to go on)
    result: FetchResult | None
    #: why the input failed, or why its fallback replaced its source
    error: ObservatoryError | None = None
    #: True when ``result`` is the fallback's
    replaced: bool = False


def fetch_config_sources(
    config: Config,
    offline: bool = False,
    *,
    keep_going: bool = False,
    catalogue: dict[str, Source] | None = None,
    command: str = "fetch",
) -> dict[str, FetchedInput]:
    """Fetch (or find in the cache) the source of every input naming one, by input key.

    The cache's lock is held throughout (one fetch at a time per cache folder),
    and ``[sources]`` bounds every download. Each source is fetched once. An
    input whose source cannot be fetched (HTTP error, network failure; offline:
    absent from the cache) takes its
    ``fallback``; the inputs of one role sharing a fallback take it together
    when any of their sources fails (the fallback holds all their files).

    Parameters
    ----------
    config
        A loaded configuration.
    offline
        Use the download cache only.
    keep_going
        Record a failed input (``result`` None, ``error`` set) and go on, instead
        of raising its error.
    catalogue
        The config's catalogue, loaded when not given.
    command
        What fetches (``fetch``, ``run``, ``refresh``): the lock names it to
        the commands it refuses.

    Raises
    ------
    Locked
        Another process is fetching into the same cache.
    """
    from observatory.sources.staging import cache_lock

    if catalogue is None:
        catalogue = load_config_catalogue(config)
    cache = cache_dir(config)
    fetcher = _Fetcher(catalogue, cache, config, offline, keep_going)
    if offline and not cache.is_dir():  # nothing cached: nothing to lock
        return _fetch_all(config, fetcher)
    with cache_lock(cache, command):
        return _fetch_all(config, fetcher)


def _fetch_all(config: Config, fetcher: _Fetcher) -> dict[str, FetchedInput]:
    """Fetch every source of ``config`` once, falling back where allowed."""
    refs = source_refs(config)
    roles = {key: role for key, (role, _) in configured_inputs(config).items()}
    primary = {
        key: fetcher.get(ref.source, may_fail=ref.fallback is not None)
        for key, ref in refs.items()
    }
    failed_groups = {
        (roles[key], ref.fallback): outcome
        for key, ref in refs.items()
        if ref.fallback is not None
        and isinstance(outcome := primary[key], ObservatoryError)
        and _unavailable(outcome)
    }
    fetched = {}
    for key, ref in refs.items():
        group = (roles[key], ref.fallback)
        if ref.fallback is not None and group in failed_groups:
            reason = failed_groups[group]
            logger.warning(
                "[inputs] %s: %s; using its fallback %s", key, reason, ref.fallback
            )
            used = fetcher.get(ref.fallback, may_fail=False)
            fetched[key] = _fetched(key, ref, used, reason, replaced=True)
        else:
            fetched[key] = _fetched(key, ref, primary[key], None, replaced=False)
    return fetched


def _fetched(
    key: str,
    ref: SourceRef,
    outcome: FetchResult | ObservatoryError,
    reason: ObservatoryError | None,
    *,
    replaced: bool,
) -> FetchedInput:
    if isinstance(outcome, ObservatoryError):
        return FetchedInput(key, ref, None, outcome, replaced)
    return FetchedInput(key, ref, outcome, reason, replaced)


def _unavailable(outcome: FetchResult | ObservatoryError) -> bool:
    """Tell whether a fallback may answer this outcome: the file could not be fetched."""
    from observatory.sources.download import SourceUnavailable

    return isinstance(outcome, SourceUnavailable)


class _Fetcher:
    """Fetch each source once; keep the errors asked for instead of raising them."""

    def __init__(
        self,
        catalogue: dict[str, Source],
        cache: Path,
        config: Config,
        offline: bool,
        keep_going: bool,
    ) -> None:
        from observatory.sources.limits import FetchLimits

        self.catalogue, self.cache = catalogue, cache
        self.limits = FetchLimits.of(config.sources)
        self.offline, self.keep_going = offline, keep_going
        self.done: dict[str, FetchResult | ObservatoryError] = {}

    def get(self, source_id: str, *, may_fail: bool) -> FetchResult | ObservatoryError:
        """Return the source's fetch; its error when it may fail over (or keep_going).

        ``may_fail`` is True for a source with a fallback: an unavailable file
        (offline: absent from the cache) is then returned, not raised.
        """
        from observatory.sources.cache import fetch_locked
        from observatory.sources.download import SourceUnavailable

        if source_id not in self.done:
            source = self.catalogue[source_id]
            cached = (self.cache / source.id / source.file_name).is_file()
            try:
                if self.offline and may_fail and not cached:
                    msg = (
                        f"{source.id}: not in the cache and offline mode forbids "
                        "downloading it"
                    )
                    raise SourceUnavailable(msg, source=source.id)
                self.done[source_id] = fetch_locked(
                    source, self.cache, offline=self.offline, limits=self.limits
                )
            except ObservatoryError as exc:
                self.done[source_id] = exc
        outcome = self.done[source_id]
        if isinstance(outcome, ObservatoryError) and not (
            self.keep_going or (may_fail and _unavailable(outcome))
        ):
            raise outcome
        return outcome


def pick_member(result: FetchResult, member: str | None) -> Path:
    """Return the file of a fetched source to read: the archive member asked for."""
    if not result.members:
        return result.path
    names = sorted(result.members)
    if member is None:
        if len(names) == 1:
            return result.members[names[0]]
        msg = (
            f"source {result.source.id!r} holds several files {names}: "
            'say which one with member = "..." in [inputs]'
        )
        raise ConfigError(msg, source=result.source.id, path=result.path)
    matches = [n for n in names if n == member or PurePosixPath(n).name == member]
    if len(matches) != 1:
        msg = (
            f"source {result.source.id!r}: member {member!r} matches "
            f"{matches or 'nothing'} among {names}"
        )
        raise SourceError(msg, source=result.source.id, path=result.path)
    return result.members[matches[0]]


def _fetched_digests(result: FetchResult) -> dict[str, str]:
    """sha256 the fetch measured (and verified) on this run, by path."""
    record = result.provenance
    digests = {str(result.path): record.sha256} if record.sha256 else {}
    extracted = record.extracted
    members = extracted.sha256 if extracted is not None else None
    if members is not None:
        for name, path in result.members.items():
            if isinstance(members.get(name), str):
                digests[str(path)] = members[name]
    return digests


def resolve_inputs(
    config: Config, offline: bool = False, *, command: str = "run"
) -> dict[str, ResolvedInput]:
    """Return every input of ``config`` as a local file, fetching sources as needed.

    The geography of the inputs is checked first (:func:`check_geography`).
    Inputs of one role that fell back to the same file are read once: the first
    key keeps it.

    Parameters
    ----------
    config
        A loaded configuration.
    offline
        Use the download cache only; a source missing from it is an error naming
        it (unless its fallback is cached).
    command
        ``run`` or ``refresh``: what the cache's lock names while it fetches.
    """
    catalogue = load_config_catalogue(config) if source_refs(config) else {}
    config = check_geography(config, catalogue)
    geographies = input_geographies(config, catalogue)
    fetched = (
        fetch_config_sources(config, offline, catalogue=catalogue, command=command)
        if catalogue
        else {}
    )
    resolved: dict[str, ResolvedInput] = {}
    for key, (role, value) in configured_inputs(config).items():
        if not isinstance(value, SourceRef):
            resolved[key] = ResolvedInput(role, value, geography=geographies[key])
            continue
        item = fetched[key]
        result = item.result
        assert result is not None  # without keep_going a failure raises
        path = pick_member(result, value.member)
        if item.replaced and any(
            r.role == role and r.path == path for r in resolved.values()
        ):
            continue  # several inputs fell back to the same file
        resolved[key] = ResolvedInput(
            role,
            path,
            result.source.id,
            result.provenance,
            _fetched_digests(result),
            geography=result.source.geography,
            replaces=value.source if item.replaced else None,
        )
    return resolved
