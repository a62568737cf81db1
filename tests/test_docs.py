"""Every command the README and docs/ show still parses, so none goes stale: the ablations
entries, core.prefetch, core.bench and slurm/chaos.py through their own parsers (what
--help describes), core.train and core.evaluate through --cfg (the overrides composed into a
config), and every grid an `ablations.run` names expanded with its overrides, as its
--dry-run would start. Placeholders (RUN_ID, DIR, ...) are given real values first."""
from __future__ import annotations

import functools
import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = {"RUN_ID": "1fef6fd19e4b", "NAME": "Doe2025_ViT-B",
                "GRID": "warmup", "TAG": "vit_base_patch16_224.augreg_in1k", "DIR": "/tmp/d",
                "FILE": "/tmp/f.pth", "PATH": "/tmp/f.pth", "<runs of the local tiny suite>":
                "runs"}
NOT_OURS = ("-m venv", "-m pytest", "-m pip")
COMMAND = re.compile(r"(?:\.venv/bin/)?python3? (-m [\w.]+|slurm/\w+\.py)(.*)")


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for each `python -m ...` in a code block or an inline code span; a
    usage line's [optional parts] are dropped."""
    found = []
    for page in PAGES:
        text = page.read_text().replace("\\\n", " ")
        blocks = [line[4:] for line in text.splitlines() if line.startswith("    ")]
        spans = [" ".join(s.split()) for s in re.findall(r"`([^`]*)`", text) if "python" in s]
        for snippet in blocks + spans:
            snippet = re.sub(r"\[[^\]]*\]", "", snippet.split(" # ")[0])
            for part in re.split(r"&&|;|\|", snippet):
                m = COMMAND.search(part.strip())
                if m and m.group(1) not in NOT_OURS:
                    found.append((page.name, f"{m.group(1)}{m.group(2)}".strip()))
    return list(dict.fromkeys(found))


def argv_of(command: str) -> tuple[str, list[str]]:
    for name, value in PLACEHOLDERS.items():
        command = command.replace(name, value)
    words = shlex.split(command.replace("...", ""))
    if words[0] == "-m":
        return words[1], words[2:]
    return words[0], words[1:]


COMMANDS = shown_commands()


def test_the_pages_show_the_commands_users_start_with():
    shown = {c for _, c in COMMANDS}
    for first in ("-m core.train scale=tiny method=at ard=true prm=true seed=0",
                  "-m core.train scale=tiny model.source=none epochs=1 eval=quick",
                  "-m ablations.report", "-m ablations.run all --scale paper --dry-run --gpu h100"):
        assert first in shown
    assert len(COMMANDS) >= 30  # the extraction finds the docs' commands, not a handful


def test_the_readme_lists_every_question_in_its_own_words():
    from ablations.questions import load_all

    readme = (ROOT / "README.md").read_text()
    for name in load_all().names():
        assert f"| `{name}` | {load_all().get(name).question} |" in readme, name


@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_a_shown_command_still_parses(page, command, capsys, monkeypatch, request):
    extra = []
    if "core.evaluate" in command and "run:RUN_ID" in command:  # a finished run, with weights
        result = request.getfixturevalue("trained_model")[1]
        command = command.replace("RUN_ID", result["run_id"])
        extra = [f"runs_dir={result['config']['runs_dir']}"]
    entry, argv = argv_of(command)
    monkeypatch.chdir(ROOT)
    if entry in ("core.train", "core.evaluate"):
        argv += extra
        code = importlib.import_module(entry).main([*argv, "--cfg"])
        assert code == 0, capsys.readouterr().err
        return
    if entry == "ablations.run":
        _expand(argv)
        return
    module = _load(ROOT / entry) if entry.endswith(".py") else importlib.import_module(entry)
    if not hasattr(module, "parser"):  # a package: its command is its __main__
        module = importlib.import_module(f"{entry}.__main__")
    try:
        module.parser().parse_intermixed_args(argv)
    except SystemExit as e:  # --help: 0; a stale flag or value: 2
        assert e.code == 0, capsys.readouterr().err


def _expand(argv: list[str]) -> None:
    from ablations.questions import load_all
    from ablations.run import parse

    try:
        args = parse(argv)
    except SystemExit as e:
        pytest.fail(f"exit {e.code}: {e}")
    for name in load_all().names() if args.name == "all" else [args.name]:
        assert _cells(name, args.scale, args.seeds, tuple(args.overrides))


@functools.cache  # two commands that differ in a flag only expand the same grids
def _cells(name: str, scale: str, seeds: int | None, overrides: tuple[str, ...]) -> int:
    from ablations.grid.cells import expand
    from ablations.questions import get

    ab = get(name)
    return len(expand(ab, scale, seeds or ab.seeds, list(overrides)))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
