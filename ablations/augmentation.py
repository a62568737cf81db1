"""Claim 4: which data augmentation?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 4 (data augmentation; ../shared/paper-recipe.md)"

AUGS = {"none": ["aug=none"], "Mixup": ["aug=mixup"], "CutMix": ["aug=cutmix"],
        "Mixup+CutMix": ["aug=mixup_cutmix"], "RandAugment": ["aug=randaugment"]}

ABLATIONS.add("augmentation", Ablation(
    name="augmentation",
    question="Which augmentation helps adversarial training of ViTs?",
    axes={
        "setting": {"ViT-B/CIFAR-10": ["model=vit_b16", "data=cifar10"],
                    "Swin-B/Imagenette": ["model=swin_b", "data=imagenette"]},
        "augmentation": AUGS,
    },
    tiny_axes={"setting": {"ViT/digits": ["model=vit_micro"]}},
    claims=(
        Claim("4a", "Mixup+CutMix helps (ViT on CIFAR-10, Swin on Imagenette)", "pgd20_acc",
              "augmentation", ("Mixup+CutMix",), "none", "+", REF),
        Claim("4b", "RandAugment hurts", "pgd20_acc", "augmentation", ("RandAugment",), "none",
              "-", REF),
    ),
))
