"""Infrastructure every stage uses and that imports nothing else of the project: atomic
files and hashing, errors, the registry, seeding, CPU kernels, distributed worlds and
devices, provenance, the command-line helpers, and the run folder's file layout (rundir: in
infra because the models, training and evaluation stages read and write the run folder)."""
