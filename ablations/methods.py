"""Claim 6 (methods): do ARD and PRM also improve TRADES and MART?"""
from ablations.spec import ABLATIONS, Ablation, Claim

REF = "Mo et al. 2022, claim 6 (ARD/PRM with TRADES and MART; ../shared/paper-recipe.md)"

ABLATIONS.add("methods", Ablation(
    name="methods",
    question="Do ARD and PRM help AT, TRADES and MART alike?",
    axes={
        "method": {"AT": ["method=at"], "TRADES": ["method=trades"], "MART": ["method=mart"]},
        "plugins": {"none": ["ard=false", "prm=false"], "ARD+PRM": ["ard=true", "prm=true"]},
    },
    claims=(
        Claim("6e", "ARD+PRM improve TRADES and MART", "pgd20_acc", "plugins", ("ARD+PRM",),
              "none", "+", REF, groups=("TRADES", "MART")),
        Claim("6c", "ARD+PRM improve AT", "pgd20_acc", "plugins", ("ARD+PRM",), "none", "+",
              REF, groups=("AT",)),
    ),
))
