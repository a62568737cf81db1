"""RobustBench's on-disk layout without robustbench: made-up checkpoints in its layout load
through `robustbench:` to the logits of the model they were made from; what we write is what
its load_model expects; a missing entry says where it looked and where to get it."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch
from torch import nn

from core.config import ModelCfg
from core.infra.atomic import sha256_file
from core.infra.errors import ConfigError, UserError
from core.models import build_model
from core.models.normalize import Normalized
from core.models.robustbench import (
    BENCHMARKS,
    DIR_ENV,
    IMAGENET_MEAN,
    IMAGENET_STD,
    entry_problem,
    layout_path,
    qualified,
    write_checkpoint,
)
from core.models.sources import weights_missing

ARCH = "vit_tiny_patch16_224"
MADE_UP_MEAN, MADE_UP_STD = (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)


class ImageNormalizer(nn.Module):
    """RobustBench's normalisation layer, as its ImageNet entries put it before the net."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.as_tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _wrapped(net, mean, std):
    """nn.Sequential(normalize, model): RobustBench's ImageNet entry around a timm net."""
    return nn.Sequential(OrderedDict([("normalize", ImageNormalizer(mean, std)), ("model", net)]))


def _made_up_net(seed: int = 0):
    torch.manual_seed(seed)
    net = timm.create_model(ARCH, pretrained=False, img_size=64, num_classes=1000).eval()
    with torch.no_grad():  # made-up weights that are not timm's init (so nothing loads by luck)
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    return tmp_path / "models"


def _logits(model, seed: int = 1):
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("prefix, keep_normalizer, container", [
    ("module.", True, "state_dict"),   # DataParallel around the wrapped model, its mean/std
    ("", False, "state_dict"),         # the net under 'model.', mean/std from the zoo entry
    ("module.", False, None),          # a bare state dict
])
def test_a_checkpoint_in_robustbench_layout_gives_the_models_logits(
        models_dir, prefix, keep_normalizer, container):
    net = _made_up_net()
    mean, std = (MADE_UP_MEAN, MADE_UP_STD) if keep_normalizer else (IMAGENET_MEAN, IMAGENET_STD)
    reference = _wrapped(net, mean, std)
    sd = {f"{prefix}{k}": v for k, v in reference.state_dict().items()
          if keep_normalizer or not k.startswith("normalize.")}
    path = layout_path(models_dir, "imagenet", "Fake2022Made_ViT-Ti")
    path.parent.mkdir(parents=True)
    torch.save({container: sd} if container else sd, path)

    built = build_model(ModelCfg(arch=ARCH, source="robustbench:imagenet/Linf/Fake2022Made_ViT-Ti"),
                        64, 1000)
    assert torch.equal(_logits(built.model), _logits(reference))
    rec = built.weights.record()
    assert rec["source"] == "robustbench:imagenet/Linf/Fake2022Made_ViT-Ti"
    assert rec["sha256"] == sha256_file(path)
    assert rec["mean"] == pytest.approx(mean) and rec["std"] == pytest.approx(std)


def test_an_unqualified_name_is_found_in_its_data_set_folder(models_dir):
    net = _made_up_net(seed=3)
    path = layout_path(models_dir, "cifar10", "Fake2023Small")
    write_checkpoint(path, net.state_dict(), MADE_UP_MEAN, MADE_UP_STD, BENCHMARKS.get("cifar10"))
    built = build_model(ModelCfg(arch=ARCH, source="robustbench:Fake2023Small"), 64, 1000)
    assert built.weights.resolved == "robustbench:cifar10/Linf/Fake2023Small"
    assert torch.equal(_logits(built.model), _logits(Normalized(net, MADE_UP_MEAN, MADE_UP_STD)))


@pytest.mark.parametrize("data", ["cifar10", "imagenet"])
def test_what_we_write_is_what_robustbench_load_model_reads(tmp_path, data):
    """RobustBench's load_model: strip 'module.' then 'model.' from the keys; for ImageNet add
    'model.' back and load into Sequential(normalize, net), the normaliser's buffers left to
    the entry (ImageNet's mean/std); for CIFAR-10 the net carries 'mu'/'sigma' itself."""
    net, bench = _made_up_net(seed=5), BENCHMARKS.get(data)
    path = tmp_path / "entry.pt"
    write_checkpoint(path, net.state_dict(), IMAGENET_MEAN, IMAGENET_STD, bench)
    sd = torch.load(path, weights_only=True)["state_dict"]
    for sub in ("module.", "model."):  # their rm_substr_from_state_dict
        sd = {(k[len(sub):] if sub in k else k): v for k, v in sd.items()}
    if data == "imagenet":
        sd = {f"model.{k}": v for k, v in sd.items()}
        theirs = _wrapped(timm.create_model(ARCH, img_size=64, num_classes=1000),
                          IMAGENET_MEAN, IMAGENET_STD)
        missing, unexpected = theirs.load_state_dict(sd, strict=False)
        assert set(missing) == {"normalize.mean", "normalize.std"} and not unexpected
        assert torch.equal(_logits(theirs), _logits(_wrapped(net, IMAGENET_MEAN, IMAGENET_STD)))
    else:
        assert set(sd) == set(net.state_dict()) | {"mu", "sigma"}
        assert sd["sigma"].flatten().tolist() == pytest.approx(IMAGENET_STD)


def test_a_missing_entry_says_where_it_looked_and_where_to_get_it(models_dir):
    known = weights_missing("robustbench:Mo2022When_ViT-B")
    assert str(models_dir / "imagenet" / "Linf" / "Mo2022When_ViT-B.pt") in known
    assert "drive.google.com/uc?id=1-dUFdvDBflqMsMLjZv3wlPJTm-Jm7net" in known
    other = weights_missing("robustbench:Nobody2030Nothing")
    assert str(models_dir / "cifar10" / "Linf" / "Nobody2030Nothing.pt") in other
    assert DIR_ENV in other and "\n" not in known + other
    with pytest.raises(UserError, match="looked for"):
        build_model(ModelCfg(arch=ARCH, source="robustbench:Mo2022When_ViT-B"), 64, 1000)


def test_entries_meet_their_data_set_and_architecture():
    assert qualified("Mo2022When_Swin-B", "imagenet") == "imagenet/Linf/Mo2022When_Swin-B"
    assert qualified("Anyone2024X", "cifar10") == "cifar10/Linf/Anyone2024X"
    with pytest.raises(ConfigError, match="imagenet entry but the data set is cifar10"):
        qualified("Mo2022When_ViT-B", "cifar10")
    with pytest.raises(ConfigError, match="imagenette has no RobustBench leaderboard"):
        qualified("Anyone2024X", "imagenette")
    assert entry_problem("Mo2022When_ViT-B", "vit_base_patch16_224") is None
    assert "model.arch=swin_base_patch4_window7_224" in entry_problem("Mo2022When_Swin-B",
                                                                      "vit_base_patch16_224")
