"""`make bench`: hyperbench's pipeline against the one a typical PyTorch script uses, side by side.

For each case the same model, batch size, optimizer, lr schedule and number of epochs run twice:
  ours    : the whole dataset as one tensor on the device, batched on-device augmentation,
            channels_last, the shared engine (hyperbench.training.engine.Trainer), evaluation in big batches
            under inference_mode;
  typical : torchvision.datasets + transforms (Pad, RandomCrop / per-image rotate) + DataLoader,
            default memory format, evaluation in DataLoader batches under no_grad.
Both evaluate val and test after every epoch, as a training script with model selection does.
It prints wall time per epoch, images per second, the ratio, and both test accuracies; then the
conv model's achieved GFLOP/s against the machine's fp32 matmul rate (and a profile of the top
operators when below 40%), and batched rotation of 10,000 images against torchvision's per-image
rotate. For each case it also says where the time goes: the typical loader alone (no model) and our
model steps alone on one fixed batch (no data work), whose ratio to the typical epoch is the ceiling
any pipeline could reach with this model step. --ablate switches engine settings (channels_last,
compile, amp) one at a time. Ratios, not absolute seconds, are the result: run it on a quiet machine.
The typical pipeline is in typical.py, the machine limits in limits.py.

    python benchmarks/bench.py [--cases conv,hyper5_5,cnn,ae] [--epochs 1] [--device auto]
                               [--ablate "channels_last off,compile,amp bf16"] [--families all] [--steps 3]
                               [--precision fp32]
Last, the per-family table (families.py): every model family's training step, its FLOPs and bytes moved
against the measured matmul rate and memory-copy bandwidth (--families none skips it).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from common import config, sync
from hyperbench.data import DataBundle, Split, load_data
from hyperbench.training.engine import Trainer, resolve_device, seed_everything
from hyperbench.models import MODELS, model_from_config
from hyperbench.tasks.classify import classification_objective
from limits import conv_step_gflops, matmul_gflops, rotation_speed
from typical import Rotated, data_only_s, typical_accuracy, typical_mse, typical_run

# --ablate: engine settings switched one at a time against ours' defaults (trainer.* overrides)
ABLATIONS = {"channels_last off": ["trainer.channels_last=false"], "compile": ["trainer.compile=true"],
             "amp bf16": ["trainer.amp=bf16"], "amp off": ["trainer.amp=off"]}


# ---------------------------------------------------------------- hyperbench's pipeline
def ours_run(cfg, case, device, epochs: int) -> dict:
    """The engine trains with one-batch val/test splits, so its epoch time is the training time;
    then val + test are evaluated as the engine does after every epoch, and timed apart."""
    seed_everything(int(cfg.seed))
    data = case.get("prepare", lambda d: d)(load_data(cfg.data, device))
    model = case["build"](cfg) if "build" in case else model_from_config(cfg.model, data.num_classes, data.shape)
    tiny = int(cfg.trainer.batch_size)
    fit_data = DataBundle(data.name, data.train, Split(data.val.x[:tiny], data.val.y[:tiny]),
                          Split(data.test.x[:tiny], data.test.y[:tiny]), data.num_classes)
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=lambda s: None)
    objective = case["objective"](cfg)
    res = trainer.fit(model, fit_data, objective)
    t0 = time.perf_counter()
    metrics = {s: trainer.evaluate(model, getattr(data, s), objective) for s in ("val", "test")}
    sync(device)
    eval_s = time.perf_counter() - t0
    return {"train_s": min(r["epoch_time_s"] for r in res.history), "eval_s": eval_s,
            "test": metrics["test"][case["metric"]], "train_images": len(data.train),
            "eval_images": len(data.val) + len(data.test)}


def fixed_batch(cfg, case, device):
    """(trainer, model on the device, loss, x, y, steps per epoch, batch) for the run's recipe, on one fixed,
    already augmented batch."""
    seed_everything(int(cfg.seed))
    data = case.get("prepare", lambda d: d)(load_data(cfg.data, device))
    model = case["build"](cfg) if "build" in case else model_from_config(cfg.model, data.num_classes, data.shape)
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=lambda s: None)
    objective = case["objective"](cfg)
    bs = int(cfg.trainer.batch_size)
    x, y = data.train.x[:bs], data.train.y[:bs]
    if objective.augment is not None:
        x, y = objective.augment(x, y, torch.Generator(device=device).manual_seed(0))
    return trainer, model.to(device), objective.loss, x, y, len(data.train) // bs, bs


def step_only_s(cfg, case, device, steps: int = 8) -> float:
    """Seconds an epoch of our training steps takes on one fixed, already augmented batch: the model's
    forward + backward + optimizer step alone, no data work. No pipeline can train faster than this."""
    trainer, model, loss, x, y, per_epoch, _ = fixed_batch(cfg, case, device)
    return trainer.step_seconds(model, loss, x, y, steps, warmup=2) * per_epoch


# ---------------------------------------------------------------- the cases
def classify_case() -> dict:
    return {"objective": classification_objective, "metric": "acc", "num_classes": 10,
            "typical_loss": lambda m, x, y: F.cross_entropy(m(x), y), "typical_metric": typical_accuracy}


def invariance_case(cfg_overrides: list[str]) -> dict:
    """Potapov's invariance article protocol: 6 and 9 removed, 3 and 4 rotated within [-45, 45], the others in [0, 360),
    every training draw rotated afresh (ours: batched on the device; typical: per image)."""
    from hyperbench.data import DataBundle
    from hyperbench.protocols.rotation import RotationProtocol
    from hyperbench.tasks.invariance import invariance_objective, rotated_once

    protocol = RotationProtocol.from_config(config(*cfg_overrides).rotation)
    remap = {d: i for i, d in enumerate(protocol.digits)}
    lo_hi = {remap[d]: protocol.restricted_range for d in protocol.restricted}

    def prepare(raw):
        tr, va, te = (protocol.select(s) for s in (raw.train, raw.val, raw.test))
        return DataBundle(raw.name, tr, rotated_once(va, protocol, 0), rotated_once(te, protocol, 1), protocol.num_classes)

    class Remapped(Dataset):  # the typical script's digit filter and relabelling
        def __init__(self, base):
            targets = base.dataset.targets[base.indices] if isinstance(base, Subset) else base.targets
            self.base, self.keep = base, [i for i, t in enumerate(targets.tolist()) if t in remap]

        def __len__(self):
            return len(self.keep)

        def __getitem__(self, i):
            x, y = self.base[self.keep[i]]
            return x, remap[int(y)]

    return {"objective": lambda cfg: invariance_objective(protocol), "metric": "acc", "prepare": prepare,
            "num_classes": protocol.num_classes, "crop": False,
            "typical_wrap": lambda ds: Rotated(Remapped(ds), lo_hi, protocol.others_range, target=False),
            "typical_loss": lambda m, x, y: F.cross_entropy(m(x), y), "typical_metric": typical_accuracy}


def transform_case(cfg_overrides: list[str]) -> dict:
    """Potapov's HyperNets article rotate: input image and (cos a, sin a) -> the image rotated by a; 4 and 9 within
    [-45, 45], the others in [-180, 180) (ours: pairs made batched on the device; typical: per image)."""
    from hyperbench.protocols.families import transform_of
    from hyperbench.tasks.transform import build_model, transform_objective

    cfg0 = config(*cfg_overrides)
    tf = transform_of(cfg0)
    protocol = tf.protocol
    ranges = {d: protocol.restricted_range for d in protocol.restricted}
    return {"objective": lambda cfg: transform_objective(transform_of(cfg), 0), "metric": "loss", "num_classes": 10,
            "build": lambda cfg: build_model(cfg, transform_of(cfg)), "crop": False,
            "typical_wrap": lambda ds: Rotated(ds, ranges, protocol.others_range, target=True,
                                               fill=float(cfg0.data.scale[0])),
            "typical_loss": lambda m, x, y: F.mse_loss(m(x, y[1]), y[0]), "typical_metric": typical_mse}


def cases() -> dict[str, tuple[list[str], dict]]:
    """name -> (overrides, case), for the models this checkout has."""
    out = {
        "conv": (["model=conv", "data=mnist"], classify_case),
        "hyper5_5": (["model=hyper5_5", "data=mnist"], classify_case),
    }
    if "cnn" in MODELS:
        inv = ["task=invariance", "model=cnn", "data=mnist", "rotation=restricted34"]
        out["cnn"] = (inv, lambda: invariance_case(inv))
    if "transform_ae" in MODELS:
        tr = ["task=transform", "model=ae", "data=mnist", "rotation=restricted49", "transform=rotate"]
        out["ae"] = (tr, lambda: transform_case(tr))
    return out


def run_config(overrides, device, epochs):
    return config(*overrides, f"trainer.epochs={epochs}", f"trainer.device={device}", "trainer.progress=false")


def warm_up(overrides, case, device) -> None:
    """Two untimed batches of `overrides`, so that one-time costs (kernel selection and caches for these
    shapes, lazy initialisation) do not land in whichever configuration happens to be timed first."""
    bs = int(run_config(overrides, device, 1).trainer.batch_size)
    small = [o for o in overrides if not o.startswith("data.train_size=")] + [f"data.train_size={2 * bs}"]
    ours_run(run_config(small, device, 1), case, device, 1)


def compare(name, overrides, case, device, epochs, workers, ablate: list[str]) -> dict:
    for variant in [[], *(ABLATIONS[label] for label in ablate)]:
        warm_up(overrides + variant, case, device)
    cfg = run_config(overrides, device, epochs)
    ours = ours_run(cfg, case, device, epochs)
    typ = typical_run(cfg, case, device, epochs, workers)
    ratio = typ["train_s"] / ours["train_s"]
    eval_ratio = typ["eval_s"] / ours["eval_s"]
    unit = "acc" if case["metric"] == "acc" else "loss"
    fmt = (lambda v: f"{100 * v:.2f}%") if unit == "acc" else (lambda v: f"{v:.4f}")
    print(f"{name:<9} batch {cfg.trainer.batch_size:>4}  train: ours {ours['train_images'] / ours['train_s']:6.0f} img/s, "
          f"typical {typ['train_images'] / typ['train_s']:6.0f} img/s = {ratio:5.2f}x   eval (val+test): "
          f"{eval_ratio:5.2f}x   test {unit} after {epochs} epoch(s): ours {fmt(ours['test'])}, "
          f"typical {fmt(typ['test'])}", flush=True)
    data_s, step_s = data_only_s(cfg, case, workers), step_only_s(cfg, case, device)
    print(f"{'':<9} where the time goes: typical epoch {typ['train_s']:.1f} s, its loader alone {data_s:.1f} s "
          f"({100 * data_s / typ['train_s']:.0f}%); our model steps alone {step_s:.1f} s of our {ours['train_s']:.1f} s "
          f"({100 * step_s / ours['train_s']:.0f}%). Ceiling: no pipeline with this model step beats typical by more "
          f"than {typ['train_s'] / step_s:.2f}x; ours reaches {ratio / (typ['train_s'] / step_s):.0%} of it.", flush=True)
    for label in ablate:
        var = ours_run(run_config(overrides + ABLATIONS[label], device, epochs), case, device, epochs)
        print(f"{'':<9} ablation {label:<17}: ours {var['train_images'] / var['train_s']:6.0f} img/s = "
              f"{ours['train_s'] / var['train_s']:5.2f}x ours' default, {typ['train_s'] / var['train_s']:5.2f}x typical; eval {ours['eval_s'] / var['eval_s']:5.2f}x; "
              f"test {unit} {fmt(var['test'])}", flush=True)
    return {"case": name, "ratio": ratio, **{f"ours_{k}": v for k, v in ours.items()},
            **{f"typical_{k}": v for k, v in typ.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="conv,hyper5_5,cnn,ae", help="comma-separated; unknown ones are listed")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the typical pipeline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-size", type=int, default=None, help="cap on training images (quick checks)")
    ap.add_argument("--ablate", default="", help=f"comma-separated engine settings to switch one at a time "
                                                  f"against ours' defaults: {', '.join(ABLATIONS)}")
    ap.add_argument("--families", default="all", help="per-family table: comma-separated families, all, or none")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per family in the per-family table")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="per-family table's precision")
    args = ap.parse_args()
    ablate = [a.strip() for a in args.ablate.split(",") if a.strip()]
    unknown = [a for a in ablate if a not in ABLATIONS]
    if unknown:
        ap.error(f"unknown --ablate {', '.join(unknown)}; known: {', '.join(ABLATIONS)}")
    device = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""), flush=True)
    known = cases()
    for name in ([] if args.cases == "none" else args.cases.split(",")):
        if name not in known:
            print(f"{name:<10} skipped: no such case here (known: {', '.join(known)})")
            continue
        overrides, make_case = known[name]
        cap = [] if args.train_size is None else [f"data.train_size={args.train_size}"]
        compare(name, overrides + cap, make_case(), device, args.epochs, args.workers, ablate)

    mm = matmul_gflops(device)
    rate, table, flops, per_step = conv_step_gflops(device)
    frac = rate / mm
    print(f"\nfp32 matmul 2048x2048: {mm:.1f} GFLOP/s. ConvModel training step (batch 1000, "
          f"{flops / 1e9:.2f} GFLOP): {per_step * 1e3:.0f} ms = {rate:.1f} GFLOP/s = {100 * frac:.0f}% of matmul")
    if frac < 0.4:
        print("below 40% of the matmul rate; where the time goes (3 steps):")
        print(conv_step_gflops(device, profile=True)[1])
    r = rotation_speed(device)
    print(f"rotate 10,000 images of 28x28 by random angles: batched on {device.type} {r['batched'] * 1e3:.1f} ms; "
          f"torchvision per image on tensors {r['tensor'] * 1e3:.0f} ms ({r['tensor'] / r['batched']:.0f}x), "
          f"on PIL images {r['pil'] * 1e3:.0f} ms ({r['pil'] / r['batched']:.0f}x)")
    if args.families != "none":
        import families

        names = list(families.FAMILIES) if args.families == "all" else args.families.split(",")
        families.table(names, device, args.precision, args.steps)


if __name__ == "__main__":
    main()
