"""A finished run in RobustBench's layout: the checkpoint under <models_dir>/<dataset>/Linf/
and the model-info JSON of its leaderboard (what `python -m ablations.export` writes)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from core.config import from_dict
from core.data.sets import DATASETS
from core.evaluation import EVAL_ATTACKS, NATURAL
from core.infra.atomic import sha256_file, write_json
from core.infra.errors import UserError
from core.infra.rundir import RunDir
from core.models import timm_kwargs
from core.models.robustbench import (
    BENCHMARKS,
    Benchmark,
    benchmark_of,
    fraction,
    info_path,
    layout_path,
    write_checkpoint,
)
from core.models.sources import source_of
from core.runs.evaluations import evaluations

AA = "aa"


def finished_run(runs_dir: Path, rid: str) -> dict:
    run = RunDir.of(runs_dir, rid).read_result()
    if run is None or not RunDir.of(runs_dir, rid).weights.is_file():
        raise UserError(f"no finished run {rid} under {runs_dir} (is --runs-dir right?)")
    if run["status"] != "done":
        raise UserError(f"run {rid} ended {run['status']}; only a finished run can be exported")
    return run


def points_needed(data_name: str, bench: Benchmark) -> int:
    """The test points a leaderboard entry's AutoAttack must cover."""
    sizes = DATASETS.get(data_name).sizes if data_name in DATASETS else None
    if bench.points is None and sizes is None:
        raise UserError(f"the size of {data_name}'s test set is not known here; RobustBench "
                        "needs AutoAttack on all of it")
    return bench.points or sizes[1]


def covered(result: dict, bench: Benchmark, points: int) -> int:
    """How many of the `points` AutoAttack covered at the leaderboard's eps with natural
    accuracy beside it (0 when eps or the point selection differ, or the result is on made-up
    stand-in data)."""
    cfg = result["config"]
    if not math.isclose(float(cfg["attack"]["eps"]), bench.eps, rel_tol=1e-9):
        return 0
    if bench.selection and cfg["eval"].get("points", "shuffled") != bench.selection:
        return 0
    if result.get("data_stand_in") or result.get("status") != "done":
        return 0
    natural, aa = EVAL_ATTACKS.get(NATURAL), EVAL_ATTACKS.get(AA)
    if result.get(natural.column) is None or result.get(natural.count_column) != points:
        return 0
    return int(result.get(aa.count_column) or 0) if result.get(aa.column) is not None else 0


def candidates(run: dict, runs_dir: Path) -> list[dict]:
    """The run's result and every evaluation of its weights (same SHA-256, same normalisation)."""
    sha = sha256_file(RunDir.of(runs_dir, run["run_id"]).weights)
    norm = [list(run["pretrained"]["mean"]), list(run["pretrained"]["std"])]
    same = [r for r in evaluations(runs_dir) if r["weights"]["sha256"] == sha
            and [list(r["weights"]["mean"]), list(r["weights"]["std"])] == norm]
    return [run, *same]


def leaderboard_result(run: dict, runs_dir: Path, bench: Benchmark) -> dict:
    """A result with AutoAttack on every point RobustBench needs at its eps, or the command
    that makes one."""
    points = points_needed(run["config"]["data"]["name"], bench)
    found = candidates(run, runs_dir)
    best = max(found, key=lambda r: covered(r, bench, points))
    if covered(best, bench, points) == points:
        return best
    rid = run["run_id"]
    command = f"python -m core.evaluate model.source=run:{rid} eval=full eval.n=null eval.n_aa=null"
    eps = float(run["config"]["attack"]["eps"])
    if not math.isclose(eps, bench.eps, rel_tol=1e-9):
        command += f" attack.eps={fraction(bench.eps)}"
    if bench.selection:
        command += f" eval.points={bench.selection}"
    if str(runs_dir) != "runs":
        command += f" runs_dir={runs_dir}"
    raise UserError(f"run {rid}: AutoAttack at eps {fraction(bench.eps)} covers "
                    f"{covered(best, bench, points)} of the {points} test points RobustBench "
                    f"needs; run `{command}` first, then export again")


