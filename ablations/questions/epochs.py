"""Claim 3: do more epochs help?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 3 (training epochs; ../shared/paper-recipe.md)"

# The tiny scale runs the paper's own lengths, 40 and 80 epochs, with the paper's schedule
# (warm-up w = 10, lr decays 5 and 2 epochs before the end), because its control must have
# converged for the claim to be testable: tiny AT at the constant lr 0.1 (360 test points,
# 4-epoch window means) gained +5.4 points of PGD-20 from epochs 17-20 to 21-24, then +1.0 to
# 25-28, the first window under 1.5 points; a 24-epoch control (lr decayed at 21) was still
# rising. The claim's precondition checks the control's own curve (converged_control).
TINY_BASE = ("warmup_epochs=10", "optim.decay_before_end=[5.0,2.0]",
             # 120 test points on the curve (not 50), so the plateau is measured; the final
             # numbers are on all 360
             "eval.curve_n=120")

ABLATION = Ablation(
    question="Does training for 80 epochs give more robustness than 40 (both scales)?",
    # The lr decays stay at epochs-5 and epochs-2 (40: 35/38, 80: 75/78, as the official code).
    axes={"epochs": {"40": ["epochs=40"], "80": ["epochs=80"]}},
    tiny_base=TINY_BASE,
    claims=(
        Claim(id="3", text="80 epochs give no more robustness than 40", metric="pgd20_acc",
              axis="epochs", treatment=("80",), control="40", direction="<=", reference=REF,
              preconditions=("converged_control",)),
    ),
    figure="curves",
)
