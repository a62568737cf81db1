"""The paper's questions, one module each exporting `ABLATION` (an ablations.spec.Ablation).

A new question is a new module here: it is discovered and named by its file name.
"""
