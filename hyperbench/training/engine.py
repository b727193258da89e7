"""The one training engine every task uses.

A task supplies an Objective (loss on a batch, metrics on a split, optional batched augmentation);
the engine owns the loop: device placement, shuffling, optimizer and per-step lr schedule,
gradient clipping, divergence checks, per-epoch evaluation, best-validation model selection,
the history, and a clean record when a run is interrupted.

Given a run directory, the engine also writes <run_dir>/checkpoint.pt (atomically) every
trainer.checkpoint_every epochs and after the last one, and with trainer.resume set continues from
the checkpoint found there: model, optimizer, lr schedule, RNG states (torch's global generator and
the trainer's own), epoch, history and the best epoch so far, so that a resumed run ends with the
same numbers as an uninterrupted one (on CPU, same seed). A diverged epoch never reaches a checkpoint.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..data import DataBundle, Split
from ..errors import CheckpointError, ConfigError, DivergenceError
from ..precision import dtype_name
from .checkpoint import (BEST_IS_MODEL, CHECKPOINT, CHECKPOINT_FORMAT, CheckpointWriter, as_random_state,
                         check_trainer_settings, load_checkpoint, load_owned_optimizers, owned_optimizer_states,
                         to_host, trainer_settings)
from .objectives import Objective
from .optimizers import TFRMSprop

# Callbacks every Trainer calls after each epoch's checkpoint step, as callback(trainer, epoch): a place for
# process-wide observers (the kill -9 tests install one that waits for the checkpoint, then kills the process).
EPOCH_CALLBACKS: list[Callable[["Trainer", int], None]] = []


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best: dict = field(default_factory=dict)  # val_* and test_* metrics at the best epoch
    best_state: dict | None = None
    status: str = "ok"
    wall_time_s: float = 0.0
    resumed_from_epoch: int | None = None  # set when fit() continued from a checkpoint
    precision: str = "fp32"  # what the model ran in: fp32, bf16 or fp16 (autocast), see docs/gpu.md
    compiled: tuple[str, ...] = ()  # what torch.compile compiled (forward, training_loss), empty when off
    checkpoint_wait_s: float = 0.0  # seconds the training loop waited for checkpoint writes


@dataclass
class FitState:
    """What one fit() carries from step to step: the result so far, the trainer's generator, optimizer, lr
    schedule, the batches per epoch, the held-out splits, the best score, where the epochs start."""

    result: FitResult
    gen: torch.Generator
    params: list
    train_model: nn.Module
    scaler: object
    opt: torch.optim.Optimizer
    sched: object
    batch_size: int
    steps_per_epoch: int
    evals: dict
    writer: CheckpointWriter
    best_score: float = -math.inf
    first_epoch: int = 1
    time_before: float = 0.0  # wall time of the run before this process resumed it
    t0: float = 0.0


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
    """trainer.optimizer by name. trainer.fused=true: torch's fused kernel for adam and sgd (one pass over each
    parameter; the same update up to float rounding, docs/performance.md); rmsprop has none and refuses it."""
    name = str(cfg.optimizer).lower()
    fused = bool(cfg.get("fused", False))
    if fused and name not in ("adam", "sgd"):
        raise ConfigError(f"trainer.fused=true: torch has a fused kernel for adam and sgd, not for "
                          f"trainer.optimizer={cfg.optimizer}; use trainer.fused=false.")
    kw = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "rmsprop_tf":
        return TFRMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"trainer.optimizer='{cfg.optimizer}' is not one of adam, sgd, rmsprop, rmsprop_tf.")


def make_schedule(opt: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = max(lr * lr_decay**t, min_lr), t counted in optimizer steps (Vineet's CS618 report / Ha, Dai & Le)."""
    floor = float(cfg.min_lr) / float(cfg.lr)
    decay = float(cfg.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(decay**t, floor))


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """trainer.amp -> autocast dtype or None. auto = bf16 on a CUDA GPU that supports it, else off
    (on CPU autocast is slower than fp32 unless the CPU has bf16 units; ask for it with amp=bf16)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.amp=fp16 needs a CUDA device; use trainer.amp=bf16 or off on this one.")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


class Trainer:
    def __init__(self, cfg, device: torch.device, seed: int, log: Callable[[str], None] = print):
        self.cfg, self.device, self.seed, self.log = cfg, device, seed, log
        self.run_dir = None  # set by the task to checkpoint (and resume) in that directory
        cl = cfg.channels_last
        self.channels_last = device.type in ("cpu", "cuda") if cl == "auto" else bool(cl)
        prog = cfg.progress
        self.progress = sys.stderr.isatty() if prog == "auto" else bool(prog)
        self.amp_dtype = amp_dtype(str(cfg.get("amp", "off")), device)
        self.compile = bool(cfg.get("compile", False))

    # torch.compile backend for trainer.compile=true (tests set "eager": dynamo traces, nothing is generated)
    compile_backend = "inductor"

    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16: what the model runs in (after model_precision settled it for a model)."""
        return dtype_name(self.amp_dtype)

    def model_precision(self, model: nn.Module) -> str:
        """Settle autocast for `model`: a model that sets full_precision = True (capsnet_em: EM routing
        amplifies rounding error) runs in float32 whatever trainer.amp says. Returns the precision."""
        if self.amp_dtype is not None and getattr(model, "full_precision", False):
            self.log(f"{type(model).__name__} runs in fp32 (full_precision; trainer.amp does not apply to it)")
            self.amp_dtype = None
        return self.precision

    def compiled(self, model: nn.Module) -> tuple[nn.Module, tuple[str, ...]]:
        """(what to train, names of what was compiled): with trainer.compile the forward and, for a model
        that owns its training step (training_loss: capsnets, aae, compensate with aae), that method too;
        a torch.compile wrapper alone hands back the eager training_loss. Parameters are shared."""
        if not self.compile:
            return model, ()
        wrapped = torch.compile(model, backend=self.compile_backend)
        names = ["forward"]
        own = getattr(model, "training_loss", None)
        if own is not None:
            wrapped.training_loss = torch.compile(own, backend=self.compile_backend)
            names.append("training_loss")
        self.log(f"torch.compile ({self.compile_backend}): {type(model).__name__}.{', .'.join(names)}")
        return wrapped, tuple(names)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def fmt(self, x: torch.Tensor) -> torch.Tensor:
        """x in the memory format the model trains in (channels_last for 4-d batches when on)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def step_seconds(self, model: nn.Module, loss: Callable, x: torch.Tensor, y, steps: int, warmup: int = 1) -> float:
        """Mean seconds of one training step (forward, backward, optimizer step with this trainer's optimizer,
        autocast and memory format) on the fixed batch (x, y), over `steps` steps after `warmup` untimed ones.
        `model` is on the device already; no data work is timed (task=summary's estimate, the benchmark's ceiling)."""
        self.model_format(model)
        self.model_precision(model)
        model.train()
        opt = make_optimizer(list(model.parameters()), self.cfg)
        x = self.fmt(x)
        trained, _ = self.compiled(model)

        def step():
            with self.autocast():
                value = loss(trained, x, y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()

        for _ in range(warmup):
            step()
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(self.device)
        return (time.perf_counter() - t0) / steps

    def model_format(self, model: nn.Module) -> bool:
        """Settle channels_last for `model` (auto: off when the model sets channels_last = False, as capsnet,
        whose capsule reshapes want NCHW) and convert the model; returns the choice."""
        if self.cfg.channels_last == "auto" and getattr(model, "channels_last", True) is False:
            self.channels_last = False
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return self.channels_last

    def evaluate(self, model: nn.Module, split: Split, objective: Objective, compiled: nn.Module | None = None
                 ) -> dict[str, float]:
        """objective.evaluate on a split. Only the model's forward runs under autocast (its outputs come back
        as float32); targets, metrics and so the best-epoch choice are computed in float32. `compiled`: the
        torch.compile wrapper of `model` to call instead (trainer.compile)."""
        model.eval()
        with torch.inference_mode():
            return objective.evaluate(AutocastModel(model if compiled is None else compiled, self.autocast),
                                      Split(self.fmt(split.x), split.y), int(self.cfg.eval_batch_size))

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else Path(self.run_dir) / CHECKPOINT

    def fit(self, model: nn.Module, data: DataBundle, objective: Objective,
            on_epoch: Callable[[FitResult], None] | None = None) -> FitResult:
        """Train `model` for trainer.epochs epochs (from the checkpoint in run_dir with trainer.resume), in named
        steps: prepare, restore, then per epoch train_epoch, evaluate_epoch, choose_best, on_epoch (the
        task's recorder), checkpoint and the EPOCH_CALLBACKS. Returns the FitResult (also self.result, readable
        if fit raises)."""
        run = self.prepare(model, data)
        self.restore(run, model)
        run.t0 = time.perf_counter()
        try:
            for epoch in range(run.first_epoch, int(self.cfg.epochs) + 1):
                te = time.perf_counter()
                train_loss = self.train_epoch(run, model, data, objective, epoch)
                row = self.evaluate_epoch(run, model, objective, epoch, train_loss, te)
                self.choose_best(run, model, objective, row)
                if on_epoch is not None:
                    on_epoch(run.result)
                self.checkpoint(run, model, epoch)
                for callback in EPOCH_CALLBACKS:
                    callback(self, epoch)
            self.wait_for_checkpoint()  # the last checkpoint is on disk before fit() returns
        except DivergenceError:
            run.result.status = "diverged"
            raise
        except KeyboardInterrupt:
            run.result.status = "interrupted"
            raise
        finally:
            run.writer.wait(raise_error=False)  # a started checkpoint write ends before the run records its end
            run.result.wall_time_s = run.time_before + time.perf_counter() - run.t0
        return run.result

    def prepare(self, model: nn.Module, data: DataBundle) -> FitState:
        """Seed, place and format the model, build optimizer and lr schedule, settle precision and compile;
        the held-out splits are formatted once."""
        cfg = self.cfg
        torch.manual_seed(self.seed)
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        model.to(self.device)
        self.model_format(model)
        self.result = result = FitResult(precision=self.model_precision(model))  # readable if fit() raises
        params = list(model.parameters())
        train_model, result.compiled = self.compiled(model)  # shares the parameters
        scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        opt = make_optimizer(params, cfg)
        sched = make_schedule(opt, cfg)
        n = len(data.train)
        bs = min(int(cfg.batch_size), n)
        if bs < int(cfg.batch_size):
            logging.getLogger("hyperbench").warning(
                f"the training set has {n} images, fewer than trainer.batch_size={cfg.batch_size}: each epoch is one "
                f"step on all {n} (batch {n}). Raise data.train_size or lower trainer.batch_size for several steps.")
        evals = {s: Split(self.fmt(getattr(data, s).x), getattr(data, s).y) for s in ("val", "test")}  # once
        self.saved_epoch = None  # epoch of the checkpoint in run_dir (written, being written, or resumed from)
        self._writer = CheckpointWriter()
        return FitState(result=result, gen=gen, params=params, train_model=train_model, scaler=scaler, opt=opt,
                        sched=sched, batch_size=bs, steps_per_epoch=n // bs,  # full batches only, as the reference
                        evals=evals, writer=self._writer)

    def restore(self, run: FitState, model: nn.Module) -> None:
        """With trainer.resume and a checkpoint in run_dir: continue from it (model, optimizers, schedule, RNG
        states, history, best epoch so far); the trainer settings must be the checkpoint's."""
        ckpt = self.checkpoint_path
        if ckpt is None or self.cfg.get("resume") in (None, False) or not ckpt.exists():
            return
        state = load_checkpoint(ckpt, self.device)
        check_trainer_settings(state, self.cfg, ckpt)
        try:
            model.load_state_dict(state["model"])
            run.opt.load_state_dict(state["optimizer"])
            load_owned_optimizers(model, state.get("owned_optimizers", {}))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"The checkpoint {ckpt} does not fit this model or optimizer "
                                  f"({str(exc).splitlines()[0][:200]}).") from None
        run.sched.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        run.gen.set_state(state["rng"]["generator"].to(run.gen.get_state().device))
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        random.setstate(as_random_state(state["rng"]["python"]))
        result = run.result
        result.history = list(state["history"])
        result.best_epoch, result.best = state["best_epoch"], dict(state["best"])
        best = state["best_state"]
        result.best_state = copy.deepcopy(model.state_dict()) if best == BEST_IS_MODEL else best
        run.best_score = float(state["best_score"])
        run.first_epoch, run.time_before = int(state["epoch"]) + 1, float(state["wall_time_s"])
        result.resumed_from_epoch = self.saved_epoch = int(state["epoch"])
        self.log(f"resumed from {ckpt} after epoch {state['epoch']}")

    def train_epoch(self, run: FitState, model: nn.Module, data: DataBundle, objective: Objective,
                    epoch: int) -> float:
        """One pass over the training split in shuffled full batches; returns the mean training loss. The loss
        is checked every trainer.log_every steps: NaN/inf raises DivergenceError."""
        cfg = self.cfg
        bs, steps_per_epoch, n = run.batch_size, run.steps_per_epoch, len(data.train)
        clip = None if cfg.grad_clip is None else float(cfg.grad_clip)
        log_every = int(cfg.log_every)
        opt, sched, scaler, params = run.opt, run.sched, run.scaler, run.params
        model.train()
        perm = torch.randperm(n, device=self.device, generator=run.gen)
        loss_sum = torch.zeros((), device=self.device)
        bar = self._bar(steps_per_epoch, epoch)
        for step in range(steps_per_epoch):
            idx = perm[step * bs:(step + 1) * bs]
            x, y = data.train.x[idx], data.train.y[idx]
            if objective.augment is not None:
                x, y = objective.augment(x, y, run.gen)
            with self.autocast():
                loss = objective.loss(run.train_model, self.fmt(x), y)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if clip is not None:
                    nn.utils.clip_grad_norm_(params, clip)
                opt.step()
            else:  # fp16: scale the loss, unscale before clipping
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                if clip is not None:
                    nn.utils.clip_grad_norm_(params, clip)
                scaler.step(opt)
                scaler.update()
            sched.step()
            loss_sum += loss.detach()
            if (step + 1) % log_every == 0 or step + 1 == steps_per_epoch:
                value = loss.item()  # one device sync every log_every steps
                if not math.isfinite(value):
                    raise DivergenceError(divergence_message(
                        value, epoch, step + 1, sched.get_last_lr()[0], run.result, self.saved_epoch, cfg,
                        self.amp_dtype))
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
                    bar.update((step + 1) - bar.n)
        if bar is not None:
            bar.close()
        return loss_sum.item() / steps_per_epoch

    def evaluate_epoch(self, run: FitState, model: nn.Module, objective: Objective, epoch: int, train_loss: float,
                       started: float) -> dict:
        """The epoch's history row: training loss, lr, val_* and test_* metrics, seconds; appended to the history."""
        row = {"epoch": epoch, "train_loss": train_loss, "lr": run.sched.get_last_lr()[0]}
        for split, held_out in run.evals.items():
            for k, v in self.evaluate(model, held_out, objective, run.train_model if self.compile else None).items():
                row[f"{split}_{k}"] = v
        row["epoch_time_s"] = time.perf_counter() - started
        run.result.history.append(row)
        return row

    def choose_best(self, run: FitState, model: nn.Module, objective: Objective, row: dict) -> None:
        """Keep the epoch if its validation metric (objective.monitor) is the best so far; log the epoch."""
        result = run.result
        score = row[f"val_{objective.monitor}"] * (1 if objective.higher_is_better else -1)
        if score > run.best_score:
            run.best_score = score
            result.best_epoch = row["epoch"]
            result.best = {k: v for k, v in row.items() if k.startswith(("val_", "test_"))}
            result.best_state = copy.deepcopy(model.state_dict())
        self.log(
            f"epoch {row['epoch']}/{self.cfg.epochs} train_loss {row['train_loss']:.4f} "
            + " ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("val_", "test_")))
            + f" ({row['epoch_time_s']:.1f}s)"
        )

    def checkpoint(self, run: FitState, model: nn.Module, epoch: int) -> None:
        """Every trainer.checkpoint_every epochs and after the last: a snapshot on the host now (the only part
        that blocks training), written by a thread while the next epoch trains; the previous write is finished
        first, so a kill -9 loses at most the epoch being written. The best weights are not written twice when
        they are the model's own (the best epoch is this one)."""
        ckpt, cfg, result = self.checkpoint_path, self.cfg, run.result
        if ckpt is None or not (epoch % int(cfg.get("checkpoint_every", 1)) == 0 or epoch == int(cfg.epochs)):
            return
        tw = time.perf_counter()
        run.writer.wait()
        state = {
            "format": CHECKPOINT_FORMAT, "epoch": epoch,
            "model": model.state_dict(), "optimizer": run.opt.state_dict(), "schedule": run.sched.state_dict(),
            "owned_optimizers": owned_optimizer_states(model),
            "rng": {"torch": torch.get_rng_state(), "generator": run.gen.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "python": random.getstate()},
            "history": list(result.history), "best_epoch": result.best_epoch, "best": dict(result.best),
            "best_state": BEST_IS_MODEL if result.best_epoch == epoch else result.best_state,
            "best_score": run.best_score,
            "wall_time_s": run.time_before + time.perf_counter() - run.t0,
            "trainer": trainer_settings(cfg),
        }
        run.writer.start(to_host(state), ckpt)
        self.saved_epoch = epoch  # fit() never returns or raises before this write has ended
        result.checkpoint_wait_s += time.perf_counter() - tw

    def wait_for_checkpoint(self) -> None:
        """Block until the checkpoint being written (if any) is on disk; its write error is raised here."""
        tw = time.perf_counter()
        self._writer.wait()
        self.result.checkpoint_wait_s += time.perf_counter() - tw

    def _bar(self, total: int, epoch: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, file=sys.stderr)


