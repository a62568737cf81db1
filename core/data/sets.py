"""The data sets, by name: digits (embedded), cifar10, imagenette, imagefolder, imagenet.

Every set is a train and a test split of uint8 images at `data.img_size`; pixels become
floats in [0,1] only on the way into the model, and nothing is ever downloaded here. Each
entry can say, without reading the images, whether its files are where the config says.
A folder holding the file STAND_IN was written by `core.prefetch synthetic`: it loads (the
real formats), and its description says so, so a stand-in number is never taken for a real one.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import DataCfg
from core.data.images import FolderImages, TensorImages
from core.infra.errors import DataNotFoundError
from core.infra.registry import Registry

FIXED_ORDER_SEED = 0  # the test points and train subsets are the same for every run and seed
STAND_IN = "VITADV_STAND_IN"  # marks a folder of made-up data in a real layout


@dataclass
class Splits:
    train: TensorImages | FolderImages
    test: TensorImages | FolderImages
    num_classes: int
    description: str
    stand_in: bool = False

    def test_order(self) -> torch.Tensor:
        """A fixed shuffle of the test set: eval.n takes its head, so subsets are class-mixed."""
        g = torch.Generator().manual_seed(FIXED_ORDER_SEED)
        return torch.randperm(len(self.test), generator=g)


@dataclass(frozen=True)
class DataSet:
    """load(root, img_size) -> Splits; missing(root) -> why the files are not there (None:
    they are), checked before any work; sizes: (train, test) images, for cost estimates made
    where the data is not (None: unknown until read, e.g. any image folder)."""

    load: Callable[[Path, int], Splits]
    missing: Callable[[Path], str | None] = lambda root: None
    sizes: tuple[int, int] | None = None


DATASETS: Registry[DataSet] = Registry("data set")


def default_root(name: str) -> Path:
    return Path(os.environ.get("VITADV_DATA", "data")) / name


def root_of(cfg: DataCfg) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else default_root(cfg.name)


def load_splits(cfg: DataCfg) -> Splits:
    return DATASETS.get(cfg.name).load(root_of(cfg), cfg.img_size)


def data_missing(cfg: DataCfg) -> str | None:
    return DATASETS.get(cfg.name).missing(root_of(cfg))


def is_stand_in(folder: Path) -> bool:
    return (folder / STAND_IN).is_file()


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


CIFAR_FOLDER = "cifar-10-batches-py"


def cifar_files() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(file, md5) of the train and test batches, as torchvision knows them."""
    from torchvision.datasets import CIFAR10

    return [tuple(x) for x in CIFAR10.train_list], [tuple(x) for x in CIFAR10.test_list]


def _cifar_missing(root: Path) -> str | None:
    train, test = cifar_files()
    absent = [f for f, _ in train + test if not (root / CIFAR_FOLDER / f).is_file()]
    return None if not absent else (
        f"CIFAR-10 not found: {root / CIFAR_FOLDER} lacks {', '.join(absent[:2])}"
        f"{'...' if len(absent) > 2 else ''}; get it with `python -m core.prefetch cifar10 "
        f"--root {root}` on a machine with internet, or set data.root=DIR")


def cifar10(root: Path, size: int) -> Splits:
    """The python pickle batches (torchvision's layout), checked against their MD5s."""
    from torchvision.datasets.utils import check_integrity

    _require(_cifar_missing(root))
    folder, (train, test) = root / CIFAR_FOLDER, cifar_files()
    stand_in = is_stand_in(folder)
    bad = [f for f, md5 in train + test if not stand_in and not check_integrity(folder / f, md5)]
    if bad:
        raise DataNotFoundError(f"CIFAR-10 in {folder} fails its checksum ({bad[0]}): a corrupt "
                                f"or partial copy; fetch it again with `python -m core.prefetch "
                                f"cifar10 --root {root}`")

    def split(files: list[tuple[str, str]]) -> TensorImages:
        data, labels = [], []
        for f, _ in files:
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")
            data.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += batch["labels"]
        return TensorImages(torch.from_numpy(np.concatenate(data)), torch.tensor(labels), size)

    what = "CIFAR-10 STAND-IN (made-up images, core.prefetch synthetic)" if stand_in else "CIFAR-10"
    return Splits(split(train), split(test), 10, f"{what} from {root}", stand_in)


