"""Streaming ImageNet from JPEG files: how fast one CPU worker decodes and resizes, and how
many workers keep a GPU fed.

    python -m core.bench --data [--images N]

Writes N JPEGs the size of an average ImageNet image (500 x 375, quality 90; smooth made-up
content, so the decoder does real work) in ImageNet's folder layout and reads them through
the training path (`FolderImages`: PIL decode, bilinear resize to 224, uint8 tensor; crop,
flip and Mixup then run on the device). Prints images/s for one worker and the workers that
the demand below needs.

The demand is an estimate, not a measurement: PGD-5 AT of ViT-B/16 at 224 costs about
6 x 3 x 17.6 GFLOP per image (5 attack steps and the update, each a forward and a backward),
and an H100 at 28% of its 989.4 TFLOP/s dense bf16 (core.runs.gpus) gives about 870
images/s. Where the CPU cannot keep up, decode on the GPU
(torchvision.io.decode_jpeg(device='cuda'), nvJPEG) or with NVIDIA DALI.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from core.data.images import FolderImages
from core.runs.gpus import GPUS

JPEG_SIZE = (500, 375)           # ImageNet's average image (width, height)
VIT_B_GFLOP = 17.6               # forward pass of ViT-B/16 at 224
PASSES = 6 * 3                   # PGD-5 + the update, each forward + backward (about 3x)


def demand_images_per_s() -> float:
    return GPUS.get("h100").flops_per_s("bf16") / 1e9 / (VIT_B_GFLOP * PASSES)


def write_jpegs(folder: Path, n: int) -> None:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    w, h = JPEG_SIZE
    for i in range(n):
        small = torch.randint(0, 256, (3, h // 25, w // 25), dtype=torch.uint8, generator=g)
        img = torch.nn.functional.interpolate(small[None].float(), size=(h, w), mode="bicubic")
        arr = img[0].clamp(0, 255).byte().permute(1, 2, 0).numpy()
        out = folder / "train" / f"n{i % 10:08d}"
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(out / f"{i}.JPEG", quality=90)


def bench_data(images: int = 300) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), images)
        folder = FolderImages(Path(tmp) / "train", 224)
        folder.get(0)                       # warm PIL's codecs
        t0 = time.perf_counter()
        for i in range(len(folder)):
            folder.get(i)
        per_worker = len(folder) / (time.perf_counter() - t0)
    demand = demand_images_per_s()
    return {"jpeg_decode_resize_images_per_s_per_worker": per_worker,
            "h100_vit_b16_pgd5_demand_images_per_s_estimate": demand,
            "workers_to_feed_it": float(math.ceil(demand / per_worker))}
