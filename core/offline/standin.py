"""A stand-in paper world for machines without the data or the weights: small made-up data
in the real on-disk formats, and random-initialised weights in the Hugging Face hub cache
layout timm reads offline (`python -m core.prefetch synthetic --root DIR`).

Everything written here is marked (core.data.sets.STAND_IN in each folder), so a loader
says "STAND-IN" in the result's data description and weights record: a stand-in number can
never be taken for a real one. The real loaders read it unchanged; nothing here is used
unless asked for with the `export` line `write_world` returns.
"""
from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.data.points import IDS_FILE
from core.data.sets import CIFAR_FOLDER, STAND_IN, cifar_files
from core.infra.atomic import atomic_write, write_text

IMAGENETTE_CLASSES = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                      "n03394916", "n03417042", "n03425413", "n03445777", "n03888605")
SNAPSHOT = "0" * 40  # the revision folder of every stand-in repository
# Training images per class of the stand-in Imagenette and ImageNet: two steps of the largest
# batch a paper grid takes (the ImageNet grid's 512) over their 10 classes, since a
# pre-flight times its second step (with 40 images, batch 64 had one step: the cold one).
TRAIN_PER_CLASS = 103


def _images(rng: np.random.Generator, n: int, labels: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 [n, h, w, 3]: a class-dependent colour plus noise (a model can learn it)."""
    base = (labels[:, None, None, None] * 25 + np.array([0, 80, 160])) % 256
    noise = rng.integers(-40, 41, size=(n, h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_cifar10(root: Path, per_file: int = 64, seed: int = 0) -> Path:
    """cifar-10-batches-py: data_batch_1..5, test_batch (pickled dicts), batches.meta."""

    rng, folder = np.random.default_rng(seed), root / CIFAR_FOLDER
    train, test = cifar_files()
    for name, _ in train + test:
        labels = np.arange(per_file) % 10
        data = _images(rng, per_file, labels, 32, 32).transpose(0, 3, 1, 2).reshape(per_file, -1)
        batch = {"batch_label": name, "labels": labels.tolist(), "data": data,
                 "filenames": [f"standin_{i}.png" for i in range(per_file)]}
        atomic_write(folder / name, lambda f, b=batch: pickle.dump(b, f))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"], "num_vis": 3072}
    atomic_write(folder / "batches.meta", lambda f: pickle.dump(meta, f))
    write_text(folder / STAND_IN, "made-up images in CIFAR-10's layout (core.prefetch synthetic)\n")
    return root


def write_image_folder(root: Path, classes: Iterable[str], per_class: dict[str, int],
                       size: tuple[int, int] = (160, 120), seed: int = 0,
                       names: dict[str, list[str]] | None = None) -> Path:
    """root/<split>/<class>/*.JPEG, JPEGs of `size` (not square: loaders must resize).
    names: split -> 'class/file.JPEG' paths to write instead of numbered ones."""
    from PIL import Image

    rng, classes = np.random.default_rng(seed), list(classes)
    for split, n in per_class.items():
        paths = (names or {}).get(split) or [f"{c}/{c}_{i:04d}.JPEG" for c in classes
                                             for i in range(n)]
        for rel in paths:
            label = classes.index(rel.split("/")[0])
            pixels = _images(rng, 1, np.array([label]), size[1], size[0])[0]
            (root / split / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(root / split / rel, lambda f, p=pixels: Image.fromarray(p).save(
                f, format="JPEG", quality=90))
    write_text(root / STAND_IN, "made-up images in an ImageFolder layout (core.prefetch "
                                "synthetic)\n")
    return root


def write_weights(hub: Path, tags: Iterable[str], seed: int = 0) -> list[str]:
    """Random-initialised weights of each timm tag as `model.safetensors` in the Hugging Face
    hub cache layout (models--timm--<tag>/snapshots/<rev>/, refs/main), head sized as the
    real checkpoint's."""
    import timm
    import torch
    from safetensors.torch import save
    from timm.models import get_pretrained_cfg

    written = []
    for tag in tags:
        pcfg = get_pretrained_cfg(tag)
        repo = hub / ("models--" + pcfg.hf_hub_id.replace("/", "--"))
        snap = repo / "snapshots" / SNAPSHOT
        if not (snap / "model.safetensors").is_file():
            torch.manual_seed(seed)
            net = timm.create_model(tag.partition(".")[0], pretrained=False,
                                    num_classes=pcfg.num_classes)
            tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
            atomic_write(snap / "model.safetensors", lambda f, t=tensors: f.write(save(t)))
        write_text(repo / "refs" / "main", SNAPSHOT)
        write_text(snap / STAND_IN, f"random-initialised weights for {tag}\n")
        written.append(tag)
    return written


def write_imagenet(root: Path, classes: int = 10, train_per_class: int = 4,
                   val_per_class: int = 5) -> Path:
    """ImageNet's layout (train/ and val/ wnid folders, ILSVRC2012_val_* names) with
    `classes` made-up classes, and an ids list in RobustBench's format naming its val images
    (the real list names the real files: `core.prefetch robustbench-ids`)."""

    wnids = [f"n{90000000 + i:08d}" for i in range(classes)]
    val = [f"{w}/ILSVRC2012_val_{i * val_per_class + k + 1:08d}.JPEG"
           for i, w in enumerate(wnids) for k in range(val_per_class)]
    write_image_folder(root, wnids, {"train": train_per_class, "val": val_per_class},
                       size=(200, 150), names={"val": val})
    order = np.random.default_rng(0).permutation(len(val))
    write_text(root / IDS_FILE, "\n".join(val[i] for i in order))
    return root


def write_world(root: Path, tags: Iterable[str],
                imagenette_per_class: int = TRAIN_PER_CLASS) -> str:
    """The whole stand-in world under `root`; returns the shell line that points runs at it."""
    root = root.expanduser().resolve()
    data, hub = root / "data", root / "hf"
    write_cifar10(data / "cifar10")
    write_image_folder(data / "imagenette", IMAGENETTE_CLASSES,
                       {"train": imagenette_per_class, "val": max(1, imagenette_per_class // 2)})
    write_imagenet(data / "imagenet", train_per_class=TRAIN_PER_CLASS)
    write_weights(hub, tags)
    return f"export VITADV_DATA={data} HF_HUB_CACHE={hub} HF_HUB_OFFLINE=1"
