"""Claim 2: is gradient clipping needed?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 2 (gradient clipping; ../shared/paper-recipe.md)"

ABLATIONS.add("gradient_clipping", Ablation(
    name="gradient_clipping",
    question="Do ViTs need gradient clipping in adversarial training?",
    axes={
        "model": {"ViT-B": ["model=vit_b16"], "DeiT-S": ["model=deit_s"],
                  "Swin-B": ["model=swin_b"]},
        "clipping": {"on": ["optim.grad_clip=true"], "off": ["optim.grad_clip=false"]},
    },
    tiny_axes={"model": {"ViT": ["model=vit_micro"], "ConViT": ["model=convit_micro"],
                         "Swin": ["model=swin_micro"]}},
    claims=(
        Claim("2a", "ViT and DeiT collapse without clipping (to about 10%)", "pgd20_acc",
              "clipping", ("on",), "off", "+", REF, groups=("ViT-B", "DeiT-S", "ViT")),
        Claim("2b", "Swin trains without clipping but is better with it", "pgd20_acc",
              "clipping", ("on",), "off", "+", REF, groups=("Swin-B", "Swin")),
    ),
))
