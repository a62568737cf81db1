"""Claim 6 (methods): do ARD and PRM also improve TRADES and MART?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 6 (ARD/PRM with TRADES and MART; ../shared/paper-recipe.md)"

ABLATION = Ablation(
    question="Do ARD and PRM help AT, TRADES and MART alike?",
    axes={
        "method": {"AT": ["method=at"], "TRADES": ["method=trades"], "MART": ["method=mart"]},
        "plugins": {"none": ["ard=false", "prm=false"], "ARD+PRM": ["ard=true", "prm=true"]},
    },
    claims=(
        Claim(id="6e", text="ARD+PRM improve TRADES and MART", metric="pgd20_acc",
              axis="plugins", treatment=("ARD+PRM",), control="none", direction="+",
              reference=REF, groups=("TRADES", "MART")),
        Claim(id="6c", text="ARD+PRM improve AT", metric="pgd20_acc", axis="plugins",
              treatment=("ARD+PRM",), control="none", direction="+", reference=REF,
              groups=("AT",)),
    ),
)
