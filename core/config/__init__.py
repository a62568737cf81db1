"""The config stage: the typed schema (schema), a config's identity and run id (identity),
configs derived from configs (derive), and Hydra composition of the presets (compose)."""
from core.config.derive import (
    PRETRAIN_KEEPS,
    PRETRAIN_SETS,
    PRETRAIN_TAKES,
    changed,
    pretrain_config,
)
from core.config.identity import HASHED_WHEN_ABSENT, experiment_dict, run_id, runtime_dict
from core.config.schema import (
    BOUNDS,
    EXPERIMENT,
    FRACTION_FIELDS,
    LABEL,
    REQUEST,
    ROLE,
    RUNTIME,
    SINCE,
    AttackCfg,
    AugCfg,
    DataCfg,
    EmaCfg,
    EvalCfg,
    ModelCfg,
    OptimCfg,
    PretrainCfg,
    ResourcesCfg,
    RunConfig,
    added,
    fields_with,
    from_dict,
    label,
    normalise,
    param,
    parse_fraction,
    request,
    runtime,
    to_dict,
)

__all__ = [
    "BOUNDS", "EXPERIMENT", "FRACTION_FIELDS", "HASHED_WHEN_ABSENT", "LABEL", "PRETRAIN_KEEPS",
    "PRETRAIN_SETS", "PRETRAIN_TAKES", "REQUEST", "ROLE", "RUNTIME", "SINCE", "AttackCfg",
    "AugCfg", "DataCfg", "EmaCfg", "EvalCfg", "ModelCfg", "OptimCfg", "PretrainCfg",
    "ResourcesCfg", "RunConfig", "added", "changed", "experiment_dict", "fields_with",
    "from_dict", "label", "normalise", "param", "parse_fraction", "pretrain_config", "request",
    "run_id", "runtime", "runtime_dict", "to_dict",
]
