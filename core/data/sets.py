"""The data sets, by name: digits (embedded), cifar10, imagenette, imagefolder.

Every set is a train and a test split of uint8 images at `data.img_size`; pixels become
floats in [0,1] only on the way into the model, and nothing is ever downloaded here.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import DataCfg
from core.data.images import FolderImages, TensorImages
from core.errors import DataNotFoundError
from core.registry import Registry

FIXED_ORDER_SEED = 0  # the test points and train subsets are the same for every run and seed


@dataclass
class Splits:
    train: TensorImages | FolderImages
    test: TensorImages | FolderImages
    num_classes: int
    description: str

    def test_order(self) -> torch.Tensor:
        """A fixed shuffle of the test set: eval.n takes its head, so subsets are class-mixed."""
        g = torch.Generator().manual_seed(FIXED_ORDER_SEED)
        return torch.randperm(len(self.test), generator=g)


@dataclass(frozen=True)
class DataSet:
    """load(root, img_size) -> Splits; sizes: (train, test) images, for cost estimates made
    where the data is not (None: unknown until read, e.g. any image folder)."""

    load: Callable[[Path, int], Splits]
    sizes: tuple[int, int] | None = None


DATASETS: Registry[DataSet] = Registry("data set")


def default_root(name: str) -> Path:
    return Path(os.environ.get("VITADV_DATA", "data")) / name


def load_splits(cfg: DataCfg) -> Splits:
    root = Path(cfg.root).expanduser() if cfg.root else default_root(cfg.name)
    return DATASETS.get(cfg.name).load(root, cfg.img_size)


def train_indices(n: int, subset: int | None) -> torch.Tensor:
    """All training indices, or the first `subset` of a fixed shuffle."""
    if subset is None or subset >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(FIXED_ORDER_SEED)
    return torch.randperm(n, generator=g)[:subset].sort().values


def digits(root: Path, size: int) -> Splits:
    """scikit-learn's 8x8 handwritten digits (1797 real images shipped with the package),
    upsampled to size x size grey-as-RGB; a fixed stratified 80/20 split (1437/360)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0  # values 0..16
    images = (images * 255).round().to(torch.uint8).unsqueeze(1).expand(-1, 3, -1, -1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    tr, te = train_test_split(torch.arange(len(labels)).numpy(), test_size=0.2,
                              random_state=FIXED_ORDER_SEED, stratify=bunch.target)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    return Splits(TensorImages(images[tr].contiguous(), labels[tr], size),
                  TensorImages(images[te].contiguous(), labels[te], size), 10,
                  "sklearn digits (embedded)")


def cifar10(root: Path, size: int) -> Splits:
    from torchvision.datasets import CIFAR10

    if not (root / "cifar-10-batches-py").is_dir():
        raise DataNotFoundError(
            f"CIFAR-10 not found: looked for {root / 'cifar-10-batches-py'}; get it with "
            f"`python -m core.prefetch cifar10 --root {root}` on a machine with internet, "
            "or set data.root=DIR")

    def split(train: bool) -> TensorImages:
        ds = CIFAR10(str(root), train=train, download=False)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return TensorImages(images, torch.tensor(ds.targets), size)

    return Splits(split(True), split(False), 10, f"CIFAR-10 from {root}")


IMAGENETTE_LAYOUTS = ("", "imagenette2", "imagenette2-320", "imagenette2-160", "imagenette",
                      "imagenette-320", "imagenette-160")


def imagenette(root: Path, size: int) -> Splits:
    """Imagenette v1 or v2: `root` itself or one of its known sub-folders holds train/ and val/."""
    for sub in IMAGENETTE_LAYOUTS:
        if (root / sub / "train").is_dir() and (root / sub / "val").is_dir():
            return _folder_splits(root / sub, size, "Imagenette")
    raise DataNotFoundError(
        f"Imagenette not found: looked for train/ and val/ in {root} and in its sub-folders "
        f"{', '.join(s for s in IMAGENETTE_LAYOUTS if s)}; get it with "
        f"`python -m core.prefetch imagenette --root {root}` on a machine with internet")


def imagefolder(root: Path, size: int) -> Splits:
    """Any data set laid out as root/train/<class>/*.jpg and root/val/<class>/*.jpg."""
    if not ((root / "train").is_dir() and (root / "val").is_dir()):
        raise DataNotFoundError(
            f"image folder not found: {root} needs train/<class>/ and val/<class>/ folders; "
            "set data.root=DIR")
    return _folder_splits(root, size, "image folder")


def _folder_splits(root: Path, size: int, what: str) -> Splits:
    train, test = FolderImages(root / "train", size), FolderImages(root / "val", size)
    if train.folder.classes != test.folder.classes:
        raise DataNotFoundError(f"{root}: train/ and val/ have different class folders")
    return Splits(train, test, len(train.folder.classes), f"{what} from {root}")


DATASETS.add("digits", DataSet(digits, sizes=(1437, 360)))
DATASETS.add("cifar10", DataSet(cifar10, sizes=(50000, 10000)))
DATASETS.add("imagenette", DataSet(imagenette, sizes=(9469, 3925)))
DATASETS.add("imagefolder", DataSet(imagefolder))
