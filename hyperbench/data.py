"""Datasets as in-memory tensors on the run's device.

A dataset is read once through torchvision (which downloads it when online), turned into one
float tensor per split, and kept on the device; batches are index slices of those tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import ConfigError, DataError


@dataclass
class Split:
    x: torch.Tensor  # [N, C, H, W] float
    y: torch.Tensor  # [N] long

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


# name -> loader(root, download) -> (train_x uint8 [N,H,W(,C)], train_y, test_x, test_y, num_classes)
DATASETS: dict[str, Callable] = {}
# name -> ((C, H, W), num_classes), known without reading the data (task=summary)
DATASET_INFO: dict[str, tuple[tuple[int, int, int], int]] = {}


def register_dataset(name: str, shape: tuple[int, int, int], num_classes: int):
    def deco(fn):
        DATASETS[name] = fn
        DATASET_INFO[name] = (shape, num_classes)
        return fn

    return deco


def dataset_info(name: str) -> tuple[tuple[int, int, int], int]:
    if name not in DATASET_INFO:
        raise ConfigError(
            f"Unknown dataset '{name}'. Known datasets: {', '.join(sorted(DATASETS))}. "
            f"Choose one with data=<name>."
        )
    return DATASET_INFO[name]


def _torchvision(cls, root: str, download: bool, **kw):
    """Instantiate a torchvision dataset, turning 'not there' into one clear DataError."""
    try:
        return cls(root, download=download, **kw)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError variously
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        how = "and downloading it failed" if download else "and data.download=false"
        raise DataError(
            f"Dataset {cls.__name__} is not under the data root '{root}' {how} ({reason}). "
            f"Point the environment variable HYPERBENCH_DATA (or the override data.root=PATH) at a "
            f"folder that holds it in torchvision's layout (MNIST: MNIST/raw/train-images-idx3-ubyte "
            f"and the three other idx files; CIFAR-10: cifar-10-batches-py/data_batch_1..5 and test_batch), or run once with network access and data.download=true "
            f"so torchvision fetches it there."
        ) from exc


@register_dataset("mnist", (1, 28, 28), 10)
def _mnist(root: str, download: bool):
    from torchvision.datasets import MNIST

    tr = _torchvision(MNIST, root, download, train=True)
    te = _torchvision(MNIST, root, download, train=False)
    return tr.data, tr.targets, te.data, te.targets, 10


@register_dataset("cifar10", (3, 32, 32), 10)
def _cifar10(root: str, download: bool, check_md5: bool = False):
    """torchvision CIFAR10. Without check_md5 the per-file md5 check of the extracted batches is
    skipped (a pixel-exact copy whose pickles differ in metadata is accepted); the download itself
    is still verified against the official archive's md5. The arrays are checked instead."""
    from torchvision.datasets import CIFAR10

    cls = CIFAR10
    if not check_md5:
        cls = type("CIFAR10", (CIFAR10,), {
            "train_list": [[f, None] for f, _ in CIFAR10.train_list],
            "test_list": [[f, None] for f, _ in CIFAR10.test_list],
            "meta": {**CIFAR10.meta, "md5": None},
        })
    tr = _torchvision(cls, root, download, train=True)
    te = _torchvision(cls, root, download, train=False)
    for split, ds in (("train", tr), ("test", te)):
        labels = set(ds.targets)
        if ds.data.shape[1:] != (32, 32, 3) or len(ds.targets) != len(ds.data) or not labels <= set(range(10)):
            raise DataError(f"CIFAR-10 {split} under '{root}' has images {ds.data.shape}, {len(ds.targets)} "
                            f"labels in {sorted(labels)[:12]}; expected N x 32 x 32 x 3 images, labels 0-9.")
    return (torch.from_numpy(tr.data), torch.tensor(tr.targets), torch.from_numpy(te.data),
            torch.tensor(te.targets), 10)


def _to_float(images: torch.Tensor, scale) -> torch.Tensor:
    """uint8 [N,H,W] or [N,H,W,C] -> float [N,C,H,W] in the range `scale`."""
    x = images if images.dim() == 4 else images.unsqueeze(-1)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    lo, hi = float(scale[0]), float(scale[1])
    return x.mul_(hi - lo).add_(lo).contiguous()


def load_data(cfg, device: torch.device) -> DataBundle:
    """Build train/val/test splits of dataset `cfg.name` on `device`, following `cfg` (data group)."""
    dataset_info(cfg.name)
    root = str(Path(str(cfg.root)).expanduser())
    extra = {"check_md5": bool(cfg.check_md5)} if "check_md5" in cfg else {}
    train_x, train_y, test_x, test_y, num_classes = DATASETS[cfg.name](root, bool(cfg.download), **extra)
    x = _to_float(train_x, cfg.scale)
    y = torch.as_tensor(train_y).long()
    n_val = int(cfg.val_size)
    if n_val >= len(y):
        raise ConfigError(
            f"data.val_size={n_val} leaves no training images ({cfg.name} has {len(y)}). "
            f"Choose a smaller data.val_size."
        )
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(cfg.split_seed)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if cfg.train_size is not None:
        train_idx = train_idx[: int(cfg.train_size)]
    tx = _to_float(test_x, cfg.scale)
    ty = torch.as_tensor(test_y).long()
    if cfg.test_size is not None:
        tx, ty = tx[: int(cfg.test_size)], ty[: int(cfg.test_size)]

    def put(xs, ys):
        return Split(xs.to(device), ys.to(device))

    return DataBundle(
        name=cfg.name,
        train=put(x[train_idx], y[train_idx]),
        val=put(x[val_idx], y[val_idx]),
        test=put(tx, ty),
        num_classes=num_classes,
    )
