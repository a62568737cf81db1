"""Claim 6: do attention random dropping (ARD) and perturbation random masking (PRM) help?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 6 (ARD/PRM; Swin on CIFAR-10: ARD +1.16, PRM +1.13, both +1.29)"

PLUGINS = {"none": ["ard=false", "prm=false"], "ARD": ["ard=true", "prm=false"],
           "PRM": ["ard=false", "prm=true"], "ARD+PRM": ["ard=true", "prm=true"]}

ABLATION = Ablation(
    question="Do ARD and PRM raise natural and robust accuracy, alone and together?",
    axes={
        "model": {"ViT-B": ["model=vit_b16"], "DeiT-S": ["model=deit_s"],
                  "DeiT-Ti": ["model=deit_ti"], "ConViT-S": ["model=convit_s"],
                  "Swin-B": ["model=swin_b"]},
        "plugins": PLUGINS,
    },
    tiny_axes={"model": {"ViT": ["model=vit_micro"], "ConViT": ["model=convit_micro"],
                         "Swin": ["model=swin_micro"]}},
    claims=(
        Claim(id="6a", text="ARD raises robust accuracy", metric="pgd20_acc", axis="plugins",
              treatment=("ARD",), control="none", direction="+", reference=REF, size=1.16),
        Claim(id="6b", text="PRM raises robust accuracy", metric="pgd20_acc", axis="plugins",
              treatment=("PRM",), control="none", direction="+", reference=REF, size=1.13),
        Claim(id="6c", text="ARD and PRM together raise robust accuracy", metric="pgd20_acc",
              axis="plugins", treatment=("ARD+PRM",), control="none", direction="+",
              reference=REF, size=1.29),
        Claim(id="6d", text="ARD and PRM together raise natural accuracy", metric="clean_acc",
              axis="plugins", treatment=("ARD+PRM",), control="none", direction="+",
              reference=REF),
    ),
)
