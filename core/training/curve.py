"""The learning-curve file of a run (one row per epoch), rewritten atomically each epoch."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from core.atomic import write_text

CURVE = "curve.csv"


def write_curve(run_dir: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / CURVE, buf.getvalue())
