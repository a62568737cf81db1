"""The tables stage: rows from run folders (collect), flags, verdicts, figures, the pages,
the documents of a report and the RobustBench export (leaderboard)."""
