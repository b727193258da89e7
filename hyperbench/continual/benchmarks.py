"""Continual-learning benchmarks built in memory from the MNIST tensors of data.load_data (task-incremental only).

    split_mnist      task t (t = 0..4): digits 2t and 2t+1, a 2-way head per task (label = digit - 2t)
    permuted_mnist   task t: all ten digits with one fixed pixel permutation; task 0 is the identity, the
                     others are drawn from the run's seed (torch.Generator, so the same seed gives the same ones)

Labels are stored encoded as task * classes + label, so one long tensor carries the task identity with every
sample (the engine indexes x and y only); `decode` splits it again. Images are kept flattened [N, 784] and,
for permuted_mnist, unpermuted and shared by all tasks: `prepare(x, task)` applies the task's permutation to a
batch (one gather on the device), so ten tasks cost no more memory than one, except cl=joint, whose training
split holds every task's copy (10 x the training images).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from ..data import DataBundle, Split, load_data
from ..errors import ConfigError

# benchmark -> (most tasks it can supply, None = any number; classes per task)
BENCHMARKS: dict[str, tuple[int | None, int]] = {"split_mnist": (5, 2), "permuted_mnist": (None, 10)}
PIXELS = 28 * 28


def check_benchmark(data_cfg) -> tuple[int, int]:
    """(tasks, classes per task) of the data config, or a ConfigError that says what is possible."""
    name = str(data_cfg.name)
    if name not in BENCHMARKS:
        raise ConfigError(f"task=continual needs a continual-learning benchmark, data={name} is not one; choose "
                          f"data=split_mnist or data=permuted_mnist.")
    most, classes = BENCHMARKS[name]
    tasks = data_cfg.get("tasks")
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise ConfigError(f"data.tasks must be a positive integer, got {tasks!r}; e.g. data.tasks=5.")
    if most is not None and tasks > most:
        raise ConfigError(f"data={name} has {most} tasks (10 digits, 2 per task), so data.tasks={tasks} cannot "
                          f"be supplied. Use data.tasks=1..{most}, or data=permuted_mnist for longer sequences.")
    return tasks, classes


@dataclass
class Benchmark:
    name: str
    n_tasks: int
    classes: int  # per task (the width of each head)
    tasks: list[DataBundle]  # per task: train/val/test with encoded labels
    perms: torch.Tensor | None  # [n_tasks, 784] pixel order per task (permuted_mnist)

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded labels -> (task, label within the task)."""
        return torch.div(y, self.classes, rounding_mode="floor"), y % self.classes

    def prepare(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """A batch of flattened images as task `task` presents them (its pixel permutation applied)."""
        if self.perms is None:
            return x
        if isinstance(task, int):
            return x[:, self.perms[task]]
        return torch.gather(x, 1, self.perms[task])

    def joint(self) -> DataBundle:
        """Every task's data at once (cl=joint)."""
        cat = lambda s: Split(torch.cat([getattr(b, s).x for b in self.tasks]),  # noqa: E731
                              torch.cat([getattr(b, s).y for b in self.tasks]))
        return DataBundle(f"{self.name} (joint)", cat("train"), cat("val"), cat("test"), self.classes)


def load_benchmark(data_cfg, seed: int, device: torch.device) -> Benchmark:
    """Build the benchmark of data_cfg (data=split_mnist | permuted_mnist) on `device`."""
    n_tasks, classes = check_benchmark(data_cfg)
    base_cfg = OmegaConf.merge(data_cfg, {"name": str(data_cfg.source), "train_size": None})
    base = load_data(base_cfg, device)
    cap = data_cfg.get("train_size")
    flat = {s: Split(getattr(base, s).x.flatten(1), getattr(base, s).y) for s in ("train", "val", "test")}
    tasks, perms = [], None
    if data_cfg.name == "split_mnist":
        for t in range(n_tasks):
            parts = {}
            for s, split in flat.items():
                keep = (split.y == 2 * t) | (split.y == 2 * t + 1)
                x, y = split.x[keep], split.y[keep]  # encoded label t * 2 + (digit - 2t) = digit
                if s == "train" and cap is not None:
                    x, y = x[: int(cap)], y[: int(cap)]
                parts[s] = Split(x, y)
            tasks.append(DataBundle(f"split_mnist task {t} (digits {2 * t},{2 * t + 1})", parts["train"],
                                    parts["val"], parts["test"], classes))
    else:
        g = torch.Generator().manual_seed(int(seed))
        perms = torch.stack([torch.arange(PIXELS)] + [torch.randperm(PIXELS, generator=g)
                                                      for _ in range(n_tasks - 1)]).to(device)
        train = flat["train"] if cap is None else Split(flat["train"].x[: int(cap)], flat["train"].y[: int(cap)])
        for t in range(n_tasks):
            parts = {s: Split(split.x, split.y + t * classes) for s, split in
                     (("train", train), ("val", flat["val"]), ("test", flat["test"]))}  # x shared, unpermuted
            tasks.append(DataBundle(f"permuted_mnist task {t}", parts["train"], parts["val"], parts["test"], classes))
    return Benchmark(str(data_cfg.name), n_tasks, classes, tasks, perms)
