"""Claim 3: do more epochs help?"""
from ablations.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 3 (training epochs; ../shared/paper-recipe.md)"

ABLATION = Ablation(
    question="Does training for 80 epochs give more robustness than 40?",
    # The lr decays stay at epochs-5 and epochs-2 (40: 35/38, 80: 75/78, as the official code).
    axes={"epochs": {"40": ["epochs=40"], "80": ["epochs=80"]}},
    tiny_axes={"epochs": {"6": ["epochs=6"], "12": ["epochs=12"]}},
    claims=(
        Claim(id="3", text="80 epochs give no more robustness than 40", metric="pgd20_acc",
              axis="epochs", treatment=("80",), control="40", direction="<=", reference=REF,
              scales=("paper",)),
        Claim(id="3", text="twice the epochs give no more robustness (tiny: 12 vs 6)",
              metric="pgd20_acc", axis="epochs", treatment=("12",), control="6",
              direction="<=", reference=REF, scales=("tiny",)),
    ),
    figure="curves",
)
