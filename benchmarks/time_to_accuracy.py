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
from hyperbench.engine import Trainer, resolve_device, seed_everything
from hyperbench.models import model_from_config
from typical import typical_run


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


def ours_curve(cfg, device, top: float) -> list[tuple[float, float]]:
    """hyperbench's engine on the recipe, stopped after the first epoch at or above `top`."""
    seed_everything(int(cfg.seed))
    data = load_data(cfg.data, device)
    model = model_from_config(cfg.model, data.num_classes, data.shape)
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=lambda s: None)

    def stop(result):
        if result.history[-1]["test_acc"] >= top:
            raise _Reached

    try:
        trainer.fit(model, data, classify_case()["objective"](cfg), on_epoch=stop)
    except _Reached:
        pass
    return cumulative([(r["epoch_time_s"], r["test_acc"]) for r in trainer.result.history])


def typical_curve(cfg, device, epochs: int, top: float) -> list[tuple[float, float]]:
    res = typical_run(cfg, classify_case(), device, epochs, 0, stop=lambda h: h[-1]["test"] >= top)
    return cumulative([(h["train_s"] + h["eval_s"], h["test"]) for h in res["history"]])


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
    ours = ours_curve(cfg, device, max(targets))
    print("ours    (cumulative s, test acc) per epoch:", [(round(s, 1), round(a, 4)) for s, a in ours], flush=True)
    typ = typical_curve(cfg, device, args.epochs, max(targets))
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
