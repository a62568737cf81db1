"""The launch stage: jobs from cells (jobs), the launchers (launchers: debug, local, slurm),
where runs stand (states), the pre-flight (preflight) and the dry run (dry_run, checks)."""
