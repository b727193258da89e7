"""task=summary: the model's parameter breakdown, without data or training."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..data import dataset_info
from ..files import write_text
from ..models import model_from_config
from ..models.hyper import HyperConv2d, KernelGenerator
from .common import param_count


def _table(rows: list[tuple], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(f"{str(v):>{w}}" if i in right else f"{str(v):<{w}}"
                      for i, (v, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def describe(model, title: str) -> str:
    """Every module that owns parameters, then (for a hypernetwork) each generated layer with its
    kernel shape and tiles, and the seed-002 conv-parameter count."""
    rows = [("module", "type", "parameters", "notes")]
    for name, mod in model.named_modules():
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        if not own:
            continue
        note = ""
        if isinstance(mod, HyperConv2d):
            g = mod.generator[0]
            note = (f"kernel {tuple(mod.weight.shape)} generated from {mod.num_tiles} tile(s) of "
                    f"{g.out_size}x{g.in_size}; learned: embeddings {tuple(mod.z.shape)} + bias")
        elif isinstance(mod, KernelGenerator):
            note = f"hypernetwork: N_z={mod.z_dim}, d={mod.d}, makes {mod.out_size}x{mod.in_size}x{mod.ksize}x{mod.ksize} tiles"
        elif getattr(mod, "weight", None) is not None:
            note = f"weight {tuple(mod.weight.shape)}"
        rows.append((name, type(mod).__name__, f"{own:,}", note))
    rows.append(("total", "", f"{param_count(model):,}", ""))
    lines = [title, ""] + _table(rows, {2})
    layers = model.generated_layers() if hasattr(model, "generated_layers") else []
    if layers:
        gen = sum(p.numel() for p in model.hypernet.parameters())
        emb = sum(r["embedding_params"] for r in layers)
        rows = [("generated layer", "kernel", "tiles (embeddings)", "embedding parameters")]
        rows += [(r["layer"], "x".join(map(str, r["kernel"])), r["tiles"], f"{r['embedding_params']:,}") for r in layers]
        rows.append(("all", "", sum(r["tiles"] for r in layers), f"{emb:,}"))
        lines += ["", *_table(rows, {2, 3}), "", f"hypernetwork parameters: {gen:,}; embeddings: {emb:,}"]
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
