"""The learning-curve file of a run (one row per epoch), rewritten atomically each epoch."""
from __future__ import annotations

import csv
import io

from core.infra.atomic import write_text
from core.infra.rundir import RunDir


def write_curve(run_dir: RunDir, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir.curve, buf.getvalue())
