"""The main table: every model and size with the full recipe (ARD+PRM), all five attacks."""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 6 (larger ViTs; Swin at low resolution)"

ABLATION = Ablation(
    question="How accurate and robust is each model with the paper's full recipe?",
    base=("ard=true", "prm=true"),
    axes={"model": {"ViT-S": ["model=vit_s16"], "ViT-B": ["model=vit_b16"],
                    "DeiT-Ti": ["model=deit_ti"], "DeiT-S": ["model=deit_s"],
                    "ConViT-Ti": ["model=convit_ti"], "ConViT-S": ["model=convit_s"],
                    "ConViT-B": ["model=convit_b"], "Swin-T": ["model=swin_t"],
                    "Swin-S": ["model=swin_s"], "Swin-B": ["model=swin_b"]}},
    tiny_axes={"model": {"ViT-micro": ["model=vit_micro"], "ViT-mini": ["model=vit_mini"],
                         "ConViT-micro": ["model=convit_micro"],
                         "Swin-micro": ["model=swin_micro"]}},
    eval="full",
    claims=(
        Claim(id="6f", text="a larger ViT is more robust", metric="aa_acc", axis="model",
              treatment=("ViT-B",), control="ViT-S", direction="+", reference=REF,
              scales=("paper",)),
        Claim(id="6f", text="a larger ViT is more robust (tiny: mini vs micro)",
              metric="pgd20_acc", axis="model", treatment=("ViT-mini",), control="ViT-micro",
              direction="+", reference=REF, scales=("tiny",)),
        Claim(id="6f", text="a larger ViT is more accurate (tiny: mini vs micro)",
              metric="clean_acc", axis="model", treatment=("ViT-mini",), control="ViT-micro",
              direction="+", reference=REF, scales=("tiny",)),
        Claim(id="6f", text="a larger ViT is more accurate", metric="clean_acc", axis="model",
              treatment=("ViT-B",), control="ViT-S", direction="+", reference=REF,
              scales=("paper",)),
        Claim(id="6g", text="Swin pretrained at high resolution is less robust on CIFAR-10 "
              "than ViT", metric="aa_acc", axis="model", treatment=("Swin-B",),
              control="ViT-B", direction="-", reference=REF, scales=("paper",)),
    ),
    figure="table",
)
