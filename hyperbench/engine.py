"""The one training engine every task uses.

A task supplies an Objective (loss on a batch, metrics on a split, optional batched augmentation);
the engine owns the loop: device placement, shuffling, optimizer and per-step lr schedule,
gradient clipping, divergence checks, per-epoch evaluation, best-validation model selection,
the history, and a clean record when a run is interrupted.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from .data import DataBundle, Split
from .errors import ConfigError, DivergenceError


@dataclass
class Objective:
    """What a task plugs into the engine."""

    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module, Split, int], dict[str, float]]  # metrics of a whole split
    # (x, y, generator) -> (x, y), batched on the device; y may become anything loss() understands
    # (e.g. a (target, parameters) pair for the transform tasks).
    augment: Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple] | None = None
    monitor: str = "acc"  # validation metric that selects the best epoch
    higher_is_better: bool = True  # False for losses


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best: dict = field(default_factory=dict)  # val_* and test_* metrics at the best epoch
    best_state: dict | None = None
    status: str = "ok"
    wall_time_s: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (all devices) before anything random is built."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"trainer.device='{name}' is not a device; use auto, cpu, cuda, cuda:N or mps.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device asks for CUDA but this PyTorch sees no CUDA GPU; use trainer.device=auto or cpu.")
    return dev


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    name = str(cfg.optimizer).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"trainer.optimizer='{cfg.optimizer}' is not one of adam, sgd, rmsprop.")


def make_schedule(opt: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = max(lr * lr_decay**t, min_lr), t counted in optimizer steps (seed 002 / Ha et al.)."""
    floor = float(cfg.min_lr) / float(cfg.lr)
    decay = float(cfg.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(decay**t, floor))


class Trainer:
    def __init__(self, cfg, device: torch.device, seed: int, log: Callable[[str], None] = print):
        self.cfg, self.device, self.seed, self.log = cfg, device, seed, log
        cl = cfg.channels_last
        self.channels_last = device.type in ("cpu", "cuda") if cl == "auto" else bool(cl)
        prog = cfg.progress
        self.progress = sys.stderr.isatty() if prog == "auto" else bool(prog)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def evaluate(self, model: nn.Module, split: Split, objective: Objective) -> dict[str, float]:
        model.eval()
        with torch.inference_mode():
            return objective.evaluate(model, Split(self._fmt(split.x), split.y), int(self.cfg.eval_batch_size))

    def fit(self, model: nn.Module, data: DataBundle, objective: Objective,
            on_epoch: Callable[[FitResult], None] | None = None) -> FitResult:
        cfg = self.cfg
        torch.manual_seed(self.seed)
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        params = list(model.parameters())
        opt = make_optimizer(params, cfg)
        sched = make_schedule(opt, cfg)
        n = len(data.train)
        bs = min(int(cfg.batch_size), n)
        steps_per_epoch = n // bs  # full batches only, as in the reference code
        clip = None if cfg.grad_clip is None else float(cfg.grad_clip)
        log_every = int(cfg.log_every)
        evals = {s: Split(self._fmt(getattr(data, s).x), getattr(data, s).y) for s in ("val", "test")}  # once
        self.result = result = FitResult()  # readable by the caller if fit() raises
        best_score = -math.inf
        t0 = time.perf_counter()
        try:
            for epoch in range(1, int(cfg.epochs) + 1):
                te = time.perf_counter()
                model.train()
                perm = torch.randperm(n, device=self.device, generator=gen)
                loss_sum = torch.zeros((), device=self.device)
                bar = self._bar(steps_per_epoch, epoch)
                for step in range(steps_per_epoch):
                    idx = perm[step * bs:(step + 1) * bs]
                    x, y = data.train.x[idx], data.train.y[idx]
                    if objective.augment is not None:
                        x, y = objective.augment(x, y, gen)
                    loss = objective.loss(model, self._fmt(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip is not None:
                        nn.utils.clip_grad_norm_(params, clip)
                    opt.step()
                    sched.step()
                    loss_sum += loss.detach()
                    if (step + 1) % log_every == 0 or step + 1 == steps_per_epoch:
                        value = loss.item()  # one device sync every log_every steps
                        if not math.isfinite(value):
                            raise DivergenceError(
                                f"The training loss became {value} at epoch {epoch}, step {step + 1} "
                                f"(lr {sched.get_last_lr()[0]:.3g}). The run stopped; the best model so far "
                                f"(epoch {result.best_epoch}) is kept. Lower trainer.lr, set "
                                f"trainer.grad_clip, or check the data scale."
                            )
                        if bar is not None:
                            bar.set_postfix(loss=f"{value:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
                            bar.update((step + 1) - bar.n)
                if bar is not None:
                    bar.close()
                row = {"epoch": epoch, "train_loss": loss_sum.item() / steps_per_epoch,
                       "lr": sched.get_last_lr()[0]}
                for split, held_out in evals.items():
                    for k, v in self.evaluate(model, held_out, objective).items():
                        row[f"{split}_{k}"] = v
                row["epoch_time_s"] = time.perf_counter() - te
                result.history.append(row)
                score = row[f"val_{objective.monitor}"] * (1 if objective.higher_is_better else -1)
                if score > best_score:
                    best_score = score
                    result.best_epoch = epoch
                    result.best = {k: v for k, v in row.items() if k.startswith(("val_", "test_"))}
                    result.best_state = copy.deepcopy(model.state_dict())
                self.log(
                    f"epoch {epoch}/{cfg.epochs} train_loss {row['train_loss']:.4f} "
                    + " ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("val_", "test_")))
                    + f" ({row['epoch_time_s']:.1f}s)"
                )
                if on_epoch is not None:
                    on_epoch(result)
        except DivergenceError:
            result.status = "diverged"
            raise
        except KeyboardInterrupt:
            result.status = "interrupted"
            raise
        finally:
            result.wall_time_s = time.perf_counter() - t0
        return result

    def _bar(self, total: int, epoch: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, file=sys.stderr)
