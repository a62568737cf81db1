"""The grid stage: what an ablation declares (spec), its grid of cells (cells) and the record
of what was launched (manifest)."""
