"""core.evaluate and ablations.export: a run's checkpoint evaluated again gives its numbers;
more attacks add only those; bad input is one line; export refuses without AutoAttack on
every point, names the command that fixes it, and round-trips to identical logits."""
from __future__ import annotations

import json
import shlex

import pytest
import timm
import torch

from ablations.export import main as export_main
from ablations.report import main as report_main
from core.config import ModelCfg
from core.evaluate import main
from core.infra.atomic import sha256_file
from core.infra.rundir import RunDir
from core.models import build_model
from core.models.robustbench import BENCHMARKS, DIR_ENV, Benchmark
from core.runs.evaluations import EVALS
from core.runs.run import run
from tests.conftest import FAST

# PGD-10 AT for 4 epochs on all of digits: a model whose natural, PGD-20 and CW-20
# accuracies differ (about 0.21, 0.13, 0.08 on 96 points)
TRAINED = ["optim=adamw", "optim.lr=3e-3", "aug=none", "epochs=4", "data.train_subset=null",
           "batch_size=64", "eval.n=96"]
# a digits "leaderboard" for the tests: RobustBench's CIFAR-10 conventions, all 360 points
DIGITS = Benchmark("digits", 8 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), wrapped=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from core.config.compose import compose

    runs = tmp_path_factory.mktemp("evaluate") / "runs"
    result = run(compose([*FAST, *TRAINED, f"runs_dir={runs}"]))
    return runs, result


