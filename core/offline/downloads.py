"""What `python -m core.prefetch` downloads on a machine with internet: the timm weights of
every model preset (into timm's cache or one state-dict file)."""
from __future__ import annotations

import yaml

import core.conf
from core.infra.atomic import save_torch

PRESETS = core.conf.FOLDER / "model"


def preset_tags() -> list[str]:
    tags: list[str] = []
    for f in sorted(PRESETS.glob("*.yaml")):
        preset = yaml.safe_load(f.read_text())
        for source in [preset.get("source", ""), *preset.get("sources", {}).values()]:
            tag = source.removeprefix("timm:")
            if source.startswith("timm:") and tag not in tags:
                tags.append(tag)
    return tags


def fetch_weights(tags: list[str], out: str | None) -> None:
    import timm
    import torch

    if out and len(tags) != 1:
        raise SystemExit("error: --out takes exactly one tag")
    for tag in tags:
        net = timm.create_model(tag, pretrained=True)
        if out:
            save_torch(out, net.state_dict())
            print(f"{tag} -> {out}  (use model.source=file:{out})")
        else:
            print(f"{tag}: cached ({sum(p.numel() for p in net.parameters()) / 1e6:.1f}M params)")
        del net
        torch.cuda.empty_cache()
