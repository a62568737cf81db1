"""Train and evaluate one configuration: python -m core.train [hydra overrides...]

    python -m core.train scale=tiny method=at ard=true prm=true seed=0
    python -m core.train model=swin_t data=cifar10 data.root=/data/cifar10 attack.eps=8/255
    python -m core.train scale=tiny --cfg      # print the resolved config and its run id
    python -m core.train scale=tiny --estimate # how long it should take here; nothing runs
    torchrun --nproc-per-node 8 -m core.train model=vit_b16 data=imagenet   # one run, 8 ranks
"""
from __future__ import annotations

import sys

from core.infra.cli import accuracies, entry  # the rest is imported once the help is not asked


def main(argv: list[str] | None = None) -> int:
    return entry(__doc__, argv, ("--cfg", "--estimate"), _train)


def _train(overrides: list[str], flags: set[str]) -> int:
    from omegaconf import OmegaConf

    from core.config import run_id  # deferred: fast --help
    from core.config.compose import compose  # deferred: fast --help
    from core.infra.distributed import init_from_env  # deferred: fast --help
    from core.runs.run import (  # deferred: fast --help
        choose_kernels,
        resolve_device,
        run,
        run_dir_of,
    )

    cfg = compose(overrides)
    if "--cfg" in flags:
        print(OmegaConf.to_yaml(OmegaConf.structured(cfg)) + f"# run id: {run_id(cfg)}")
        return 0
    choose_kernels(cfg)  # before the projection's measurement runs the first kernel
    if "--estimate" in flags:
        _state_projection(cfg, always=True)
        return 0
    # under torchrun: one run over its ranks, each on its own GPU (or CPU processes, gloo)
    w = init_from_env(cuda=resolve_device(cfg.device).type == "cuda")
    if w.main:
        _state_projection(cfg)
    result = run(cfg)
    if w.main:
        print(f"{result['status']}: run {result['run_id']} ({run_dir_of(cfg)})  "
              f"{accuracies(result)}")
    return 0


LONG_MINUTES = 10


def _state_projection(cfg, always: bool = False) -> None:
    """Before a long run starts (its inputs checked first), say how long it should take."""
    from core.runs.checks import check_inputs, validate  # deferred: fast --help
    from core.runs.cost import projected_seconds  # deferred: fast --help
    from core.runs.run import answers, resolve_device, run_dir_of  # deferred: fast --help

    validate(cfg)
    if answers(run_dir_of(cfg).read_result(), cfg):
        if always:
            print("finished: nothing to run", file=sys.stderr)
        return
    check_inputs(cfg)
    seconds, rate = projected_seconds(cfg, resolve_device(cfg.device))
    if seconds > LONG_MINUTES * 60 or always:
        print(f"note: this run (with any pretraining it needs) is projected to take about "
              f"{_duration(seconds)} at {rate}; an interrupted run resumes where it stopped",
              file=sys.stderr)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds > 5400 else f"{seconds / 60:.0f} minutes"


if __name__ == "__main__":
    sys.exit(main())
