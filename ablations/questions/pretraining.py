"""Claim 1: does pretraining matter, and does more pretraining data help?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 1 (pre-training study; ../shared/paper-recipe.md)"

ABLATION = Ablation(
    question="Does pretraining matter for adversarial training of ViTs, and is ImageNet-21K "
             "pretraining better than ImageNet-1K?",
    axes={
        "model": {"ViT-B": ["model=vit_b16"], "DeiT-S": ["model=deit_s"],
                  "Swin-B": ["model=swin_b"]},
        "pretraining": {"none": ["model.source=none"],
                        "ImageNet-1K": ["model.source=${model.sources.in1k}"],
                        "ImageNet-21K": ["model.source=${model.sources.in21k}"]},
    },
    exclude=({"model": "DeiT-S", "pretraining": "ImageNet-21K"},),  # DeiT has 1K weights only
    # Tiny: the sources are clean pretraining runs of the tiny ViT on a smaller (400 images)
    # and a larger (all 1437) training set: the 1K-vs-21K question in miniature.
    tiny_axes={
        "model": {"ViT": ["model=vit_micro"]},
        "pretraining": {"none": ["model.source=none"],
                        "small": ["model.source=pretrain", "pretrain.train_subset=400"],
                        "large": ["model.source=pretrain"]},
    },
    claims=(
        Claim(id="1a", text="pretrained models are much more robust than models trained from "
              "scratch (about +20 points)", metric="pgd20_acc", axis="pretraining",
              treatment=("ImageNet-1K", "ImageNet-21K"), control="none", direction="+",
              reference=REF, size=20.0, scales=("paper",)),
        Claim(id="1a", text="pretrained models are much more robust than models trained from "
              "scratch", metric="pgd20_acc", axis="pretraining", treatment=("small", "large"),
              control="none", direction="+", reference=REF, size=20.0, scales=("tiny",)),
        Claim(id="1b", text="ImageNet-21K pretraining is not better than ImageNet-1K",
              metric="pgd20_acc", axis="pretraining", treatment=("ImageNet-21K",),
              control="ImageNet-1K", direction="<=", reference=REF, scales=("paper",)),
        Claim(id="1b", text="more pretraining data is not better (tiny: large vs small source "
              "set)", metric="pgd20_acc", axis="pretraining", treatment=("large",),
              control="small", direction="<=", reference=REF, scales=("tiny",)),
    ),
    figure="curves",
)
