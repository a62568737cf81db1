"""Claim 1: does pretraining matter, and does more pretraining data help?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 1 (pre-training study; ../shared/paper-recipe.md)"

ABLATIONS.add("pretraining", Ablation(
    name="pretraining",
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
        Claim("1a", "pretrained models are much more robust than models trained from scratch "
              "(about +20 points)", "pgd20_acc", "pretraining", ("ImageNet-1K", "ImageNet-21K"),
              "none", "+", REF, size=20.0, scales=("paper",)),
        Claim("1a", "pretrained models are much more robust than models trained from scratch",
              "pgd20_acc", "pretraining", ("small", "large"), "none", "+", REF, size=20.0,
              scales=("tiny",)),
        Claim("1b", "ImageNet-21K pretraining is not better than ImageNet-1K", "pgd20_acc",
              "pretraining", ("ImageNet-21K",), "ImageNet-1K", "<=", REF, scales=("paper",)),
        Claim("1b", "more pretraining data is not better (tiny: large vs small source set)",
              "pgd20_acc", "pretraining", ("large",), "small", "<=", REF, scales=("tiny",)),
    ),
    figure="curves",
))
