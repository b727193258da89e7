"""task=summary: the model's parameter breakdown, without data or training; with task.time_steps=N also
seconds per epoch, measured by timing N training steps on random data of the dataset's shape."""
from __future__ import annotations

from pathlib import Path

import torch

from omegaconf import DictConfig

from ..data import dataset_info
from ..files import write_text
from ..models import model_from_config
from ..hyper import GeneratedWeight, KernelGenerator, layer_table, parameter_counts
from .common import hypernet_label, param_count, finish

# training images of each dataset before the validation split is taken out (for steps per epoch)
TRAIN_IMAGES = {"mnist": 60000, "cifar10": 50000}


def _table(rows: list[tuple], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(f"{str(v):>{w}}" if i in right else f"{str(v):<{w}}"
                      for i, (v, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def describe(model, title: str) -> str:
    """Every module that owns parameters, then (for a hypernetwork) each generated layer with its
    kernel shape and tiles, and the CS618-report conv-parameter count."""
    rows = [("module", "type", "parameters", "notes")]
    for name, mod in model.named_modules():
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        if not own:
            continue
        note = ""
        if isinstance(mod, GeneratedWeight):
            g = mod.generator[0]
            piece = f"chunk(s) of {g.out_size:,}" if g.flat else f"tile(s) of {g.out_size}x{g.in_size}"
            learned = " + theta_0" if mod.theta0 is not None else ""
            learned += " + code encoder" if mod.encoder is not None else ""
            note = (f"{mod.kind} weight {tuple(mod.weight.shape)} generated from {mod.num_tiles} {piece}; "
                    f"learned: embeddings {tuple(mod.z.shape)}{learned} + bias")
        elif isinstance(mod, KernelGenerator):
            what = (f"flat chunks of {mod.out_size:,}" if mod.flat else
                    f"{mod.out_size}x{mod.in_size}x{mod.ksize}x{mod.ksize} tiles")
            note = (f"hypernetwork: N_z={mod.z_dim}, d={mod.d}, makes {what}; init={mod.init}, param={mod.param}, "
                    f"conditioning={mod.conditioning}")
        elif getattr(mod, "weight", None) is not None:
            note = f"weight {tuple(mod.weight.shape)}"
        else:  # parameters of the model itself (capsnet's routing transforms W)
            note = ", ".join(f"{n} {tuple(p.shape)}" for n, p in mod.named_parameters(recurse=False))
        rows.append((name or "(model)", type(mod).__name__, f"{own:,}", note))
    rows.append(("total", "", f"{param_count(model):,}", ""))
    lines = [title, ""] + _table(rows, {2})
    layers = layer_table(model)
    if layers:
        c = parameter_counts(model)
        piece = "chunks" if layers[0]["flat"] else "tiles"
        rows = [("generated layer", "kernel", f"{piece} (embeddings)", "embedding parameters")]
        rows += [(r["layer"], "x".join(map(str, r["kernel"])), r["tiles"], f"{r['embedding_params']:,}") for r in layers]
        rows.append(("all", "", sum(r["tiles"] for r in layers), f"{c['embeddings']:,}"))
        extra = "".join(f" + {k} {c[k]:,}" for k, label in (("encoders", "encoders"), ("theta0", "theta_0")) if c[k])
        lines += ["", *_table(rows, {2, 3}), "", f"hypernetwork parameters: {c['generator']:,}; embeddings: {c['embeddings']:,}",
                  f"parameters: generator {c['generator']:,} + embeddings {c['embeddings']:,}{extra} + ordinary layers "
                  f"{c['ordinary']:,} = {c['total']:,}; the original model: {c['original']:,} "
                  f"({c['total'] / c['original']:.3f}x)"]
    if hasattr(model, "conv_params"):
        lines += ["", f"conv parameters (as counted in Vineet, CS618 report): {model.conv_params():,}"]
    return "\n".join(lines) + "\n"


def epoch_time(cfg: DictConfig, model, shape: tuple[int, int, int], num_classes: int) -> tuple[dict, str]:
    """Seconds per epoch, estimated: task.time_warmup untimed then task.time_steps timed training steps
    (the classify/invariance loss, the trainer's optimizer, batch size, device and memory format) on random
    images of `shape`, times the steps in an epoch (task.time_train_size, default the dataset's training split
    after data.val_size and data.train_size, over the batch size). Data loading and evaluation not included."""
    from ..training.engine import Trainer, resolve_device
    from .classify import classifier_loss
    from .transform import transform_loss

    steps, warmup = int(cfg.task.time_steps), int(cfg.task.get("time_warmup", 1))
    n = cfg.task.get("time_train_size")
    if n is None:
        n = TRAIN_IMAGES[str(cfg.data.name)] - int(cfg.data.val_size)
        if cfg.data.get("train_size") is not None:
            n = min(n, int(cfg.data.train_size))
    device = resolve_device(cfg.trainer.device)
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=lambda _: None)
    bs = int(cfg.trainer.batch_size)
    g = torch.Generator().manual_seed(int(cfg.seed))
    x = torch.rand(bs, *shape, generator=g).to(device)
    width = condition_width(model)
    if width is None:  # a classifier: random labels
        loss, what = classifier_loss, "classification loss"
        y = torch.randint(0, num_classes, (bs,), generator=g).to(device)
    else:  # a transform model: (target image, [condition]) as task=transform's training pairs
        loss, what = transform_loss, f"transform loss, a condition of {width} parameters"
        y = ((torch.rand(bs, *shape, generator=g) * 2 - 1).to(device),
             [torch.rand(bs, width, generator=g).to(device)])
    per_step = trainer.step_seconds(model.to(device), loss, x, y, steps, warmup)
    per_epoch = per_step * (int(n) // bs)
    facts = {"seconds_per_step": round(per_step, 4), "seconds_per_epoch_est": round(per_epoch, 1),
             "time_steps": steps, "threads": torch.get_num_threads(), "train_images": int(n), "batch_size": bs}
    line = (f"seconds per epoch (estimate): {per_epoch:,.0f} s = {int(n) // bs} steps x {per_step:.3f} s/step, "
            f"timed over {steps} steps after {warmup} warm-up, batch {bs}, {int(n):,} training images, "
            f"device {device}, {trainer.precision}, {torch.get_num_threads()} thread(s), channels_last "
            f"{trainer.channels_last}, {what}; "
            f"training steps only (no evaluation, no data loading)")
    return facts, line


def condition_width(model) -> int | None:
    """Parameters a transform model's condition has (its ParamControl's input), None for a classifier."""
    from ..models.conditional import ParamControl

    widths = [m.in_features for m in model.modules() if isinstance(m, ParamControl)]
    return widths[0] if widths else None


def run(cfg: DictConfig, run_dir: Path) -> dict:
    shape, num_classes = dataset_info(str(cfg.data.name))
    model = model_from_config(cfg.model, num_classes, shape, cfg.get("hypernet"))
    title = (f"{cfg.model.name} (arch {cfg.model.arch}) for {cfg.data.name}: input "
             f"{'x'.join(map(str, shape))}, {num_classes} classes")
    hyper = hypernet_label(cfg)
    if hyper:
        title += f"; {hyper}"
    text = describe(model, title)
    facts = {f"hyper_{k}_params": v for k, v in parameter_counts(model).items()} if layer_table(model) else {}
    if int(cfg.task.get("time_steps") or 0) > 0:
        timing, line = epoch_time(cfg, model, shape, num_classes)
        facts.update(timing)
        text += "\n" + line + "\n"
    print(text, end="")
    write_text(run_dir / "summary.txt", text)
    metrics = {"status": "summary", "task": "summary", "data": str(cfg.data.name), "model": str(cfg.model.name),
               "seed": int(cfg.seed), "total_params": param_count(model),
               "conv_params": model.conv_params() if hasattr(model, "conv_params") else None, **facts}
    return finish(cfg, run_dir, metrics)  # its own status "summary": the report lists it apart, never as a failure
