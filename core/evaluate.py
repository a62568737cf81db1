"""Evaluate any checkpoint with the training runs' suite: python -m core.evaluate [overrides]

    python -m core.evaluate model.source=run:RUN_ID     # with the run's settings: its numbers
    python -m core.evaluate model.source=run:RUN_ID eval=full eval.n=null eval.n_aa=null
    python -m core.evaluate model=vit_b16 model.source=file:w.pth data=cifar10 eval=quick
    python -m core.evaluate model=vit_b16 model.source=robustbench:Mo2022When_ViT-B \\
        data=imagenet attack.eps=4/255
    python -m core.evaluate model.source=run:RUN_ID --cfg   # the resolved config

model.source: file:PATH, timm:TAG, run:RUN_ID or robustbench:NAME (RobustBench's layout,
<models_dir>/<dataset>/Linf/NAME.pt with models_dir $VITADV_ROBUSTBENCH_DIR, default ./models;
the data set picks <dataset>). For run:RUN_ID the run's stored config is the base and the
overrides given apply on top, so the plain command reproduces the run's metrics.

The suite is the training runs' (natural, PGD-20, CW-20, PGD-100, AutoAttack, point-wise worst
case; eval.attacks picks), resumable, with progress bars. It writes <runs_dir>/_evals/<eval-id>/
(result.json with the metrics and full provenance, per-attack flags in eval/), where
<eval-id> hashes what is evaluated: the weights (resolved source, SHA-256, normalisation), the
model and data settings, the test points, eps, the seed and CW's kappa; not the attacks, so
asking again for more attacks runs only those. Bad input is one line and exit code 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from core.infra.cli import accuracies, entry  # the rest is imported once the help is not asked


def main(argv: list[str] | None = None) -> int:
    return entry(__doc__, argv, ("--cfg",), _evaluate)


def _evaluate(overrides: list[str], flags: set[str]) -> int:
    from omegaconf import OmegaConf

    from core.runs.evaluations import (  # deferred: fast --help
        EVALS,
        evaluate_checkpoint,
        evaluation_config,
    )

    cfg = evaluation_config(overrides)
    if "--cfg" in flags:
        print(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return 0
    result = evaluate_checkpoint(cfg)
    folder = Path(cfg.runs_dir) / EVALS / result["eval_id"]
    print(f"done: evaluation {result['eval_id']} of {result['source']} ({folder})  "
          f"{accuracies(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