def additional_data(cfg: dict) -> bool:
    """RobustBench's additional_data, guessed from the pretraining: none, or a pretraining run
    on the same data set, is no additional data; weights from elsewhere are."""
    return source_of(cfg["model"]["source"]).extra_data(cfg)


def model_info(run: dict, result: dict, bench: Benchmark, a: argparse.Namespace) -> dict:
    """The leaderboard's fields for the entry (accuracies in %, as strings, as RobustBench)."""
    cfg = run["config"]
    aa = f"{100 * result[EVAL_ATTACKS.get(AA).column]:.2f}"
    extra = additional_data(cfg) if a.additional_data is None else a.additional_data == "true"
    footnote = a.footnote if a.footnote is not None else (
        f"Exported from vitadv run {run['run_id']} ({cfg['model']['arch']}, pretrained weights "
        f"{run['pretrained']['source']}); AutoAttack on {result['n_aa']} points."
        + _normalisation_note(run["pretrained"], bench))
    return {"link": a.link, "name": a.title or f"vitadv run {run['run_id']}",
            "authors": a.authors, "additional_data": extra, "number_forward_passes": 1,
            "dataset": bench.folder, "venue": a.venue,
            "architecture": a.architecture or cfg["model"]["arch"],
            "eps": fraction(bench.eps),
            "clean_acc": f"{100 * result[EVAL_ATTACKS.get(NATURAL).column]:.2f}",
            "reported": a.reported or aa, "autoattack_acc": aa, "footnote": footnote,
            "unreliable": False}


def _normalisation_note(pretrained: dict, bench: Benchmark) -> str:
    """A wrapped entry gets the leaderboard's normaliser from the model zoo: say when the
    weights expect another one (it is also in the checkpoint's 'normalization')."""
    mean, std = tuple(pretrained["mean"]), tuple(pretrained["std"])
    if not bench.wrapped or (mean, std) == (bench.mean, bench.std):
        return ""
    return f" Its inputs are normalised with mean {list(mean)} and std {list(std)}."


def export(a: argparse.Namespace) -> tuple[Path, Path]:
    runs_dir, out = Path(a.runs_dir), Path(a.out)
    run = finished_run(runs_dir, a.run_id)
    data = run["config"]["data"]["name"]
    if data not in BENCHMARKS:  # benchmark_of's fix (data=) is for a run yet to be launched
        raise UserError(f"run {a.run_id} was trained on {data}, and {data} has no RobustBench "
                        f"leaderboard ({', '.join(BENCHMARKS.names())} have one): export a run "
                        "trained on one of them")
    bench = benchmark_of(data)
    result = leaderboard_result(run, runs_dir, bench)
    weights = RunDir.of(runs_dir, a.run_id).weights
    state = torch.load(weights, map_location="cpu", weights_only=True)
    meta = {"architecture": _architecture(run), "vitadv": {
        "run_id": a.run_id, "weights_sha256": sha256_file(weights),
        "evaluation": result.get("eval_id") or f"run:{a.run_id}"}}
    pt = write_checkpoint(layout_path(out, bench.folder, a.robustbench), state,
                          run["pretrained"]["mean"], run["pretrained"]["std"], bench, meta)
    info = write_json(info_path(out, bench.folder, a.robustbench),
                      model_info(run, result, bench, a))
    return pt, info


def _architecture(run: dict) -> dict:
    """The timm architecture and kwargs the weights fit (for a model zoo entry)."""
    cfg = from_dict(run["config"])
    kwargs, _ = timm_kwargs(cfg.model, cfg.model.img_size or cfg.data.img_size,
                            run["num_classes"])
    return {"arch": cfg.model.arch, "kwargs": kwargs}
