"""The house's layering, read from the source with `ast` (issue 19): every module's imports
run down the data flow, never back up it.

core:      infra -> config -> data -> models -> attacks -> evaluation -> training -> runs
           -> offline -> bench -> the commands (train, evaluate, prefetch, bench's __main__)
ablations: grid -> questions -> launch -> tables -> the commands (run, status, report, export)

A module may import its own stage and the stages before it; ablations may import all of core
and core nothing of ablations. A deferred (in-function) import of the project says why on its
line (`# deferred: ...`); a `_private` name is imported only inside its own module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

STAGES = ["core.infra", "core.config", "core.conf", "core.data", "core.models",
          "core.attacks", "core.evaluation", "core.training", "core.runs", "core.offline",
          "core.bench", "ablations.grid", "ablations.questions", "ablations.launch",
          "ablations.tables"]
COMMANDS = ["core.train", "core.evaluate", "core.prefetch", "core.bench.__main__",
            "ablations.run", "ablations.status", "ablations.report", "ablations.export"]
SAME_RANK = {"core.conf": "core.config"}  # the hydra config files sit beside the schema
DEFERRED = "# deferred:"


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in ("core", "ablations"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def stage_of(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def rank(module: str) -> int:
    """Where `module` stands in the flow: a stage's index, the commands above every stage,
    the two package roots (docstrings only) below."""
    if module in COMMANDS:
        return len(STAGES) + (0 if module.startswith("core.") else 1)
    stage = stage_of(module)
    if stage is None:
        assert module in ("core", "ablations"), f"{module} is in no stage: add it to STAGES"
        return -1
    return STAGES.index(SAME_RANK.get(stage, stage))


def imports(tree: ast.Module, known: dict[str, Path]) -> list[tuple[str, list[str], ast.stmt]]:
    """(the project module imported, the names taken from it, the statement)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module in known and not node.level:
            for a in node.names:
                child = f"{node.module}.{a.name}"
                found.append((child, [], node) if child in known else (node.module, [a.name], node))
    return found


def edges(root: Path = ROOT) -> dict[str, list[tuple[str, list[str], ast.stmt, bool]]]:
    """Each module's project imports, with whether each sits inside a function."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        inner = {id(n) for f in ast.walk(tree)
                 if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)}
        graph[name] = [(target, names, node, id(node) in inner)
                       for target, names, node in imports(tree, known)]
    return graph


def problems(root: Path = ROOT) -> list[str]:
    graph, lines = edges(root), {m: p.read_text().splitlines() for m, p in modules(root).items()}
    found = []
    for module, deps in graph.items():
        for target, names, node, deferred in deps:
            where = f"{module}:{node.lineno} imports {target}"
            backwards = rank(target) > rank(module) and module not in COMMANDS
            if backwards or (target.startswith("ablations") and module.startswith("core")):
                found.append(f"{where}: back up the flow ({_stage(target)} after "
                             f"{_stage(module)})")
            if target in COMMANDS and module not in COMMANDS:
                found.append(f"{where}: a library imports a command")
            if target.startswith("core.bench") and not module.startswith("core.bench"):
                found.append(f"{where}: the benchmark is imported by nothing but itself")
            if module.startswith("core.infra") and not target.startswith("core.infra"):
                found.append(f"{where}: infra imports only infra")
            found += [f"{where}: takes the private {n}" for n in names if n.startswith("_")]
            if deferred and DEFERRED not in lines[module][node.lineno - 1]:
                found.append(f"{where}: a deferred import without '{DEFERRED} <why>'")
    return found + [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]


def _stage(module: str) -> str:
    return "the commands" if module in COMMANDS else stage_of(module) or module


def cycles(graph: dict) -> list[list[str]]:
    """Each cycle found by a depth-first walk over the import graph (once per back edge)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target, *_ in graph.get(module, []):
            if target == module:
                continue
            if state.get(target) == "open":
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    return found


def test_imports_run_down_the_data_flow():
    assert problems() == []


def test_the_package_tops_hold_only_commands_and_stage_folders():
    for package in ("core", "ablations"):
        top = {p.stem for p in (ROOT / package).glob("*.py")} - {"__init__"}
        assert top == {c.split(".")[1] for c in COMMANDS if c.startswith(package)} - {"bench"}
        folders = {p.name for p in (ROOT / package).iterdir()
                   if p.is_dir() and p.name != "__pycache__"}
        assert {f"{package}.{f}" for f in folders} <= set(STAGES) | {"core.bench"}


@pytest.mark.parametrize("bad, line, expected", [
    ("core/infra/atomic.py", "from core.config.schema import RunConfig\n",
     "core.infra.atomic:1 imports core.config.schema: back up the flow"),
    ("core/data/sets.py", "def f():\n    from core.config.schema import RunConfig\n",
     "imports core.config.schema: a deferred import without"),
    ("core/models/build.py", "from core.config.identity import _flatten\n",
     "takes the private _flatten"),
    ("core/config/schema.py", "from core.config.identity import run_id\n",
     "-> core.config.schema -> core.config.identity"),
    ("ablations/tables/collect.py", "from ablations.status import main\n",
     "imports ablations.status: a library imports a command"),
])
def test_each_rule_catches_a_made_up_break(tmp_path, bad, line, expected):
    """The rules can fail: one made-up line in a copy of the tree breaks exactly one."""
    import shutil
    for package in ("core", "ablations"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / bad
    text = path.read_text()
    # the made-up import goes on line 1 (a function after the docstring for the deferred one)
    path.write_text(line + text if not line.startswith("def") else text + "\n\n" + line)
    found = problems(tmp_path)
    assert problems(ROOT) == [] and any(expected in p for p in found), found
