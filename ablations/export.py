"""Export a run's model to RobustBench's layout:
    python -m ablations.export RUN_ID --robustbench NAME --out DIR [--runs-dir runs]

    python -m ablations.export 0123456789ab --robustbench Doe2025Recipes_ViT-B --out rb \\
        --title "Our paper" --authors "Jane Doe, John Roe" --venue "arXiv, Jan 2025"

writes DIR/<dataset>/Linf/NAME.pt (RobustBench's checkpoint layout, core/models/robustbench.py; the
normalisation and the timm architecture ride along for readers that want them) and
DIR/model_info/<dataset>/Linf/NAME.json with the fields RobustBench's leaderboard reads,
filled from the AutoAttack result on all of RobustBench's test points (CIFAR-10: the whole
test set; ImageNet: its 5,000-image subset) at the leaderboard's eps: the run's own, or an
evaluation of the run's weights by core.evaluate. Without one it names the command to run.
"""
from __future__ import annotations

import argparse
import sys

from core.infra.cli import Parser, runs_dir_flag  # the rest once the help is not asked
from core.infra.errors import UserError


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m ablations.export", description=__doc__)
    p.add_argument("run_id")
    p.add_argument("--robustbench", required=True, metavar="NAME",
                   help="the entry's name, e.g. Doe2025Recipes_ViT-B")
    p.add_argument("--out", required=True, metavar="DIR")
    runs_dir_flag(p, "the folder that holds the run", "runs")
    p.add_argument("--title", default=None, help="the paper's title (model info 'name')")
    p.add_argument("--authors", default="")
    p.add_argument("--venue", default="", help="empty: RobustBench shows Unpublished")
    p.add_argument("--link", default="")
    p.add_argument("--architecture", default=None, help="default: the timm architecture")
    p.add_argument("--footnote", default=None, help="default: where the entry came from")
    p.add_argument("--reported", default=None, help="the paper's number, in %%")
    p.add_argument("--additional-data", choices=("true", "false"), default=None,
                   help="default: false for no or same-data pretraining, else true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ablations.tables.leaderboard import export  # deferred: fast --help
    from core.models.robustbench import THREAT_MODEL  # deferred: fast --help

    try:
        pt, info = export(a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported run {a.run_id} as RobustBench {THREAT_MODEL} entry {a.robustbench}: "
          f"{pt} and {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
