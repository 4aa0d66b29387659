"""Typed configuration loaded from TOML files in ``configs/``.

A run config has the tables ``[run]``, ``[inputs]``, ``[sources]``, ``[compute]``,
``[territories]``, ``[reliability]``, ``[classification]`` and ``[output]``; every
key is checked, unknown keys are errors, and paths are relative to the config
file. The classification rules live in their own file
(``configs/classification.toml`` by default) so that agencies can share and
version them separately.

One module per group of tables, each setting's default and its check side by
side: :mod:`.inputs`, :mod:`.territories`, :mod:`.runtime`; :mod:`.load` reads
the file.
"""

from observatory.config.inputs import LOCATED_ROLES, InputsSection, SourceRef
from observatory.config.load import (
    Config,
    configs_dir,
    default_config_path,
    load_classification,
    load_config,
)
from observatory.config.runtime import (
    LATEST_MODES,
    OUTPUT_FORMATS,
    ComputeSection,
    OutputSection,
    RunSection,
    SourcesSection,
    check_scheduler,
    default_cache_dir,
)
from observatory.config.territories import (
    CLASSIFIABLE_INDICATORS,
    ClassificationSection,
    ClassRule,
    ReliabilitySection,
    TerritoriesSection,
)

__all__ = [
    "CLASSIFIABLE_INDICATORS",
    "LATEST_MODES",
    "LOCATED_ROLES",
    "OUTPUT_FORMATS",
    "ClassRule",
    "ClassificationSection",
    "ComputeSection",
    "Config",
    "InputsSection",
    "OutputSection",
    "ReliabilitySection",
    "RunSection",
    "SourceRef",
    "SourcesSection",
    "TerritoriesSection",
    "check_scheduler",
    "configs_dir",
    "default_cache_dir",
    "default_config_path",
    "load_classification",
    "load_config",
]
