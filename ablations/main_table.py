"""The main table: every model and size with the full recipe (ARD+PRM), all five attacks."""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 6 (larger ViTs; Swin at low resolution)"

ABLATIONS.add("main_table", Ablation(
    name="main_table",
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
        Claim("6f", "a larger ViT is more robust", "aa_acc", "model", ("ViT-B",), "ViT-S", "+",
              REF, scales=("paper",)),
        Claim("6f", "a larger ViT is more robust (tiny: mini vs micro)", "pgd20_acc", "model",
              ("ViT-mini",), "ViT-micro", "+", REF, scales=("tiny",)),
        Claim("6f", "a larger ViT is more accurate (tiny: mini vs micro)", "clean_acc", "model",
              ("ViT-mini",), "ViT-micro", "+", REF, scales=("tiny",)),
        Claim("6f", "a larger ViT is more accurate", "clean_acc", "model", ("ViT-B",), "ViT-S",
              "+", REF, scales=("paper",)),
        Claim("6g", "Swin pretrained at high resolution is less robust on CIFAR-10 than ViT",
              "aa_acc", "model", ("Swin-B",), "ViT-B", "-", REF, scales=("paper",)),
    ),
    figure="table",
))
