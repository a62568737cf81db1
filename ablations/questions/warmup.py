"""Claim 7: how long should the ARD/PRM warm-up be?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 7 (warm-up sweep; the official default is w = 10 of 40 epochs)"

ABLATION = Ablation(
    question="How many warm-up epochs w should ARD and PRM use?",
    base=("ard=true", "prm=true"),
    axes={"w": {str(w): [f"warmup_epochs={w}"] for w in (0, 5, 10, 15, 20)}},
    # the same fractions of training (w/40) on the tiny scale's 6 epochs
    tiny_axes={"w": {str(w): [f"warmup_epochs={w * 6 / 40}"] for w in (0, 5, 10, 15, 20)}},
    claims=(
        Claim(id="7", text="the default warm-up (w = 1/4 of training) beats no warm-up",
              metric="pgd20_acc", axis="w", treatment=("10",), control="0", direction="+",
              reference=REF),
    ),
)
