"""Time to accuracy: wall seconds for model=hyper5_5 (the CS618-report recipe, the defaults) to first reach a
test accuracy, hyperbench's pipeline against the typical torchvision + DataLoader script (typical.py), back to
back in one process on the same machine. Each side evaluates val and test after every epoch; its clock is the
sum of its epochs' training and evaluation seconds up to the first epoch whose test accuracy reaches the target.

    python benchmarks/time_to_accuracy.py [--targets 0.985,0.99] [--epochs 15] [--model hyper5_5]
"""
from __future__ import annotations

import argparse
import os
import platform

import torch

from bench import classify_case, run_config
from common import config
from hyperbench.data import load_data
from hyperbench.training.engine import Trainer, resolve_device, seed_everything
from hyperbench.models import model_from_config
from typical import typical_epochs


def first_reach(curve: list[tuple[float, float]], target: float) -> tuple[int, float] | None:
    """curve: per epoch (cumulative seconds, test accuracy) -> (epoch 1-based, seconds) of the first epoch
    at or above target, None when no epoch reaches it."""
    for epoch, (seconds, acc) in enumerate(curve, 1):
        if acc >= target:
            return epoch, seconds
    return None


def cumulative(per_epoch: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, total = [], 0.0
    for seconds, acc in per_epoch:
        total += seconds
        out.append((total, acc))
    return out


class _Reached(Exception):
    pass


def interleaved(cfg, device, epochs: int, top: float, log=print) -> tuple[list, list]:
    """Epoch by epoch, alternating: one epoch of hyperbench's engine (train, then val and test), then one epoch of
    the typical script (typical.typical_epochs), so that both see the same load; until both have reached `top`
    or trained `epochs` epochs. Returns both (cumulative seconds, test accuracy) curves."""
    seed_everything(int(cfg.seed))
    data = load_data(cfg.data, device)
    model = model_from_config(cfg.model, data.num_classes, data.shape)
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=lambda s: None)
    typical = typical_epochs(cfg, classify_case(), device, 0)
    ours, typ = [], []

    def after_ours(result):
        row = result.history[-1]
        ours.append((row["epoch_time_s"], row["test_acc"]))
        if not typ or typ[-1][1] < top:
            h = next(typical)
            typ.append((h["train_s"] + h["eval_s"], h["test"]))
        log(f"epoch {len(ours)}: ours {ours[-1][0]:.0f} s, test acc {ours[-1][1]:.4f}; typical "
            f"{typ[-1][0]:.0f} s, {typ[-1][1]:.4f} (load {os.getloadavg()[0]:.1f})")
        if ours[-1][1] >= top and typ[-1][1] >= top:
            raise _Reached

    try:
        trainer.fit(model, data, classify_case()["objective"](cfg), on_epoch=after_ours)
    except _Reached:
        pass
    while typ[-1][1] < top and len(typ) < epochs:  # ours reached it within the budget, typical not yet
        h = next(typical)
        typ.append((h["train_s"] + h["eval_s"], h["test"]))
        log(f"epoch {len(typ)}: typical {typ[-1][0]:.0f} s, {typ[-1][1]:.4f} (load {os.getloadavg()[0]:.1f})")
    return cumulative(ours), cumulative(typ)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hyper5_5")
    ap.add_argument("--targets", default="0.985,0.99")
    ap.add_argument("--epochs", type=int, default=15, help="most epochs each side trains")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    device = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}; load {os.getloadavg()}", flush=True)
    cfg = run_config([f"model={args.model}", "data=mnist"], device, args.epochs)
    ours, typ = interleaved(cfg, device, args.epochs, max(targets), log=lambda s: print(s, flush=True))
    print("ours    (cumulative s, test acc) per epoch:", [(round(s, 1), round(a, 4)) for s, a in ours], flush=True)
    print("typical (cumulative s, test acc) per epoch:", [(round(s, 1), round(a, 4)) for s, a in typ], flush=True)
    for target in targets:
        a, b = first_reach(ours, target), first_reach(typ, target)
        line = f"test acc {100 * target:.1f}%: ours " + (f"epoch {a[0]}, {a[1]:.0f} s" if a else "not reached")
        line += "; typical " + (f"epoch {b[0]}, {b[1]:.0f} s" if b else "not reached")
        if a and b:
            line += f"; typical / ours = {b[1] / a[1]:.2f}x"
        print(line, flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
