"""Fetch data sets and pretrained weights on a machine with internet, for offline clusters.

    python -m core.prefetch cifar10 --root DIR
    python -m core.prefetch imagenette --root DIR [--size full|320px|160px]
    python -m core.prefetch weights TAG [TAG ...] [--out FILE]
    python -m core.prefetch weights --all        # every timm tag the model presets name
    python -m core.prefetch synthetic --root DIR # a stand-in world: made-up data, random weights
    python -m core.prefetch robustbench-ids --root DIR   # RobustBench's 5,000 ImageNet ids

Weights go to the Hugging Face / torch hub caches (copy ~/.cache to the cluster and set
HF_HUB_OFFLINE=1), or with --out to one state-dict file for `model.source=file:FILE`.
Runs never download anything themselves. `synthetic` writes small made-up CIFAR-10 and
Imagenette in their real layouts and random-initialised weights for every preset's timm tag
in the Hugging Face cache layout (marked as stand-ins everywhere), and prints, last, the
`export ...` line that points runs at them: for pre-flights on machines without the real ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.data.points import IDS_FILE, IDS_SHA256, IDS_URL
from core.data.sets import default_root
from core.infra.atomic import write_text
from core.infra.cli import Parser
from core.offline.downloads import fetch_weights, preset_tags
from core.offline.standin import write_world


def parser() -> Parser:
    p = Parser(prog="python -m core.prefetch", description=__doc__)
    p.add_argument("what", choices=["cifar10", "imagenette", "weights", "synthetic",
                                    "robustbench-ids"])
    p.add_argument("tags", nargs="*")
    p.add_argument("--root", default=None, help="data set folder")
    p.add_argument("--size", default="full", choices=["full", "320px", "160px"])
    p.add_argument("--out", default=None, help="weights: write one state-dict file")
    p.add_argument("--all", action="store_true", help="weights: every preset's tag")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_intermixed_args(argv)
    try:
        return _fetch(p, a)
    except OSError as e:  # offline, a proxy, a full disk: one line, not urllib's traceback
        reason = str(getattr(e, "reason", None) or e.strerror or e).splitlines()[0]
        print(f"error: {a.what} could not be fetched ({reason}): run this on a machine with "
              "internet, then copy what it writes here", file=sys.stderr)
        return 2


def _fetch(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    if a.what == "synthetic":
        return _synthetic(p, a)
    if a.what == "robustbench-ids":
        return _robustbench_ids(a)
    if a.what == "weights":
        tags = preset_tags() if a.all else a.tags
        if not tags:
            p.error("name at least one timm tag, or --all")
        fetch_weights(tags, a.out)
        return 0

    root = Path(a.root) if a.root else default_root(a.what)
    root.mkdir(parents=True, exist_ok=True)
    if a.what == "cifar10":
        from torchvision.datasets import CIFAR10

        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    else:
        from torchvision.datasets import Imagenette

        for split in ("train", "val"):
            Imagenette(str(root), split=split, size=a.size, download=True)
    print(f"{a.what} ready in {root} (data.root={root})")
    return 0


def _robustbench_ids(a: argparse.Namespace) -> int:
    """RobustBench's list of its 5,000 ImageNet test images, checked against its SHA-256."""
    import hashlib
    import urllib.request

    root = Path(a.root) if a.root else default_root("imagenet")
    with urllib.request.urlopen(IDS_URL, timeout=60) as response:  # noqa: S310 - fixed URL
        text = response.read().decode()
    if hashlib.sha256(text.encode()).hexdigest() != IDS_SHA256:
        print(f"error: {IDS_URL} did not give RobustBench's list (SHA-256 differs)",
              file=sys.stderr)
        return 2
    write_text(root / IDS_FILE, text)
    print(f"{root / IDS_FILE}: {len(text.splitlines())} ids (eval.points=robustbench)")
    return 0


def _synthetic(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    if not a.root:
        p.error("synthetic needs --root DIR (where the stand-in world goes)")
    tags = a.tags or preset_tags()
    print(f"writing stand-in data and {len(tags)} random-initialised weight sets to {a.root} ...",
          file=sys.stderr)
    print(write_world(Path(a.root), tags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
