"""The folder a report goes into: whose it is (checked before any work), built aside, then
moved in file by file.

A report folder records, in .report.json, the runs folder it was built from and the SHA-256
of every file it wrote. A report goes only into a missing or empty folder, or one built from
the same runs whose files nobody has changed since; anything else (the shipped results/, a
report of other runs, a hand-edited CSV) is refused unless --replace says so; a report rebuilt
from its own runs/ copy is the same report. Files of questions not rebuilt stay as they are.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.infra.atomic import sha256_file, write_json
from core.infra.errors import UserError

MARK = ".report.json"
ASIDE = ".building-"


def default_out(runs_dir: Path) -> Path:
    """A report lives with the runs it reports, so two runs folders never share one."""
    return runs_dir / "_report"


def check(out: Path, runs_dir: Path, replace: bool) -> None:
    """Every reason the report cannot go into `out`, as one line, before any work."""
    if not runs_dir.is_dir():
        what = "is a file" if runs_dir.exists() else "does not exist"
        raise UserError(f"--runs-dir {runs_dir} {what}: give the folder the runs were "
                        "launched into (their --runs-dir)")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the report")
    if replace or not out.is_dir():
        return
    mark = _mark(out)
    if mark is None:
        if any(p.name != MARK and not p.name.startswith(ASIDE) for p in out.iterdir()):
            raise UserError(f"--out {out} holds files this command did not build from "
                            f"{runs_dir}: give another --out (the default is "
                            f"{default_out(runs_dir)}), or --replace to write over them")
        return
    if not _own_copy(out, runs_dir) and (out / mark["runs_dir"]).resolve() != runs_dir.resolve():
        raise UserError(f"--out {out} holds the report of {out / mark['runs_dir']}, not of "
                        f"{runs_dir}: give another --out, or --replace to write over it")
    edited = [rel for rel, digest in mark["files"].items()
              if (out / rel).is_file() and sha256_file(out / rel) != digest]
    if edited:
        raise UserError(f"{out / edited[0]} was changed since the report wrote it ({len(edited)} "
                        "file(s)): move it away, or --replace to write over it")


@contextlib.contextmanager
def building(out: Path, runs_dir: Path) -> Iterator[Path]:
    """A folder to build the report in; on success its files replace theirs in `out`, on
    failure `out` stays as it was."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=ASIDE, dir=out))
    except OSError as e:
        raise UserError(f"cannot write the report into {out}: {e.strerror}; give a writable "
                        "--out") from None
    try:
        yield aside
        _move_in(aside, out, runs_dir)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        if created and not any(out.iterdir()):  # a report that failed leaves no trace
            out.rmdir()


def _move_in(aside: Path, out: Path, runs_dir: Path) -> None:
    mark = _mark(out) or {}
    files = mark.get("files", {})
    for f in sorted(p for p in aside.rglob("*") if p.is_file()):
        rel = f.relative_to(aside).as_posix()
        files[rel] = sha256_file(f)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, out / rel)
    where = os.path.relpath(runs_dir.resolve(), out.resolve())
    if _own_copy(out, runs_dir) and mark:  # still the report of the runs it came from
        where = mark["runs_dir"]
    write_json(out / MARK, {"runs_dir": where, "files": dict(sorted(files.items()))})


def _own_copy(out: Path, runs_dir: Path) -> bool:
    """Rebuilt from the runs it carries (ablations.tables.carried): it can only come out the
    same, so it is the same report's folder."""
    return runs_dir.resolve() == (out / "runs").resolve()


def _mark(out: Path) -> dict | None:
    try:
        return json.loads((out / MARK).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(f"{out / MARK} cannot be read ({e}): remove it, or --replace") from None
