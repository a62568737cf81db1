"""Claim 3: do more epochs help?"""
from ablations.grid.spec import Ablation, Claim

REF = "Mo et al. 2022, claim 3 (training epochs; ../shared/paper-recipe.md)"

# The tiny length L = 24 is where PGD-20 stops rising on the learning curves: tiny AT at the
# constant lr 0.1 (360 test points, 4-epoch window means) gained +5.4 points from epochs 17-20
# to 21-24, then +1.0 to 25-28, the first window under 1.5 points. Both lengths keep the
# paper's proportions of L = 40 (its 80-epoch run keeps the 40-epoch run's absolute values):
# warm-up w = 10/40 L, lr decays 5/40 L and 2/40 L before the end.
TINY_L = 24

ABLATION = Ablation(
    question="Does training for 80 epochs give more robustness than 40?",
    # The lr decays stay at epochs-5 and epochs-2 (40: 35/38, 80: 75/78, as the official code).
    axes={"epochs": {"40": ["epochs=40"], "80": ["epochs=80"]}},
    tiny_axes={"epochs": {str(n): [f"epochs={n}"] for n in (TINY_L, 2 * TINY_L)}},
    tiny_base=(f"warmup_epochs={TINY_L * 10 / 40}",
               f"optim.decay_before_end=[{TINY_L * 5 / 40},{TINY_L * 2 / 40}]",
               # 120 test points on the curve (not 50), so the figure shows the plateau;
               # the final numbers are on all 360
               "eval.curve_n=120"),
    claims=(
        Claim(id="3", text="80 epochs give no more robustness than 40", metric="pgd20_acc",
              axis="epochs", treatment=("80",), control="40", direction="<=", reference=REF,
              scales=("paper",)),
        Claim(id="3", text=f"twice a converged length gives no more robustness (tiny: "
              f"{2 * TINY_L} vs {TINY_L} epochs)", metric="pgd20_acc", axis="epochs",
              treatment=(str(2 * TINY_L),), control=str(TINY_L), direction="<=",
              reference=REF, scales=("tiny",)),
    ),
    figure="curves",
)
