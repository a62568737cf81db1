"""The ImageNet-1K main table: ViT-B and Swin-B with the official ImageNet recipe, evaluated
on RobustBench's 5,000 images, so the numbers meet the leaderboard's."""
from ablations.grid.spec import Ablation, Claim

REF = ("RobustBench ImageNet Linf 4/255 (AutoAttack, 5,000 images): Mo2022When_ViT-B natural "
       "68.38 / AutoAttack 34.40; Mo2022When_Swin-B 74.66 / 38.30")

# train_imagenet.py / parser_imagenet.py: eps 4/255, PGD-5 with step 1/255, 10 epochs (lr /10
# at 5 and 8), ARD/PRM warm-up 2 epochs, lr 0.1, batch 512 over 8 GPUs, weights from ImageNet-21K
RECIPE = ("attack.eps=4/255", "attack.step_size=1/255", "attack.steps=5", "eval.step_size=1/255",
          "ard=true", "prm=true")
IMAGENET = ("data=imagenet", "epochs=10", "warmup_epochs=2", "batch_size=512",
            "model.source=${model.sources.in21k}", "eval.points=robustbench",
            "resources.gpus_per_node=8")

ABLATION = Ablation(
    question="How accurate and robust are ViT-B and Swin-B trained with the paper's recipe on "
             "ImageNet-1K, on RobustBench's points?",
    base=RECIPE,
    axes={"model": {"ViT-B": ["model=vit_b16", *IMAGENET],
                    "Swin-B": ["model=swin_b", *IMAGENET]}},
    # tiny: the same recipe (eps, PGD-5, its steps, warm-up 2/10 of training) on the digits;
    # its claim reads PGD-20, and AutoAttack on all 360 points (about 9 CPU-minutes a cell)
    # is left to the main table
    tiny_base=("warmup_epochs=1.2", "eval.attacks=[clean,pgd20,cw20,pgd100,pgd20x5]"),
    tiny_axes={"model": {"ViT-micro": ["model=vit_micro"], "Swin-micro": ["model=swin_micro"]}},
    eval="full",
    claims=(
        Claim(id="I1", text="Swin-B is more accurate than ViT-B (RobustBench: +6.28)",
              metric="clean_acc", axis="model", treatment=("Swin-B",), control="ViT-B",
              direction="+", reference=REF, size=6.28, scales=("paper",)),
        Claim(id="I2", text="Swin-B is more robust than ViT-B (RobustBench AutoAttack: +3.90)",
              metric="aa_acc", axis="model", treatment=("Swin-B",), control="ViT-B",
              direction="+", reference=REF, size=3.90, scales=("paper",)),
        Claim(id="I2", text="with the ImageNet recipe in miniature, Swin is more robust than "
              "ViT (tiny: micro models)", metric="pgd20_acc", axis="model",
              treatment=("Swin-micro",), control="ViT-micro", direction="+", reference=REF,
              scales=("tiny",)),
    ),
    figure="table",
)
