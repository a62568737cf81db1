"""The evaluation stage: the suite (suite: batches, sharding, resuming, the worst case) and
its registered attacks (entries: natural, PGD-20, CW-20, PGD-100, AutoAttack, PGD-20 x5).
Importing the package registers every attack; pgd_correct is what a new PGD-like entry wraps."""
from core.evaluation.entries import aa_correct, clean_correct, pgd_correct, restarts_correct
from core.evaluation.suite import (
    CPU_BATCH,
    EVAL_ATTACKS,
    NATURAL,
    WORST_CASE,
    EvalAttack,
    EvalContext,
    attack_of,
    covers,
    eval_batch_size,
    evaluate,
    metric_columns,
    metric_label,
    ordered,
    register,
    robust,
    summarise,
    worst_case,
)

__all__ = [
    "CPU_BATCH", "EVAL_ATTACKS", "NATURAL", "WORST_CASE", "EvalAttack", "EvalContext", "attack_of",
    "covers", "eval_batch_size", "evaluate", "metric_columns", "metric_label", "ordered",
    "register", "robust", "summarise", "worst_case", "aa_correct", "clean_correct", "pgd_correct",
    "restarts_correct",
]
