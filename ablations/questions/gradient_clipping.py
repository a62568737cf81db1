"""Claim 2: is gradient clipping needed?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 2 (gradient clipping; ../shared/paper-recipe.md)"

ABLATION = Ablation(
    question="Do ViTs need gradient clipping in adversarial training?",
    axes={
        "model": {"ViT-B": ["model=vit_b16"], "DeiT-S": ["model=deit_s"],
                  "Swin-B": ["model=swin_b"]},
        "clipping": {"on": ["optim.grad_clip=true"], "off": ["optim.grad_clip=false"]},
    },
    tiny_axes={"model": {"ViT": ["model=vit_micro"], "ConViT": ["model=convit_micro"],
                         "Swin": ["model=swin_micro"]}},
    claims=(
        Claim(id="2a", text="ViT and DeiT collapse without clipping (to about 10%)",
              metric="pgd20_acc", axis="clipping", treatment=("on",), control="off",
              direction="+", reference=REF, groups=("ViT-B", "DeiT-S", "ViT")),
        Claim(id="2b", text="Swin trains without clipping but is better with it",
              metric="pgd20_acc", axis="clipping", treatment=("on",), control="off",
              direction="+", reference=REF, groups=("Swin-B", "Swin")),
    ),
)
