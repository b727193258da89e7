"""Datasets as in-memory tensors on the run's device.

A dataset is read once through torchvision (which downloads it when online), turned into one
float tensor per split, and kept on the device; batches are index slices of those tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import ConfigError, DataError


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


def _idx_problem(path: Path) -> str | None:
    """What is wrong with an MNIST-format idx file (missing, header, size), or None if it looks whole."""
    if not path.exists():
        return "missing"
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] or head[1] or head[2] != 8 or not 1 <= head[3] <= 3:
            return f"not an idx file of bytes (header {head.hex() or 'empty'})"
        dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return f"cut off inside its header ({size} bytes)"
    shape = [int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(head[3])]
    expected = 4 + 4 * head[3] + math.prod(shape)
    if size != expected:
        return (f"{size:,} bytes where its header ({' x '.join(map(str, shape))}) needs {expected:,}: "
                f"{'truncated' if size < expected else 'extra bytes at the end'}")
    return None


def _remove_new_empty_dirs(dirs: list[Path], existed: set[Path]) -> None:
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        if d not in existed:
            try:
                d.rmdir()  # only when empty: a partial download stays for torchvision to resume or check
            except OSError:
                pass


def torchvision_dataset(cls, root: str, download: bool, files: tuple[str, ...] = (), folders: tuple[str, ...] = (),
                 hint: str = "", **kw):
    """Instantiate a torchvision dataset (its own loading and download code), turning failures into one
    clear DataError: the dataset missing (and the download's full reason when one was tried), or a file
    of it damaged (named). `files` are the dataset's files under root (idx files are checked for their
    size); `folders` the folders torchvision may create under root, removed again if a download fails
    and leaves them empty."""
    rootp = Path(root)
    paths = [rootp / f for f in files]
    present = bool(paths) and all(p.exists() for p in paths)
    made = [rootp, *(rootp / f for f in folders)]
    existed = {d for d in made if d.exists()}
    try:
        return cls(root, download=download, **kw)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError/AssertionError variously
        reason = " ".join(str(exc).split()) or type(exc).__name__
        damaged = [(p, _idx_problem(p)) for p in paths if "idx" in p.name and p.exists()]
        damaged = [(p, why) for p, why in damaged if why]
        if damaged or present:
            named = "; ".join(f"{p} is damaged ({why})" for p, why in damaged) or (
                f"its files under '{root}' are there but torchvision refuses them ({reason})")
            raise DataError(
                f"Dataset {cls.__name__}: {named}. {hint}Replace the damaged file with a good copy (or delete it and "
                f"run once with network access and data.download=true so torchvision fetches it again).") from exc
        if download:
            _remove_new_empty_dirs(made, existed)
        how = f"and downloading it failed ({reason})" if download else f"and data.download=false ({reason})"
        raise DataError(
            f"Dataset {cls.__name__} is not under the data root '{root}' {how}. "
            f"Point the environment variable HYPERBENCH_DATA (or the override data.root=PATH) at a "
            f"folder that holds it in torchvision's layout (MNIST: MNIST/raw/train-images-idx3-ubyte "
            f"and the three other idx files; CIFAR-10: cifar-10-batches-py/data_batch_1..5 and test_batch), or run once with network access and data.download=true "
            f"so torchvision fetches it there."
        ) from exc


def check_arrays(name: str, split: str, images, labels, image_shape: tuple, labels_ok: range,
                 images_file: str, labels_file: str) -> None:
    """Refuse a loaded split whose images are not N x image_shape or whose labels are not N values in labels_ok,
    naming the file at fault."""
    images_shape, n_labels = tuple(images.shape), len(labels)
    labels_t = torch.as_tensor(labels)
    bad = labels_t[(labels_t < labels_ok.start) | (labels_t >= labels_ok.stop)]
    expected = (f"expected N x {' x '.join(map(str, image_shape))} images and N labels in "
                f"{labels_ok.start}-{labels_ok.stop - 1}. Replace it with a good copy.")
    if images_shape[1:] != image_shape:
        raise DataError(f"{name} {split} images in {images_file} are damaged: shape {images_shape}; {expected}")
    if len(bad):
        values = sorted(set(bad.tolist()))
        raise DataError(f"{name} {split} labels in {labels_file} are damaged: {len(bad)} of {n_labels} are outside "
                        f"{labels_ok.start}-{labels_ok.stop - 1} (values {values[:8]}); {expected}")
    if n_labels != images_shape[0]:
        raise DataError(f"{name} {split}: {labels_file} holds {n_labels} labels for {images_shape[0]} images in "
                        f"{images_file}; one of them is damaged; {expected}")


MNIST_FILES = tuple(f"MNIST/raw/{p}-{k}-idx{d}-ubyte" for p in ("train", "t10k") for k, d in (("images", 3), ("labels", 1)))


@register_dataset("mnist", (1, 28, 28), 10)
def _mnist(root: str, download: bool):
    from torchvision.datasets import MNIST

    folders = ("MNIST", "MNIST/raw")
    tr = torchvision_dataset(MNIST, root, download, files=MNIST_FILES, folders=folders, train=True)
    te = torchvision_dataset(MNIST, root, download, files=MNIST_FILES, folders=folders, train=False)
    for split, ds, prefix in (("train", tr, "train"), ("test", te, "t10k")):
        raw = Path(root) / "MNIST" / "raw"
        check_arrays("MNIST", split, ds.data, ds.targets, (28, 28), range(10), str(raw / f"{prefix}-images-idx3-ubyte"),
                     str(raw / f"{prefix}-labels-idx1-ubyte"))
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
    files = tuple(f"{CIFAR10.base_folder}/{f}" for f, _ in CIFAR10.train_list + CIFAR10.test_list)
    hint = ("With data.check_md5=true a copy whose pickles differ from the official files is refused; "
            "data.check_md5=false accepts it and checks the arrays instead. " if check_md5 else "")
    tr = torchvision_dataset(cls, root, download, files=files, folders=(CIFAR10.base_folder,), hint=hint, train=True)
    te = torchvision_dataset(cls, root, download, files=files, folders=(CIFAR10.base_folder,), hint=hint, train=False)
    for split, ds in (("train", tr), ("test", te)):
        where = str(Path(root) / CIFAR10.base_folder)
        check_arrays("CIFAR-10", split, ds.data, ds.targets, (32, 32, 3), range(10), where, where)
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
