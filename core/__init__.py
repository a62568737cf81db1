"""vitadv's library. The commands are the modules at this level (train, evaluate, prefetch,
bench); everything else lives in a folder named after its stage of the data flow: infra ->
config -> data -> models -> attacks -> evaluation -> training -> runs (offline and bench
beside them). Importing it changes nothing: the CPU kernel pin is set by a run's entry point
(core.runs.run.choose_kernels)."""
