"""RobustBench's on-disk layout, read and written here without importing robustbench (its
1.1.1 release pins timm==1.0.9, imports an `autoattack` that PyPI's AutoAttack does not
provide, and needs pkg_resources).

    <models_dir>/<dataset>/<threat_model>/<name>.pt            the checkpoint
    <out>/model_info/<dataset>/<threat_model>/<name>.json      the leaderboard's facts

A checkpoint is a torch file holding {'state_dict': ...} (or 'model_state_dict' / 'model',
or the state dict itself). Its keys may carry DataParallel's 'module.' and the normalisation
wrapper's 'model.': an ImageNet entry is nn.Sequential(normalize=ImageNormalizer(mean, std),
model=<net>), and RobustBench's load_model strips both prefixes and adds 'model.' back; the
normalisation comes from the model zoo entry (ImageNet's mean/std), not from the file. A
CIFAR-10 entry is the net itself, with its normalisation (if any) as 'mu'/'sigma' buffers.

`model.source=robustbench:NAME` (or `robustbench:<dataset>/Linf/NAME`) loads such a file from
$VITADV_ROBUSTBENCH_DIR (default ./models, RobustBench's own default); nothing is downloaded.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.infra.atomic import save_torch, sha256_file
from core.infra.errors import ConfigError, UserError
from core.infra.registry import Registry
from core.models.weights import Weights

DIR_ENV = "VITADV_ROBUSTBENCH_DIR"
THREAT_MODEL = "Linf"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
PREFIXES = ("module.", "model.")       # stripped in this order, as RobustBench's load_model does
STATE_KEYS = ("state_dict", "model_state_dict", "model")
NORM_KEYS = (("normalize.mean", "normalize.std"), ("mu", "sigma"))
NORMALIZATION = "normalization"        # our extra top-level entry; RobustBench reads state_dict
GDRIVE = "https://drive.google.com/uc?id="


@dataclass(frozen=True)
class Benchmark:
    """A RobustBench data set, keyed by this project's data set name.

    folder: RobustBench's name for it (`<models_dir>/<folder>/Linf/`). eps: the leaderboard's
    L-inf radius. mean/std: the normalisation its entries get when the file carries none.
    wrapped: its entries are Sequential(normalize, model) (keys 'model.<net key>').
    points: the test points an entry's AutoAttack must cover (None: the whole test set).
    selection: the `eval.points` selection they are the first `points` of (None: any).
    """

    folder: str
    eps: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    wrapped: bool
    points: int | None = None
    selection: str | None = None


BENCHMARKS: Registry[Benchmark] = Registry("RobustBench data set")
BENCHMARKS.add("cifar10", Benchmark("cifar10", 8 / 255, *IDENTITY, wrapped=False))
# ImageNet entries are evaluated on RobustBench's fixed 5,000-image subset of the val set
BENCHMARKS.add("imagenet", Benchmark("imagenet", 4 / 255, IMAGENET_MEAN, IMAGENET_STD,
                                     wrapped=True, points=5000, selection="robustbench"))


@dataclass(frozen=True)
class Entry:
    """A leaderboard entry this project knows: its timm architecture, RobustBench data set,
    RobustBench's download (Google Drive id) and its leaderboard numbers in %."""

    arch: str
    folder: str
    gdrive_id: str
    clean_acc: float
    autoattack_acc: float


ENTRIES: Registry[Entry] = Registry("RobustBench entry")
ENTRIES.add("Mo2022When_ViT-B", Entry("vit_base_patch16_224", "imagenet",
                                      "1-dUFdvDBflqMsMLjZv3wlPJTm-Jm7net", 68.38, 34.40))
ENTRIES.add("Mo2022When_Swin-B", Entry("swin_base_patch4_window7_224", "imagenet",
                                       "1-SXi4Z2X6Zo_j8EO4slJcBMXNej8fKUd", 74.66, 38.30))


def models_dir() -> Path:
    return Path(os.environ.get(DIR_ENV, "models")).expanduser()


