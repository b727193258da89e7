"""task=summary: the model's parameter breakdown, without data or training."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..data import dataset_info
from ..files import write_text
from ..models import model_from_config
from ..models.hyper import HyperConv2d
from .common import param_count


def describe(model, title: str) -> str:
    rows = [("module", "type", "parameters", "notes")]
    for name, child in model.named_children():
        note = ""
        if isinstance(child, HyperConv2d):
            k = child.weight
            note = (f"kernel {tuple(k.shape)} generated from {child.num_tiles} tile(s) of "
                    f"{child.generator[0].out_size}x{child.generator[0].in_size}; learned: embeddings "
                    f"{tuple(child.z.shape)} + bias")
        elif hasattr(child, "weight") and child.weight is not None:
            note = f"weight {tuple(child.weight.shape)}"
        rows.append((name, type(child).__name__, f"{param_count(child):,}", note))
    rows.append(("total", "", f"{param_count(model):,}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [title, ""]
    for r in rows:
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
    if hasattr(model, "conv_params"):
        lines += ["", f"conv parameters (seed 002 definition): {model.conv_params():,}"]
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig, run_dir: Path) -> dict:
    shape, num_classes = dataset_info(str(cfg.data.name))
    model = model_from_config(cfg.model, num_classes, shape)
    title = (f"{cfg.model.name} (arch {cfg.model.arch}) for {cfg.data.name}: input "
             f"{'x'.join(map(str, shape))}, {num_classes} classes")
    text = describe(model, title)
    print(text, end="")
    write_text(run_dir / "summary.txt", text)
    return {"total_params": param_count(model),
            "conv_params": model.conv_params() if hasattr(model, "conv_params") else None}
