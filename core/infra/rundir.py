"""The run folder, runs/<run-id>/: the one place that knows its file names.

    result.json     written last: its presence means finished (done or diverged)
    weights.pth     the final weights (what `model.source=run:<id>` loads)
    checkpoint.pth  everything a resumed run needs, saved atomically
    curve.csv       one row per epoch
    config.yaml     the resolved config, for people
    train.log       the run's log
    failure.json    why the last attempt failed (removed when a later one succeeds)
    preflight.json  a pre-flight's record (only in the pre-flight's scratch folder)
    eval/           per-example flags of each finished evaluation attack, and their states
    tb/             TensorBoard event files (when tracking is on)
    .lock           held while the run trains or evaluates
"""
from __future__ import annotations

import json
from pathlib import Path

from core.infra.atomic import write_json
from core.infra.errors import UserError


class _File:
    """A file of the run folder: `run_dir.result` is the Path of result.json in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run_dir: RunDir | None, owner: type) -> Path:
        return run_dir.path / self.name if run_dir is not None else Path(self.name)


class RunDir:
    """A run's folder and its files (a path-like: str(run_dir) is the folder)."""

    result = _File("result.json")
    weights = _File("weights.pth")
    checkpoint = _File("checkpoint.pth")
    curve = _File("curve.csv")
    config = _File("config.yaml")
    log = _File("train.log")
    failure = _File("failure.json")
    lock = _File(".lock")
    tensorboard = _File("tb")
    preflight = _File("preflight.json")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, runs_dir: str | Path, run_id: str) -> RunDir:
        return cls(Path(runs_dir) / run_id)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def eval_flags(self, attack: str) -> Path:
        """Per-example 'still correct' flags of a finished evaluation attack."""
        return self.path / "eval" / f"{attack}.json"

    def eval_state(self, attack: str) -> Path:
        """The resumable state of an evaluation attack in progress (AutoAttack's)."""
        return self.path / "eval" / f"{attack}_state.json"

    def exists(self) -> bool:
        return self.path.exists()

    def mkdir(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def read_result(self) -> dict | None:
        if not self.result.is_file():
            return None
        try:
            return json.loads(self.result.read_text())
        except ValueError as e:  # written atomically, so only damage from outside does this
            raise UserError(f"{self.result} cannot be read ({e}): remove it (the run then "
                            "finishes again from its checkpoint)") from None

    def write_result(self, result: dict) -> None:
        write_json(self.result, result)

    @staticmethod
    def read_json(path: Path) -> dict | None:
        return json.loads(path.read_text()) if path.is_file() else None

    def read_failure(self) -> dict | None:
        return json.loads(self.failure.read_text()) if self.failure.is_file() else None

    def record_failure(self, error: str, traceback: str) -> None:
        self.mkdir()
        write_json(self.failure, {"error": error, "traceback": traceback})

    def clear_failure(self) -> None:
        self.failure.unlink(missing_ok=True)
