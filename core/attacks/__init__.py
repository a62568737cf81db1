"""Attacks: one L-inf PGD with pluggable losses and hooks, and the AutoAttack adapter."""
from core.attacks.losses import ATTACK_LOSSES, cross_entropy, cw_margin, kl_to_clean
from core.attacks.pgd import PGD, START, Plugins, eval_mode, pgd_eval, pgd_train, project

__all__ = ["ATTACK_LOSSES", "PGD", "START", "Plugins", "cross_entropy", "cw_margin",
           "eval_mode", "kl_to_clean", "pgd_eval", "pgd_train", "project"]
