"""Claim 6: do attention random dropping (ARD) and perturbation random masking (PRM) help?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 6 (ARD/PRM; Swin on CIFAR-10: ARD +1.16, PRM +1.13, both +1.29)"

PLUGINS = {"none": ["ard=false", "prm=false"], "ARD": ["ard=true", "prm=false"],
           "PRM": ["ard=false", "prm=true"], "ARD+PRM": ["ard=true", "prm=true"]}

ABLATIONS.add("ard_prm", Ablation(
    name="ard_prm",
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
        Claim("6a", "ARD raises robust accuracy", "pgd20_acc", "plugins", ("ARD",), "none",
              "+", REF, size=1.16),
        Claim("6b", "PRM raises robust accuracy", "pgd20_acc", "plugins", ("PRM",), "none",
              "+", REF, size=1.13),
        Claim("6c", "ARD and PRM together raise robust accuracy", "pgd20_acc", "plugins",
              ("ARD+PRM",), "none", "+", REF, size=1.29),
        Claim("6d", "ARD and PRM together raise natural accuracy", "clean_acc", "plugins",
              ("ARD+PRM",), "none", "+", REF),
    ),
))