def divergence_message(value: float, epoch: int, step: int, lr: float, result: FitResult, saved_epoch: int | None,
                       cfg, amp_dtype) -> str:
    """What happened, what is actually kept, and only the changes that could alter the outcome."""
    kept = []
    if result.history:
        kept.append(f"history.csv (epochs {result.history[0]['epoch']}-{result.history[-1]['epoch']})")
    if result.best_state is not None and cfg.get("save_model", True):
        kept.append(f"model.pt of the best epoch so far ({result.best_epoch})")
    if saved_epoch is not None:
        kept.append(f"checkpoint.pt of epoch {saved_epoch}")
    what = ("Kept: " + ", ".join(kept) + ".") if kept else \
        "Nothing is kept: no epoch finished before the loss diverged, so there is no model or checkpoint."
    tries = [f"lower trainer.lr (now {float(cfg.lr):g}; e.g. trainer.lr={float(cfg.lr) / 10:g})"]
    if cfg.grad_clip is None:
        tries.append("set trainer.grad_clip (e.g. trainer.grad_clip=1)")
    if amp_dtype is not None:
        tries.append("trainer.amp=off (reduced precision is on)")
    tries.append("check the data scale (data.scale)")
    return (f"The training loss became {value} at epoch {epoch}, step {step} (lr {lr:.3g}). The run stopped. {what} "
            f"To change the outcome: " + "; ".join(tries) + ".")


class AutocastModel:
    """A model whose calls run under the trainer's autocast and hand back float32 outputs; every other
    attribute (score_loss, encode, ...) is the model's own, run outside autocast (evaluation: only the
    model runs in reduced precision, targets and metrics in float32)."""

    def __init__(self, model: nn.Module, autocast: Callable):
        self.model, self._autocast = model, autocast

    def __call__(self, *args, **kwargs):
        with self._autocast():
            out = self.model(*args, **kwargs)
        return out.float() if torch.is_tensor(out) and out.is_floating_point() else out

    def __getattr__(self, name):
        return getattr(self.model, name)
