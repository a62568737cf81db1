"""Claim 5: which optimizer and schedule?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 5 (optimizer; ../shared/paper-recipe.md)"

ABLATION = Ablation(
    question="SGD or AdamW, piecewise or cyclic learning rate?",
    axes={
        "optimizer": {"SGD": ["optim=sgd"], "AdamW": ["optim=adamw"]},
        "schedule": {"piecewise": ["optim.schedule=piecewise"],
                     "cyclic": ["optim.schedule=cyclic"]},
    },
    claims=(
        Claim(id="5a", text="SGD beats AdamW", metric="pgd20_acc", axis="optimizer",
              treatment=("SGD",), control="AdamW", direction="+", reference=REF),
        Claim(id="5b", text="AdamW prefers a cyclic schedule", metric="pgd20_acc",
              axis="schedule", treatment=("cyclic",), control="piecewise", direction="+",
              reference=REF, groups=("AdamW",)),
        Claim(id="5c", text="SGD prefers a piecewise schedule", metric="pgd20_acc",
              axis="schedule", treatment=("piecewise",), control="cyclic", direction="+",
              reference=REF, groups=("SGD",)),
    ),
)
