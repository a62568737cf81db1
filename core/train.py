"""Train and evaluate one configuration: python -m core.train [hydra overrides...]

    python -m core.train scale=tiny method=at ard=true prm=true seed=0
    python -m core.train model=swin_t data=cifar10 data.root=/data/cifar10 attack.eps=8/255
    python -m core.train scale=tiny --cfg      # print the resolved config and its run id
"""
from __future__ import annotations

import sys

from omegaconf import OmegaConf

from core.compose import compose
from core.config import run_id
from core.errors import UserError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    show = "--cfg" in args
    try:
        cfg = compose([a for a in args if a != "--cfg"])
        if show:
            print(OmegaConf.to_yaml(OmegaConf.structured(cfg)) + f"# run id: {run_id(cfg)}")
            return 0
        from core.run import run, run_dir_of

        result = run(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    accs = "  ".join(f"{k}={result[k]:.4f}" for k in result["metrics"] if k.endswith("_acc"))
    print(f"{result['status']}: run {result['run_id']} ({run_dir_of(cfg)})  {accs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