IMAGENETTE_LAYOUTS = ("", "imagenette2", "imagenette2-320", "imagenette2-160", "imagenette",
                      "imagenette-320", "imagenette-160")


def _imagenette_folder(root: Path) -> Path | None:
    return next((root / sub for sub in IMAGENETTE_LAYOUTS
                 if (root / sub / "train").is_dir() and (root / sub / "val").is_dir()), None)


def _imagenette_missing(root: Path) -> str | None:
    return None if _imagenette_folder(root) is not None else (
        f"Imagenette not found: looked for train/ and val/ in {root} and in its sub-folders "
        f"{', '.join(s for s in IMAGENETTE_LAYOUTS if s)}; get it with "
        f"`python -m core.prefetch imagenette --root {root}` on a machine with internet")


def imagenette(root: Path, size: int) -> Splits:
    """Imagenette v1 or v2: `root` itself or one of its known sub-folders holds train/ and val/."""
    _require(_imagenette_missing(root))
    return _folder_splits(_imagenette_folder(root), size, "Imagenette")


def _require(problem: str | None) -> None:
    if problem:
        raise DataNotFoundError(problem)


def _split_folders_missing(root: Path, what: str) -> str | None:
    if not ((root / "train").is_dir() and (root / "val").is_dir()):
        return (f"{what} not found: {root} needs train/<class>/ and val/<class>/; "
                "set data.root=DIR")
    for split in ("train", "val"):
        classes = [p for p in (root / split).iterdir() if p.is_dir()]
        if not classes:
            return (f"{what}: {root / split} holds no class folder; put each class's images "
                    f"in {split}/<class>/")
        empty = next((c for c in classes if not _has_image(c)), None)
        if empty is not None:  # torchvision refuses the whole folder, after any pretraining
            return (f"{what}: class folder {empty} holds no image torchvision reads; add its "
                    "images or remove the folder")
    return None


def _has_image(folder: Path) -> bool:
    """Whether a class folder holds an image torchvision reads (stops at the first: cheap
    for ImageNet's 1,000 folders)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS  # torchvision's own list

    return any(f.name.lower().endswith(IMG_EXTENSIONS) for f in folder.rglob("*"))


def _imagefolder_missing(root: Path) -> str | None:
    return _split_folders_missing(root, "image folder")


def imagefolder(root: Path, size: int) -> Splits:
    """Any data set laid out as root/train/<class>/*.jpg and root/val/<class>/*.jpg."""
    _require(_imagefolder_missing(root))
    return _folder_splits(root, size, "image folder")


def _imagenet_missing(root: Path) -> str | None:
    return _split_folders_missing(root, "ImageNet (val/ sorted into class folders)")


def imagenet(root: Path, size: int) -> Splits:
    """ImageNet-1K in its standard layout, streamed from disk (decoded and resized to
    size x size by loader workers, as the official code's Resize([224, 224]))."""
    _require(_imagenet_missing(root))
    return _folder_splits(root, size, "ImageNet-1K")


def _folder_splits(root: Path, size: int, what: str) -> Splits:
    try:
        train, test = FolderImages(root / "train", size), FolderImages(root / "val", size)
    except FileNotFoundError as e:  # torchvision's: a class folder without a single image
        raise DataNotFoundError(f"{what} at {root}: {e}") from None
    if train.folder.classes != test.folder.classes:
        raise DataNotFoundError(f"{root}: train/ and val/ have different class folders; "
                                "give both the same class folders")
    stand_in = is_stand_in(root)
    what = f"{what} STAND-IN (made-up images, core.prefetch synthetic)" if stand_in else what
    return Splits(train, test, len(train.folder.classes), f"{what} from {root}", stand_in)


DATASETS.add("digits", DataSet(digits, sizes=(1437, 360)))
DATASETS.add("cifar10", DataSet(cifar10, _cifar_missing, sizes=(50000, 10000)))
DATASETS.add("imagenette", DataSet(imagenette, _imagenette_missing, sizes=(9469, 3925)))
DATASETS.add("imagefolder", DataSet(imagefolder, _imagefolder_missing))
DATASETS.add("imagenet", DataSet(imagenet, _imagenet_missing, sizes=(1281167, 50000)))
