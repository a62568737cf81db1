"""Claim 5: which optimizer and schedule?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 5 (optimizer; ../shared/paper-recipe.md)"

ABLATIONS.add("optimizer", Ablation(
    name="optimizer",
    question="SGD or AdamW, piecewise or cyclic learning rate?",
    axes={
        "optimizer": {"SGD": ["optim=sgd"], "AdamW": ["optim=adamw"]},
        "schedule": {"piecewise": ["optim.schedule=piecewise"],
                     "cyclic": ["optim.schedule=cyclic"]},
    },
    claims=(
        Claim("5a", "SGD beats AdamW", "pgd20_acc", "optimizer", ("SGD",), "AdamW", "+", REF),
        Claim("5b", "AdamW prefers a cyclic schedule", "pgd20_acc", "schedule", ("cyclic",),
              "piecewise", "+", REF, groups=("AdamW",)),
        Claim("5c", "SGD prefers a piecewise schedule", "pgd20_acc", "schedule",
              ("piecewise",), "cyclic", "+", REF, groups=("SGD",)),
    ),
))
