"""One run and its neighbours: the run itself (run), the checks made before any work
(checks: every registry's names, bounds, inputs), its projected cost (cost) and evaluating a
finished checkpoint again (evaluations). Checks live here, not in config, because they read
every stage's registry."""