def _evaluate(capsys, runs, *overrides) -> dict:
    """core.evaluate's CLI; the result of the evaluation it names on stdout."""
    capsys.readouterr()
    assert main([*overrides, f"runs_dir={runs}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("done: evaluation "), out
    return RunDir(runs / EVALS / out.split()[2]).read_result()


@pytest.mark.slow
def test_a_run_source_reproduces_the_runs_metrics_exactly(trained, capsys):
    runs, result = trained
    rid = result["run_id"]
    again = _evaluate(capsys, runs, f"model.source=run:{rid}")
    assert again["metrics"] == result["metrics"]
    assert len({result["clean_acc"], result["pgd20_acc"]}) == 2  # not a model at chance
    assert again["source"] == f"run:{rid}" and again["n_eval"] == 96
    assert again["weights"]["sha256"] == sha256_file(RunDir.of(runs, rid).weights)
    for key in ("config", "code", "packages", "machine", "identity"):
        assert again[key], key
    assert again["config"]["attack"]["eps"] == result["config"]["attack"]["eps"]


def test_asking_again_for_more_attacks_adds_only_those(trained, capsys):
    runs, result = trained
    rid = result["run_id"]
    first = _evaluate(capsys, runs, f"model.source=run:{rid}")
    folder = runs / EVALS / first["eval_id"]
    pgd20_flags = RunDir(folder).eval_flags("pgd20").stat().st_mtime_ns
    more = _evaluate(capsys, runs, f"model.source=run:{rid}", "eval.attacks=[clean,cw20]")
    assert more["eval_id"] == first["eval_id"]  # the attacks are not part of the key
    assert more["pgd20_acc"] == result["pgd20_acc"] and more["clean_acc"] == result["clean_acc"]
    assert more["cw20_acc"] < more["clean_acc"] and more["n_cw20"] == 96
    assert more["robust_acc"] == min(more["cw20_acc"], more["robust_acc"])
    assert more["evaluations"][-1]["attacks"] == ["cw20"]
    assert RunDir(folder).eval_flags("pgd20").stat().st_mtime_ns == pgd20_flags
    assert more["config"]["eval"]["attacks"] == ["clean", "pgd20", "cw20"]


@pytest.mark.slow
def test_an_interrupted_evaluation_resumes_with_the_attacks_it_finished(trained, capsys,
                                                                        monkeypatch):
    import core.evaluation.entries as entries

    runs, result = trained
    over = [f"model.source=run:{result['run_id']}", "seed=3", "eval.attacks=[clean,pgd20,pgd100]"]
    pgd = entries.pgd_eval

    def dies_in_pgd100(model, x, y, attack, noise):
        if attack.steps == 100:
            raise KeyboardInterrupt("killed")
        return pgd(model, x, y, attack, noise)

    monkeypatch.setattr(entries, "pgd_eval", dies_in_pgd100)
    with pytest.raises(KeyboardInterrupt):
        main([*over, f"runs_dir={runs}"])
    folder = next(p for p in (runs / EVALS).iterdir() if not RunDir(p).result.is_file())
    finished = RunDir(folder).eval_flags("pgd20").stat().st_mtime_ns
    monkeypatch.setattr(entries, "pgd_eval", pgd)
    done = _evaluate(capsys, runs, *over)
    assert done["eval_id"] == folder.name and done["n_pgd100"] == 96
    assert done["pgd100_acc"] < done["clean_acc"] == result["clean_acc"]
    assert RunDir(folder).eval_flags("pgd20").stat().st_mtime_ns == finished


def test_the_report_lists_evaluations(trained, tmp_path, capsys):
    runs, result = trained
    evaluated = _evaluate(capsys, runs, f"model.source=run:{result['run_id']}")
    assert report_main(["--runs-dir", str(runs), "--out", str(tmp_path / "results")]) == 0
    lines = (tmp_path / "results" / "evaluations.csv").read_text().splitlines()
    assert lines[0].startswith("eval_id,source,sha256,arch,data,eps,seed,n_eval")
    assert len(lines) == 1 + len(list((runs / EVALS).iterdir()))
    row = next(line for line in lines if line.startswith(evaluated["eval_id"]))
    assert f"run:{result['run_id']}" in row and evaluated["weights"]["sha256"] in row
    assert f",{evaluated['pgd20_acc']:.6f}," in row


def _file(tmp_path, name, prefix="", **kwargs):
    net = timm.create_model(name, **kwargs)
    path = tmp_path / f"{name}.pth"
    torch.save({f"{prefix}{k}": v for k, v in net.state_dict().items()}, path)
    return f"model.source=file:{path}"


@pytest.mark.parametrize("source, message", [
    (lambda p: "model.source=hub:x", "valid: file, none, pretrain, robustbench, run, timm"),
    (lambda p: "model.source=run:nosuchrun", "no weights for run nosuchrun"),
    (lambda p: "model.source=pretrain", "names a run to train, not a checkpoint"),
    (lambda p: "model.source=robustbench:Any2024", "digits has no RobustBench leaderboard"),
    (lambda p: _file(p, "vitadv_vit_micro", "encoder."), "do not fit vitadv_vit_micro: 56 of "
                                                        "its 56 keys are missing"),
    (lambda p: _file(p, "vitadv_vit_mini"),
     "do not fit vitadv_vit_micro: 24 keys are not its (e.g. blocks.4.norm1.weight); cls_token "
     "is [1, 1, 96], not [1, 1, 64]"),
    (lambda p: _file(p, "vitadv_vit_micro", num_classes=100), "classify 100 classes but the "
                                                                "data set has 10"),
    (lambda p: _file(p, "vitadv_vit_micro", img_size=32), "made for another image size: "
                                                          "pos_embed is [1, 65, 64]"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, source, message):
    runs = tmp_path / "runs"
    code = main([*FAST, source(tmp_path), f"runs_dir={runs}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (runs / EVALS).exists()


def _fake_autoattack(model, x, y, *args, **kwargs):
    """AutoAttack on 360 points takes minutes here: natural correctness on two thirds."""
    with torch.no_grad():
        correct = model(x.to(next(model.parameters()).device)).argmax(1).cpu() == y
    return correct & (torch.arange(len(y)) % 3 != 0)


def _logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.slow
def test_export_needs_autoattack_on_every_point_then_round_trips(tmp_path, capsys, monkeypatch,
                                                                 fast_cfg, test_batch):
    runs, out = tmp_path / "runs", tmp_path / "rb"
    result = run(fast_cfg("eval.n=null", "eval.attacks=[clean,aa]", "eval.n_aa=4"))
    rid = result["run_id"]
    assert result["n_eval"] == 360 and result["n_aa"] == 4
    export = [rid, "--robustbench", "Tiny2025Made_ViT", "--out", str(out), "--runs-dir",
              str(runs)]
    assert export_main(export) == 2
    assert "digits has no RobustBench leaderboard" in capsys.readouterr().err
    monkeypatch.setattr("core.evaluation.entries.autoattack_correct", _fake_autoattack)
    monkeypatch.setenv(DIR_ENV, str(out))
    with BENCHMARKS.scoped("digits", DIGITS):
        assert export_main(export) == 2  # AutoAttack on 4 of 360 points
        err = capsys.readouterr().err.strip()
        assert "covers 4 of the 360 test points" in err and len(err.splitlines()) == 1
        command = shlex.split(err.split("`")[1])
        assert command[:3] == ["python", "-m", "core.evaluate"]
        assert main(command[3:]) == 0  # exactly what the message says
        assert export_main([*export, "--authors", "A. Uthor"]) == 0
        evaluated = next(RunDir(p).read_result() for p in (runs / EVALS).iterdir())
        again = _evaluate(capsys, runs, *FAST, "model.source=robustbench:Tiny2025Made_ViT",
                          "eval.attacks=[clean]", "eval.n=null")
    assert evaluated["n_aa"] == 360 and evaluated["n_clean"] == 360
    info = json.loads((out / "model_info" / "digits" / "Linf" / "Tiny2025Made_ViT.json")
                      .read_text())
    assert info["clean_acc"] == f"{100 * evaluated['clean_acc']:.2f}"
    assert info["autoattack_acc"] == info["reported"] == f"{100 * evaluated['aa_acc']:.2f}"
    assert float(info["autoattack_acc"]) < float(info["clean_acc"])
    assert {"name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
            "architecture", "eps", "clean_acc", "reported", "autoattack_acc",
            "footnote"} <= set(info)
    assert (info["eps"], info["dataset"], info["authors"]) == ("8/255", "digits", "A. Uthor")
    assert info["additional_data"] is False  # model.source=none

    x = test_batch[0][:64]
    ours = build_model(ModelCfg(arch="vitadv_vit_micro", source=f"run:{rid}"), 16, 10, str(runs))
    back = build_model(ModelCfg(arch="vitadv_vit_micro", source="robustbench:Tiny2025Made_ViT"),
                       16, 10, str(runs))
    assert back.weights.resolved == "robustbench:digits/Linf/Tiny2025Made_ViT"
    assert torch.equal(_logits(back.model, x), _logits(ours.model, x))
    assert again["source"] == "robustbench:digits/Linf/Tiny2025Made_ViT"
    assert again["clean_acc"] == evaluated["clean_acc"] == result["clean_acc"]


def test_export_writes_imagenet_style_entries_too(trained, tmp_path, monkeypatch, capsys):
    """A wrapped (ImageNet-style) entry: keys under 'model.', the normalisation beside them;
    the evaluation export reads may be one with another AutoAttack seed."""
    runs, result = trained
    rid, out = result["run_id"], tmp_path / "rb"
    wrapped = Benchmark("digits", 8 / 255, (0.0,) * 3, (1.0,) * 3, wrapped=True, points=96)
    monkeypatch.setattr("core.evaluation.entries.autoattack_correct", _fake_autoattack)
    monkeypatch.setenv(DIR_ENV, str(out))
    with BENCHMARKS.scoped("digits", wrapped):
        _evaluate(capsys, runs, f"model.source=run:{rid}", "eval.attacks=[clean,aa]",
                  "eval.n_aa=null", "seed=7")
        assert export_main([rid, "--robustbench", "Tiny_W", "--out", str(out),
                            "--runs-dir", str(runs)]) == 0
    ckpt = torch.load(out / "digits" / "Linf" / "Tiny_W.pt", weights_only=True)
    assert all(k.startswith("model.") for k in ckpt["state_dict"])
    assert ckpt["architecture"]["kwargs"]["img_size"] == 16
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ours = build_model(ModelCfg(arch="vitadv_vit_micro", source=f"run:{rid}"), 16, 10, str(runs))
    back = build_model(ModelCfg(arch="vitadv_vit_micro", source="robustbench:Tiny_W"), 16, 10)
    assert torch.equal(_logits(back.model, x), _logits(ours.model, x))


def test_an_imagenet_entry_needs_robustbench_s_5000_points_at_4_of_255():
    from ablations.tables.leaderboard import covered

    bench = BENCHMARKS.get("imagenet")
    aa = {"clean_acc": 0.7, "aa_acc": 0.35, "n_clean": 5000, "n_aa": 5000, "status": "done"}

    def result(eps, points):
        return {**aa, "config": {"attack": {"eps": eps}, "eval": {"points": points}}}

    assert covered(result(4 / 255, "robustbench"), bench, 5000) == 5000
    assert covered(result(4 / 255, "shuffled"), bench, 5000) == 0  # the first 5000 of a shuffle
    assert covered(result(8 / 255, "robustbench"), bench, 5000) == 0
    assert covered({**result(4 / 255, "robustbench"), "n_aa": 1000}, bench, 5000) == 1000


def test_a_read_only_runs_dir_holding_the_run_says_how_to_evaluate_it(tmp_path, capsys,
                                                                      monkeypatch):
    """`set runs_dir=DIR` alone was a dead end: the run is in the read-only folder."""
    import os

    from core.config import to_dict
    from core.config.compose import compose

    runs = tmp_path / "shared"
    held = RunDir.of(runs, "0123456789ab").mkdir()
    held.weights.write_bytes(b"")  # never read: the folder is refused first
    held.result.write_text(json.dumps({"status": "done", "config": to_dict(compose(FAST))}))
    real = os.access
    monkeypatch.setattr("core.runs.checks.os.access",
                        lambda p, mode: False if str(p) == str(runs) else real(p, mode))
    assert main([*FAST, "model.source=run:0123456789ab", f"runs_dir={runs}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"runs_dir={runs} holds run 0123456789ab but cannot be " \
        "written" in err
    assert f"cp -r {runs / '0123456789ab'} DIR/) and give runs_dir=DIR" in err
    assert not (runs / EVALS).exists()