def benchmark_of(data_name: str) -> Benchmark:
    if data_name not in BENCHMARKS:
        raise ConfigError(f"data set {data_name} has no RobustBench leaderboard; RobustBench's "
                          f"data sets here: {', '.join(BENCHMARKS.names())} (data=NAME)")
    return BENCHMARKS.get(data_name)


def _benchmark_in(folder: str) -> Benchmark | None:
    return next((b for b in BENCHMARKS.values() if b.folder == folder), None)


def parse(arg: str) -> tuple[str | None, str, str]:
    """'NAME' or '<dataset>/<threat_model>/NAME' -> (dataset or None, threat model, name)."""
    parts = arg.split("/")
    if len(parts) == 1 and parts[0]:
        return None, THREAT_MODEL, parts[0]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    raise ConfigError(f"model.source=robustbench:{arg} is not a RobustBench entry; write "
                      "robustbench:NAME or robustbench:<dataset>/Linf/NAME")


def qualified(arg: str, data_name: str) -> str:
    """The entry `arg` names, qualified with the RobustBench data set of `data_name`:
    'NAME' on CIFAR-10 -> 'cifar10/Linf/NAME'. An entry of another data set is an error."""
    bench = benchmark_of(data_name)
    folder, threat, name = parse(arg)
    folder = folder or (ENTRIES.get(name).folder if name in ENTRIES else bench.folder)
    if folder != bench.folder:
        raise ConfigError(f"{name} is a RobustBench {folder} entry but the data set is "
                          f"{data_name}; evaluate it on data={_data_name(folder)}")
    return f"{folder}/{threat}/{name}"


def _data_name(folder: str) -> str:
    return next((n for n, b in BENCHMARKS.items() if b.folder == folder), folder)


def entry_problem(arg: str, arch: str) -> str | None:
    """Why `arch` cannot hold the known entry `arg` names (None: it can, or it is unknown)."""
    name = parse(arg)[2]
    if name not in ENTRIES or ENTRIES.get(name).arch == arch:
        return None
    want = ENTRIES.get(name).arch
    return (f"{name} is a {want}, not a {arch}; set model.arch={want} (or the model preset "
            "with that architecture)")


def layout_path(root: Path, folder: str, name: str, threat: str = THREAT_MODEL) -> Path:
    return Path(root) / folder / threat / f"{name}.pt"


def info_path(root: Path, folder: str, name: str, threat: str = THREAT_MODEL) -> Path:
    return Path(root) / "model_info" / folder / threat / f"{name}.json"


def _candidates(arg: str) -> list[Path]:
    """Where the checkpoint `arg` names may be: one path if the data set is known."""
    folder, threat, name = parse(arg)
    if folder is None and name in ENTRIES:
        folder = ENTRIES.get(name).folder
    if folder is not None:
        return [layout_path(models_dir(), folder, name, threat)]
    found = sorted(models_dir().glob(f"*/{threat}/{name}.pt"))
    return found or [layout_path(models_dir(), b.folder, name, threat)
                     for b in BENCHMARKS.values()]


def missing(arg: str, runs_dir: Path | None = None) -> str | None:
    paths = _candidates(arg)
    if len(paths) == 1 and paths[0].is_file():
        return None
    if sum(p.is_file() for p in paths) > 1:
        return (f"RobustBench entry {arg} is in several data sets ({', '.join(map(str, paths))});"
                f" name one: model.source=robustbench:<dataset>/{THREAT_MODEL}/{arg}")
    name, where = parse(arg)[2], " or ".join(str(p) for p in paths)
    if name in ENTRIES:
        fetch = (f"download {GDRIVE}{ENTRIES.get(name).gdrive_id} (RobustBench's model zoo) "
                 f"on a machine with internet and save it as {paths[0]}")
    else:
        fetch = ("put the entry's checkpoint there (its download is in RobustBench's model "
                 "zoo, robustbench/model_zoo/<dataset>.py)")
    return (f"RobustBench checkpoint not found: looked for {where}; {fetch}, or set "
            f"{DIR_ENV} to the folder that holds <dataset>/{THREAT_MODEL}/")


