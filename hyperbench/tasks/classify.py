"""task=classify: train a classifier with best-validation model selection.

Writes metrics.json (val_acc at the best-validation epoch, test_acc at that epoch, parameter
counts, time, device), history.csv, curves.png, filters.png and model.pt into the run directory.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ..data.geometry import random_crop
from ..data import Split, load_data
from ..training.engine import Trainer, resolve_device
from ..training.objectives import Objective
from ..files import save_figure
from ..models import model_from_config
from ..viz.plots import kernels_figure, labelled_kernels, training_curves
from ..report.published import row_label
from ..runs import model_from_run
from .common import fit_metrics, hypernet_label, fit_recorded, log, param_count, run_header, finish


def classifier_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of a classifier: the model's own `training_loss(x, y)` when it has one
    (capsule networks: margin loss + reconstruction, spread loss), else cross-entropy of model(x)."""
    own = getattr(model, "training_loss", None)
    return own(x, y) if own is not None else F.cross_entropy(model(x), y)


def score_loss(model, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed evaluation loss of class scores: the model's `score_loss(scores, y)` (summed over the batch)
    when it has one (e.g. margin loss on capsule lengths), else summed cross-entropy of the logits."""
    own = getattr(model, "score_loss", None)
    return own(scores.float(), y) if own is not None else F.cross_entropy(scores.float(), y, reduction="sum")


def accuracy_eval(model, split: Split, batch_size: int) -> dict[str, float]:
    """Mean loss (cross-entropy, or the model's score_loss) and accuracy (argmax of the scores) over a
    split, in large batches; one device sync at the end."""
    loss = torch.zeros((), device=split.y.device)
    correct = torch.zeros((), device=split.y.device, dtype=torch.long)
    for i in range(0, len(split), batch_size):
        logits = model(split.x[i:i + batch_size])
        y = split.y[i:i + batch_size]
        loss += score_loss(model, logits, y)
        correct += (logits.argmax(1) == y).sum()
    n = max(1, len(split))
    return {"loss": loss.item() / n, "acc": correct.item() / n}


def classification_objective(cfg: DictConfig) -> Objective:
    pad = int(cfg.data.augment.pad)
    return Objective(
        loss=classifier_loss,
        evaluate=accuracy_eval,
        augment=(lambda x, y, g: (random_crop(x, pad, g), y)) if pad > 0 else None,
        monitor="acc",
    )


def kernel_panels(cfg: DictConfig, model) -> dict:
    """This run's kernels, after those of task.compare_with (a finished run, e.g. a ConvModel) if set:
    Figure 2 of Vineet's CS618 report puts learned filters beside the hypernetwork's."""
    panels = {}
    if cfg.task.get("compare_with"):
        ref_cfg, ref = model_from_run(cfg.task.compare_with)
        panels.update(labelled_kernels(ref, row_label(str(ref_cfg.model.name))))
    panels.update(labelled_kernels(model, row_label(str(cfg.model.name))))
    return panels


def run(cfg: DictConfig, run_dir: Path) -> dict:
    device = resolve_device(cfg.trainer.device)
    data = load_data(cfg.data, device)
    model = model_from_config(cfg.model, data.num_classes, data.shape, cfg.get("hypernet"))
    header = run_header(cfg, device)
    counts = {
        "conv_params": model.conv_params() if hasattr(model, "conv_params") else None,
        "total_params": param_count(model),
        "lr": float(cfg.trainer.lr),
        "batch_size": int(cfg.trainer.batch_size),
        "train_size": len(data.train), "val_size": len(data.val), "test_size": len(data.test),
    }
    if hypernet_label(cfg):
        counts["hypernet"] = hypernet_label(cfg)
    label = row_label(str(cfg.model.name)) + (f" [{hypernet_label(cfg)}]" if hypernet_label(cfg) else "")
    log.info(f"{label} on {data.name} ({len(data.train)}/{len(data.val)}/{len(data.test)}) "
             f"device={device} params={counts['total_params']} conv_params={counts['conv_params']} -> {run_dir}")
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=log.info)
    result = fit_recorded(trainer, model, data, classification_objective(cfg), cfg, run_dir, {**header, **counts})
    model.load_state_dict(result.best_state)
    metrics = {"status": "ok", **header, **counts, **fit_metrics(result, int(cfg.trainer.epochs))}
    finish(cfg, run_dir, metrics, result.best_state)
    title = f"{label} on {data.name}: test acc {100 * metrics['test_acc']:.2f}% at best val epoch {result.best_epoch}"
    save_figure(training_curves(pd.DataFrame(result.history), title), run_dir / "curves.png")
    if hasattr(model, "kernels"):
        save_figure(kernels_figure(kernel_panels(cfg, model)), run_dir / "filters.png")
    log.info(f"val_acc {metrics['val_acc']:.4f} test_acc {metrics['test_acc']:.4f} (epoch {result.best_epoch}) "
             f"in {metrics['wall_time_s']:.0f}s")
    return metrics
