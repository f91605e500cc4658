"""Config: the models (``models``, ``mixture``), YAML loading and its error messages
(``loading``), what registries point at (``sources``, ``langid_model``) and the run plan
(``plan``). Everything fails before Spark starts, naming the file, the key and the fix."""

from jobs.config.langid_model import DEFAULT_LID_MODEL, shipped_model_name
from jobs.config.loading import ConfigError
from jobs.config.mixture import (
    MixtureCaps,
    MixtureConfig,
    MixtureGroups,
    MixtureLanguages,
    check_columns,
)
from jobs.config.models import (
    PARTITION_COLUMNS,
    CsvOptions,
    DatasetRegistry,
    DecontaminationConfig,
    DedupConfig,
    LangIdConfig,
    PipelineConfig,
)
from jobs.config.plan import (
    DEFAULT_TAXONOMY,
    RunPlan,
    SourcePlan,
    load_dedup_config,
    load_mixture_config,
    load_plan,
)

__all__ = [
    "DEFAULT_LID_MODEL",
    "DEFAULT_TAXONOMY",
    "PARTITION_COLUMNS",
    "ConfigError",
    "CsvOptions",
    "DatasetRegistry",
    "DecontaminationConfig",
    "DedupConfig",
    "LangIdConfig",
    "MixtureCaps",
    "MixtureConfig",
    "MixtureGroups",
    "MixtureLanguages",
    "PipelineConfig",
    "RunPlan",
    "SourcePlan",
    "check_columns",
    "load_dedup_config",
    "load_mixture_config",
    "load_plan",
    "shipped_model_name",
]
