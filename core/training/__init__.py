"""Training: objectives (clean, AT, TRADES, MART), ARD/PRM, schedules, the loop, checkpoints."""
