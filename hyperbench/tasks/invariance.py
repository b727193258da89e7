"""task=invariance: "Can Deep Networks Learn Invariants?" (Potapov), "Recognition". Train a classifier on rotated digits under a rotation
protocol (rotation= group, hyperbench/rotation.py) and measure whether the restricted digits are
recognised outside their training range.

Training: every draw is rotated afresh on the device, each class within its training range.
Model selection: accuracy on the validation split rotated once (seeded by task.eval_seed) within the
training ranges; the per-epoch test_acc is the same on one fixed rotation of the test split.
Metrics of the best-validation model, averaged over task.eval_repeats random rotations of the test
split: ptest (every digit within its training range) and one per rotation.eval entry (the
restricted digits in that range; restricted34: p34in, pout, pinv). Also the accuracy at every
task.curve_step degrees over the full circle, for the restricted digits and for the others.

Writes metrics.json, history.csv, curves.png, acc_vs_angle.csv, acc_vs_angle.png and model.pt; for a model
with a decoder (`reconstruct`, capsnet) also reconstructions.png (tasks/reconstructions.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

from ..data import DataBundle, Split, dataset_info, load_data
from ..training.engine import Trainer, resolve_device
from ..training.objectives import Objective
from ..files import save_figure, write_text
from ..models import model_from_config
from ..viz.plots import angle_curves_figure, training_curves
from ..data.geometry import rotate
from ..protocols.rotation import RotationProtocol, protocol_views
from .classify import accuracy_eval, classifier_loss
from .common import fit_metrics, fit_recorded, log, param_count, run_header, finish
from .reconstructions import reconstruction_grid


def rotated_once(split: Split, protocol: RotationProtocol, seed: int) -> Split:
    """`split` rotated within the training ranges by a fixed, seeded draw (validation, per-epoch test)."""
    g = torch.Generator(device=split.y.device).manual_seed(seed)
    return Split(rotate(split.x, protocol.sample(split.y, g)), split.y)


def rotated_accuracy(model, x: torch.Tensor, y: torch.Tensor, angles: torch.Tensor, batch_size: int,
                     fmt=lambda t: t) -> float:
    """Accuracy of `model` on x rotated by `angles`, rotating batch by batch."""
    if len(y) == 0:
        return float("nan")
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for i in range(0, len(y), batch_size):
        xb = rotate(x[i:i + batch_size], angles[i:i + batch_size])
        correct += (model(fmt(xb)).argmax(1) == y[i:i + batch_size]).sum()
    return correct.item() / len(y)


def protocol_metrics(model, split: Split, protocol: RotationProtocol, repeats: int, seed: int,
                     batch_size: int, fmt=lambda t: t) -> dict[str, float]:
    """ptest and every rotation.eval metric, each the mean over `repeats` random rotations of `split`
    (repeat r seeded seed + r), with its standard deviation over the repeats as <name>_std."""
    per = {}
    for r in range(repeats):
        g = torch.Generator(device=split.y.device).manual_seed(seed + r)
        for name, x, y, angles in protocol_views(split, protocol, g):
            per.setdefault(name, []).append(rotated_accuracy(model, x, y, angles, batch_size, fmt))
    out = {}
    for name, values in per.items():
        v = torch.tensor(values, dtype=torch.float64)
        out[name] = v.mean().item()
        out[f"{name}_std"] = v.std().item() if len(values) > 1 else 0.0
    return out


def angle_curve(model, split: Split, protocol: RotationProtocol, step: float, max_images: int | None,
                batch_size: int, fmt=lambda t: t) -> pd.DataFrame:
    """Accuracy at each angle -180, -180 + step, ... < 180 for the restricted digits, the others, and
    each digit (columns digit_<d>), on the first `max_images` test images of each group."""
    restricted = protocol.is_restricted(split.y)
    idx = [torch.nonzero(restricted).flatten(), torch.nonzero(~restricted).flatten()]
    if max_images is not None:
        idx = [i[:max_images] for i in idx]
    sel = torch.cat(idx)
    x, y, r = split.x[sel], split.y[sel], restricted[sel]
    rows = []
    n_angles = int(round(360 / step))
    for k in range(n_angles):
        angle = -180.0 + k * step
        pred = torch.cat([model(fmt(rotate(x[i:i + batch_size], angle))).argmax(1)
                          for i in range(0, len(y), batch_size)])
        ok = (pred == y).float()
        row = {"angle": angle, "restricted": ok[r].mean().item(), "others": ok[~r].mean().item()}
        for label, digit in enumerate(protocol.digits):
            row[f"digit_{digit}"] = ok[y == label].mean().item()
        rows.append(row)
    return pd.DataFrame(rows)


def invariance_objective(protocol: RotationProtocol) -> Objective:
    return Objective(
        loss=classifier_loss,
        evaluate=accuracy_eval,
        augment=lambda x, y, g: (rotate(x, protocol.sample(y, g)), y),
        monitor="acc",
    )


def run(cfg: DictConfig, run_dir: Path) -> dict:
    t_start = time.perf_counter()
    shape, dataset_classes = dataset_info(str(cfg.data.name))
    protocol = RotationProtocol.from_config(cfg.get("rotation"), dataset_classes)  # before any work
    model = model_from_config(cfg.model, protocol.num_classes, shape, cfg.get("hypernet"))  # bad model options: before the data too
    device = resolve_device(cfg.trainer.device)
    task = cfg.task
    seed = int(task.eval_seed)
    raw = load_data(cfg.data, device)
    train, val, test = (protocol.select(s) for s in (raw.train, raw.val, raw.test))
    data = DataBundle(raw.name, train, rotated_once(val, protocol, seed), rotated_once(test, protocol, seed + 1),
                      protocol.num_classes)
    header = run_header(cfg, device)
    facts = {
        "rotation": protocol.name, "protocol": protocol.describe(), "digits": list(protocol.digits),
        "restricted": list(protocol.restricted), "eval_repeats": int(task.eval_repeats),
        "total_params": param_count(model), "lr": float(cfg.trainer.lr), "batch_size": int(cfg.trainer.batch_size),
        "train_size": len(train), "val_size": len(val), "test_size": len(test),
    }
    log.info(f"{cfg.model.name} on {raw.name} under rotation={protocol.name} ({protocol.describe()}); "
             f"{len(train)}/{len(val)}/{len(test)} images, {protocol.num_classes} classes, "
             f"params={facts['total_params']} device={device} -> {run_dir}")
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=log.info)
    result = fit_recorded(trainer, model, data, invariance_objective(protocol), cfg, run_dir, {**header, **facts})
    model.load_state_dict(result.best_state)
    model.eval()
    bs = int(cfg.trainer.eval_batch_size)
    t_eval = time.perf_counter()
    with torch.inference_mode():
        scores = protocol_metrics(model, test, protocol, int(task.eval_repeats), seed + 100, bs, trainer.fmt)
        curve = angle_curve(model, test, protocol, float(task.curve_step),
                            None if task.curve_images is None else int(task.curve_images), bs, trainer.fmt)
        grid = {}
        if hasattr(model, "reconstruct"):  # capsnet: its decoder's view of the restricted digits
            grid = {"reconstructions": reconstruction_grid(
                model, test, protocol, list(task.recon_angles), int(task.recon_per_digit),
                run_dir / "reconstructions.png", f"{cfg.model.name}, rotation={protocol.name}: input above "
                f"reconstruction (masked by the predicted digit)", trainer.fmt)}
    metrics = {"status": "ok", **header, **facts, **scores, **fit_metrics(result, int(cfg.trainer.epochs)), **grid,
               "eval_time_s": round(time.perf_counter() - t_eval, 2),
               "run_time_s": round(time.perf_counter() - t_start, 2)}
    write_text(run_dir / "acc_vs_angle.csv", curve.to_csv(index=False))
    finish(cfg, run_dir, metrics, result.best_state)
    title = (f"{cfg.model.name}, rotation={protocol.name}: Ptest {scores['ptest']:.3f}"
             + "".join(f", {k} {scores[k]:.3f}" for k in protocol.eval_ranges))
    save_figure(angle_curves_figure({str(cfg.model.name): curve}, protocol, title), run_dir / "acc_vs_angle.png")
    save_figure(training_curves(pd.DataFrame(result.history), f"{cfg.model.name} under rotation={protocol.name}"),
                run_dir / "curves.png")
    log.info(" ".join(f"{k} {scores[k]:.4f}" for k in ["ptest", *protocol.eval_ranges])
             + f" (best val epoch {result.best_epoch}, {metrics['run_time_s']:.0f}s)")
    return metrics