def load(arg: str, runs_dir: Path | None = None) -> Weights:
    """The entry's weights: its state dict without RobustBench's prefixes, the SHA-256 of
    the file and the normalisation the entry applies before the net."""
    problem = missing(arg)
    if problem:
        raise UserError(problem)
    path = _candidates(arg)[0]
    folder, threat, name = path.parent.parent.name, path.parent.name, path.stem
    sd, mean, std = read_checkpoint(path, _benchmark_in(folder))
    info = {"robustbench": {"name": name, "dataset": folder, "threat_model": threat,
                            "file": str(path.resolve())}}
    return Weights(sd, f"robustbench:{folder}/{threat}/{name}", sha256_file(path), mean, std,
                   info=info)


def read_checkpoint(path: Path, bench: Benchmark | None) -> tuple[dict, tuple, tuple]:
    """(the net's state dict, mean, std) of a checkpoint in RobustBench's layout."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle and zip errors come in many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path} cannot be read as a weights-only torch checkpoint ({first}); "
                        "re-save it as torch.save({'state_dict': state_dict}, PATH)") from None
    sd = state_dict_of(ckpt, path)
    mean, std = _pop_normalization(sd)
    if mean is None and isinstance(ckpt.get(NORMALIZATION), dict):
        mean, std = ckpt[NORMALIZATION]["mean"], ckpt[NORMALIZATION]["std"]
    if mean is None:
        mean, std = (bench.mean, bench.std) if bench else IDENTITY
    return sd, tuple(float(m) for m in mean), tuple(float(s) for s in std)


def state_dict_of(ckpt: object, path: Path) -> dict:
    """The tensors of a checkpoint, with RobustBench's key prefixes removed."""
    sd = next((ckpt[k] for k in STATE_KEYS if isinstance(ckpt, dict)
               and isinstance(ckpt.get(k), dict)), ckpt)
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UserError(f"{path} holds no state dict (looked for {', '.join(STATE_KEYS)} "
                        "or a dict of tensors); re-save it as {'state_dict': state_dict}")
    for prefix in PREFIXES:
        sd = {k.removeprefix(prefix): v for k, v in sd.items()}
    return sd


def _pop_normalization(sd: dict) -> tuple[list | None, list | None]:
    for mean_key, std_key in NORM_KEYS:
        if mean_key in sd and std_key in sd:
            return sd.pop(mean_key).flatten().tolist(), sd.pop(std_key).flatten().tolist()
    return None, None


def layout(net_state: dict, mean: Sequence[float], std: Sequence[float], bench: Benchmark,
           meta: dict | None = None) -> dict:
    """A net's state dict as a RobustBench entry of `bench` stores it: ImageNet's keys under
    the wrapper's 'model.' (its normaliser comes from the model zoo entry; ours is kept in
    'normalization' for readers that want it), CIFAR-10's at the root with 'mu'/'sigma'."""
    if bench.wrapped:
        sd = {f"model.{k}": v for k, v in net_state.items()}
    else:
        sd = {**net_state, "mu": torch.tensor(mean).view(1, -1, 1, 1),
              "sigma": torch.tensor(std).view(1, -1, 1, 1)}
    return {"state_dict": sd, NORMALIZATION: {"mean": list(mean), "std": list(std)},
            **(meta or {})}


def write_checkpoint(path: Path, net_state: dict, mean: Sequence[float], std: Sequence[float],
                     bench: Benchmark, meta: dict | None = None) -> Path:
    return save_torch(path, layout(net_state, mean, std, bench, meta))


def fraction(eps: float) -> str:
    """8/255 for 0.0313..., as RobustBench's model info writes eps."""
    k = round(eps * 255)
    return f"{k}/255" if abs(k / 255 - eps) < 1e-9 else f"{eps:g}"
