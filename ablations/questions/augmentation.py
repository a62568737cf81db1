"""Claim 4: which data augmentation?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 4 (data augmentation; ../shared/paper-recipe.md)"

AUGS = {"none": ["aug=none"], "Mixup": ["aug=mixup"], "CutMix": ["aug=cutmix"],
        "Mixup+CutMix": ["aug=mixup_cutmix"], "RandAugment": ["aug=randaugment"]}

ABLATION = Ablation(
    question="Which augmentation helps adversarial training of ViTs?",
    axes={
        "setting": {"ViT-B/CIFAR-10": ["model=vit_b16", "data=cifar10"],
                    "Swin-B/Imagenette": ["model=swin_b", "data=imagenette"]},
        "augmentation": AUGS,
    },
    tiny_axes={"setting": {"ViT/digits": ["model=vit_micro"]}},
    claims=(
        Claim(id="4a", text="Mixup+CutMix helps (ViT on CIFAR-10, Swin on Imagenette)",
              metric="pgd20_acc", axis="augmentation", treatment=("Mixup+CutMix",),
              control="none", direction="+", reference=REF),
        Claim(id="4b", text="RandAugment hurts", metric="pgd20_acc", axis="augmentation",
              treatment=("RandAugment",), control="none", direction="-", reference=REF),
    ),
)
