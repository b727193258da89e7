"""`make bench`: hyperbench's pipeline against the one a typical PyTorch script uses, side by side.

For each case the same model, batch size, optimizer, lr schedule and number of epochs run twice:
  ours    : the whole dataset as one tensor on the device, batched on-device augmentation,
            channels_last, the shared engine (hyperbench.engine.Trainer), evaluation in big batches
            under inference_mode;
  typical : torchvision.datasets + transforms (Pad, RandomCrop / per-image rotate) + DataLoader,
            default memory format, evaluation in DataLoader batches under no_grad.
Both evaluate val and test after every epoch, as a training script with model selection does.
It prints wall time per epoch, images per second, the ratio, and both test accuracies; then the
conv model's achieved GFLOP/s against the machine's fp32 matmul rate (and a profile of the top
operators when below 40%), and batched rotation of 10,000 images against torchvision's per-image
rotate. Ratios, not absolute seconds, are the result: run it on a quiet machine.

    python benchmarks/bench.py [--cases conv,hyper5_5,cnn,ae] [--epochs 1] [--device auto]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, Dataset, Subset

from hyperbench.cli import CONF_DIR
from hyperbench.data import DataBundle, Split, load_data
from hyperbench.engine import Trainer, make_optimizer, make_schedule, resolve_device, seed_everything
from hyperbench.models import MODELS, model_from_config
from hyperbench.tasks.classify import classification_objective


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- the typical pipeline
class Rotated(Dataset):
    """Per-image random rotation in __getitem__, as a typical script does it (torchvision's functional
    rotate on one image at a time), with a per-digit angle range for the seed-001 protocol."""

    def __init__(self, base, ranges: dict[int, tuple[float, float]], default: tuple[float, float], target: bool,
                 fill: float = 0.0):
        self.base, self.ranges, self.default, self.target, self.fill = base, ranges, default, target, fill

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        import torchvision.transforms.functional as TF

        x, y = self.base[i]
        lo, hi = self.ranges.get(int(y), self.default)
        angle = lo + (hi - lo) * torch.rand(()).item()
        if self.target:  # transform task: (input, rotated target, cos, sin)
            out = TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR, fill=[self.fill])
            a = math.radians(angle)
            return x, (out, torch.tensor([math.cos(a), math.sin(a)]))
        return TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR), y


def typical_run(cfg, case, device, epochs: int, workers: int) -> dict:
    """The usual script: torchvision dataset + transforms + DataLoader, plain training loop."""
    import torchvision.transforms as T
    from torchvision.datasets import MNIST

    root = str(cfg.data.root)
    pad = int(cfg.data.augment.pad)
    aug = [T.Pad(pad), T.RandomCrop(28)] if case.get("crop", True) and pad > 0 else []
    scale = list(cfg.data.scale)
    norm = [T.Normalize([-scale[0] / (scale[1] - scale[0])], [1 / (scale[1] - scale[0])])] if scale != [0.0, 1.0] else []
    train_full = MNIST(root, train=True, transform=T.Compose(aug + [T.ToTensor()] + norm))
    plain_full = MNIST(root, train=True, transform=T.Compose([T.ToTensor()] + norm))
    test = MNIST(root, train=False, transform=T.Compose([T.ToTensor()] + norm))
    perm = torch.randperm(len(train_full), generator=torch.Generator().manual_seed(int(cfg.data.split_seed)))
    n_val = int(cfg.data.val_size)
    train_idx, val_idx = perm[n_val:], perm[:n_val]
    if cfg.data.train_size is not None:
        train_idx = train_idx[: int(cfg.data.train_size)]
    train, val = Subset(train_full, train_idx.tolist()), Subset(plain_full, val_idx.tolist())
    if case.get("typical_wrap"):
        train = case["typical_wrap"](train)
        val = case["typical_wrap"](val)
        test = case["typical_wrap"](test)
    bs = int(cfg.trainer.batch_size)
    loader = DataLoader(train, batch_size=bs, shuffle=True, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0)
    seed_everything(int(cfg.seed))
    model = (case["build"](cfg) if "build" in case else model_from_config(cfg.model, case["num_classes"], (1, 28, 28))).to(device)
    opt = make_optimizer(list(model.parameters()), cfg.trainer)
    sched = make_schedule(opt, cfg.trainer)
    loss_fn, metric = case["typical_loss"], case["typical_metric"]
    train_s, eval_s = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in loader:
            x, y = x.to(device), to_device(y, device)
            loss = loss_fn(model, x, y)
            opt.zero_grad()
            loss.backward()
            if cfg.trainer.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.grad_clip))
            opt.step()
            sched.step()
        sync(device)
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            results = {name: metric(model, DataLoader(ds, batch_size=bs, num_workers=workers), device)
                       for name, ds in (("val", val), ("test", test))}
        sync(device)
        train_s.append(t1 - t0)
        eval_s.append(time.perf_counter() - t1)
    return {"train_s": min(train_s), "eval_s": min(eval_s), "test": results["test"], "train_images": len(train),
            "eval_images": len(val) + len(test)}


def to_device(y, device):
    return tuple(t.to(device) for t in y) if isinstance(y, (tuple, list)) else y.to(device)


def typical_accuracy(model, loader, device) -> float:
    correct = n = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        n += len(y)
    return correct / n


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


# ---------------------------------------------------------------- the cases
def classify_case() -> dict:
    return {"objective": classification_objective, "metric": "acc", "num_classes": 10,
            "typical_loss": lambda m, x, y: F.cross_entropy(m(x), y), "typical_metric": typical_accuracy}


def invariance_case(cfg_overrides: list[str]) -> dict:
    """Seed 001 protocol: 6 and 9 removed, 3 and 4 rotated within [-45, 45], the others in [0, 360),
    every training draw rotated afresh (ours: batched on the device; typical: per image)."""
    from hyperbench.data import DataBundle
    from hyperbench.rotation import RotationProtocol
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


def typical_mse(model, loader, device) -> float:
    total = n = 0.0
    for x, (target, cond) in loader:
        out = model(x.to(device), cond.to(device))
        total += F.mse_loss(out, target.to(device), reduction="sum").item() / target[0].numel()
        n += len(x)
    return total / n


def transform_case(cfg_overrides: list[str]) -> dict:
    """Seed 000 rotate: input image and (cos a, sin a) -> the image rotated by a; 4 and 9 within
    [-45, 45], the others in [-180, 180) (ours: pairs made batched on the device; typical: per image)."""
    from hyperbench.tasks.transform import build_model, transform_objective, transform_of

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
        inv = ["task=invariance", "model=cnn", "data=mnist", "rotation=seed001"]
        out["cnn"] = (inv, lambda: invariance_case(inv))
    if "transform_ae" in MODELS:
        tr = ["task=transform", "model=ae", "data=mnist", "rotation=seed000", "transform=rotate"]
        out["ae"] = (tr, lambda: transform_case(tr))
    return out


def compare(name, overrides, case, device, epochs, workers) -> dict:
    cfg = config(*overrides, f"trainer.epochs={epochs}", f"trainer.device={device}", "trainer.progress=false")
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
    return {"case": name, "ratio": ratio, **{f"ours_{k}": v for k, v in ours.items()},
            **{f"typical_{k}": v for k, v in typ.items()}}


# ---------------------------------------------------------------- machine limits
def matmul_gflops(device, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def conv_step_gflops(device, batch: int = 1000, steps: int = 10, profile: bool = False) -> tuple[float, str]:
    """Achieved GFLOP/s of one training step (forward + backward + Adam) of the seed-002 ConvModel,
    in hyperbench's layout (channels_last on CPU/CUDA)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = config("model=conv", "data=mnist")
    model = model_from_config(cfg.model, 10, (1, 28, 28)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(2):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    per_step = (time.perf_counter() - t0) / steps
    table = ""
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with prof(activities=acts) as p:
            for _ in range(3):
                step()
        table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return flops / per_step / 1e9, table, flops, per_step


def rotation_speed(device, n: int = 10000) -> dict[str, float]:
    """Seconds to rotate n 28x28 images by random angles: batched on the device (hyperbench) vs
    torchvision's rotate called per image, on tensors and on PIL images (what a Dataset with
    transforms.RandomRotation does to MNIST)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from hyperbench.rotation import rotate

    x = torch.rand(n, 1, 28, 28, device=device)
    angles = torch.rand(n, device=device) * 360
    rotate(x[:100], angles[:100])
    best = math.inf
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        rotate(x, angles)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    xs, ang = x.cpu(), angles.cpu().tolist()
    bilinear = TF.InterpolationMode.BILINEAR
    t0 = time.perf_counter()
    for i in range(n):
        TF.rotate(xs[i], ang[i], interpolation=bilinear)
    per_tensor = time.perf_counter() - t0
    pils = [Image.fromarray((xs[i, 0] * 255).byte().numpy()) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(n):
        TF.rotate(pils[i], ang[i], interpolation=bilinear)
    per_pil = time.perf_counter() - t0
    return {"batched": best, "tensor": per_tensor, "pil": per_pil}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="conv,hyper5_5,cnn,ae", help="comma-separated; unknown ones are listed")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the typical pipeline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-size", type=int, default=None, help="cap on training images (quick checks)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""), flush=True)
    known = cases()
    for name in args.cases.split(","):
        if name not in known:
            print(f"{name:<10} skipped: no such case here (known: {', '.join(known)})")
            continue
        overrides, make_case = known[name]
        cap = [] if args.train_size is None else [f"data.train_size={args.train_size}"]
        compare(name, overrides + cap, make_case(), device, args.epochs, args.workers)

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

if __name__ == "__main__":
    main()
