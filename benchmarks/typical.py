"""The pipeline a typical PyTorch script uses, for `make bench` to compare against:
torchvision.datasets.MNIST + transforms (Pad, RandomCrop; per-image rotate in a Dataset for the
rotation tasks) + DataLoader, default memory format, a plain training loop, evaluation in DataLoader
batches under no_grad."""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from common import sync
from hyperbench.training.engine import make_optimizer, make_schedule, seed_everything
from hyperbench.models import model_from_config

class Rotated(Dataset):
    """Per-image random rotation in __getitem__, as a typical script does it (torchvision's functional
    rotate on one image at a time), with a per-digit angle range for the invariance-study protocol."""

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


def typical_datasets(cfg, case) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test) as the usual script builds them: torchvision MNIST with transforms."""
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
    return train, val, test


def train_loader(train: Dataset, cfg, workers: int) -> DataLoader:
    return DataLoader(train, batch_size=int(cfg.trainer.batch_size), shuffle=True, drop_last=True,
                      num_workers=workers, persistent_workers=workers > 0)


def data_only_s(cfg, case, workers: int) -> float:
    """Seconds for one epoch of the typical training loader alone (decode, transforms, collation; no model)."""
    loader = train_loader(typical_datasets(cfg, case)[0], cfg, workers)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


def typical_epochs(cfg, case, device, workers: int):
    """The usual script, one epoch per next(): torchvision dataset + transforms + DataLoader, plain training
    loop, val and test evaluated after the epoch. Yields {train_s, eval_s, test, train_images, eval_images}."""
    train, val, test = typical_datasets(cfg, case)
    bs = int(cfg.trainer.batch_size)
    loader = train_loader(train, cfg, workers)
    seed_everything(int(cfg.seed))
    model = (case["build"](cfg) if "build" in case else model_from_config(cfg.model, case["num_classes"], (1, 28, 28))).to(device)
    opt = make_optimizer(list(model.parameters()), cfg.trainer)
    sched = make_schedule(opt, cfg.trainer)
    loss_fn, metric = case["typical_loss"], case["typical_metric"]
    while True:
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
        yield {"train_s": t1 - t0, "eval_s": time.perf_counter() - t1, "test": results["test"],
               "train_images": len(train), "eval_images": len(val) + len(test)}


def typical_run(cfg, case, device, epochs: int, workers: int) -> dict:
    """The usual script for `epochs` epochs (typical_epochs): its fastest epoch's training and evaluation times."""
    epochs_run = typical_epochs(cfg, case, device, workers)
    history = [next(epochs_run) for _ in range(epochs)]
    return {"train_s": min(h["train_s"] for h in history), "eval_s": min(h["eval_s"] for h in history),
            "test": history[-1]["test"], "train_images": history[-1]["train_images"],
            "eval_images": history[-1]["eval_images"]}


def to_device(y, device):
    return tuple(t.to(device) for t in y) if isinstance(y, (tuple, list)) else y.to(device)


def typical_accuracy(model, loader, device) -> float:
    correct = n = 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        n += len(y)
    return correct / n


def typical_mse(model, loader, device) -> float:
    total = n = 0.0
    for x, (target, cond) in loader:
        out = model(x.to(device), cond.to(device))
        total += F.mse_loss(out, target.to(device), reduction="sum").item() / target[0].numel()
        n += len(x)
    return total / n

