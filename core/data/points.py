"""Which test points a run is evaluated on, in which order (`eval.points`); `eval.n` takes
the first n of them.

- shuffled: a fixed shuffle of the test set (the same for every run and seed).
- robustbench: RobustBench's 5,000 ImageNet validation images, in the order of its own list
  (robustbench/helper_files/imagenet_test_image_ids.txt, lines `wnid/file.JPEG`), labelled
  by the sorted class-folder index: the leaderboard's points, so the numbers are the same
  measurement. The list is read where RobustBench is installed, from VITADV_ROBUSTBENCH_IDS,
  or from the data root (`python -m core.prefetch robustbench-ids --root DIR` puts it there).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import DataCfg
from core.data.sets import Splits, root_of
from core.infra.atomic import sha256_file
from core.infra.errors import ConfigError, DataNotFoundError
from core.infra.registry import Registry

IDS_FILE = "imagenet_test_image_ids.txt"
IDS_ENV = "VITADV_ROBUSTBENCH_IDS"
# the list as RobustBench ships it (commit 78fcc9e of github.com/RobustBench/robustbench)
IDS_URL = ("https://raw.githubusercontent.com/RobustBench/robustbench/"
           "78fcc9e48a07a861268f295a777b975f25155964/robustbench/helper_files/" + IDS_FILE)
IDS_SHA256 = "d4121626d07722a0126c35b1563042e46a546f1a05ce705f2cdc635896d58574"


@dataclass(frozen=True)
class TestPoints:
    """order(splits, data) -> test-set indices in evaluation order; missing(data) -> why they
    cannot be had here (None: they can), checked before any work."""

    order: Callable[[Splits, DataCfg], torch.Tensor]
    missing: Callable[[DataCfg], str | None] = lambda data: None
    record: Callable[[DataCfg], dict] = lambda data: {}


TEST_POINTS: Registry[TestPoints] = Registry("test-point selection")


def _shuffled(splits: Splits, data: DataCfg) -> torch.Tensor:
    return splits.test_order()


def ids_file(data: DataCfg) -> Path | None:
    """Where RobustBench's ImageNet list is: the environment, the data root, the package."""
    candidates = [os.environ.get(IDS_ENV), root_of(data) / IDS_FILE]
    spec = importlib.util.find_spec("robustbench")  # locates, does not import, the package
    if spec and spec.submodule_search_locations:
        candidates += [Path(p) / "helper_files" / IDS_FILE
                       for p in spec.submodule_search_locations]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


# RobustBench's list names ImageNet val/ files; an ImageFolder may hold that tree too
ID_DATA = ("imagenet", "imagefolder")


def _ids_missing(data: DataCfg) -> str | None:
    if data.name not in ID_DATA:  # no list would help: say so before asking for one
        return (f"eval.points=robustbench picks RobustBench's ImageNet test images, which "
                f"data={data.name} does not hold: use eval.points=shuffled, or data=imagenet")
    return None if ids_file(data) is not None else (
        f"RobustBench's ImageNet test ids ({IDS_FILE}) are not here: looked in ${IDS_ENV}, "
        f"{root_of(data)} and an installed robustbench; get them with `python -m "
        f"core.prefetch robustbench-ids --root {root_of(data)}` on a machine with internet")


def _robustbench(splits: Splits, data: DataCfg) -> torch.Tensor:
    path = ids_file(data)
    if path is None:
        raise DataNotFoundError(_ids_missing(data))
    folder = getattr(splits.test, "folder", None)  # an ImageFolder: (path, class index)
    if folder is None:
        raise ConfigError(f"eval.points=robustbench picks files of an image folder; "
                          f"data.name={data.name} has none (use data=imagenet)")
    where = {Path(p).relative_to(folder.root).as_posix(): i
             for i, (p, _) in enumerate(folder.samples)}
    wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    absent = [w for w in wanted if w not in where]
    if absent:
        raise DataNotFoundError(f"{len(absent)} of RobustBench's {len(wanted)} test images are "
                                f"not in {folder.root} (first: {absent[0]}); is data.root the "
                                "ImageNet folder with the 50,000 val/ images?")
    return torch.tensor([where[w] for w in wanted])


def _ids_record(data: DataCfg) -> dict:
    """Which list was read, and whether it is RobustBench's own (its SHA-256)."""

    path = ids_file(data)
    sha = sha256_file(path) if path else None
    return {"ids_file": str(path), "ids_sha256": sha, "robustbench_list": sha == IDS_SHA256}


def order_of(splits: Splits, data: DataCfg, points: str) -> torch.Tensor:
    return TEST_POINTS.get(points).order(splits, data)


def record_of(data: DataCfg, points: str) -> dict:
    return {"points": points, **TEST_POINTS.get(points).record(data)}


TEST_POINTS.add("shuffled", TestPoints(_shuffled))
TEST_POINTS.add("robustbench", TestPoints(_robustbench, _ids_missing, _ids_record))
