"""Checkpoints: the file format, writing it in the background, reading it back, and RESUME_FREE, the one
list of settings a resumed run may change.

A checkpoint (<run_dir>/checkpoint.pt, CHECKPOINT_FORMAT) holds the model, optimizer, lr schedule, the models'
own optimizers, RNG states (torch's global generator, the trainer's own, CUDA's, Python's), the epoch, history,
the best epoch so far and the trainer settings it was trained with (without the RESUME_FREE ones).
"""
from __future__ import annotations

import copy
import threading
from pathlib import Path

import torch
import torch.nn as nn

from ..config import NOT_MEASURED, flat_config
from ..errors import CheckpointError, ConfigError
from ..files import save_torch

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "hyperbench-checkpoint-v1"
# Settings that may differ between an interrupted run and the command that resumes it: those that do not change
# what is measured (config.NOT_MEASURED), and trainer.epochs: resuming a finished run with more epochs extends it
# (the lr schedule is per step, not per planned epoch, so the extension equals a run planned that long).
RESUME_FREE = NOT_MEASURED + ("trainer.epochs",)
# checkpoint["best_state"] when the best epoch is the checkpoint's own: the model's weights are the best ones
BEST_IS_MODEL = "model"


def resume_free(key: str) -> bool:
    """Whether a flat config key (trainer.lr, logger.name, ...) is one a resume may change."""
    return any(key == k or key.startswith(k + ".") for k in RESUME_FREE)


def trainer_settings(trainer_cfg) -> dict:
    """The trainer settings a checkpoint records and a resume must match: trainer.* without RESUME_FREE keys."""
    return {k: v for k, v in flat_config(trainer_cfg).items() if not resume_free(f"trainer.{k}")}


def check_trainer_settings(state: dict, trainer_cfg, path: Path) -> None:
    """ConfigError when the checkpoint was trained with other trainer settings than trainer_cfg."""
    saved = {k: v for k, v in flat_config(state.get("trainer", {})).items()
             if not resume_free(f"trainer.{k}")}  # old checkpoints hold free keys too
    now = trainer_settings(trainer_cfg)
    diff = [f"trainer.{k}={saved.get(k)!r} there, {now.get(k)!r} here" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]
    if diff:
        raise ConfigError(f"Cannot resume from {path}: it was trained with other trainer settings ("
                          + "; ".join(diff) + "). Resume with the same settings, or start afresh "
                          "with trainer.resume=false.")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint written by Trainer.fit; a damaged or foreign file raises CheckpointError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}.") from None
    except Exception as exc:
        raise CheckpointError(
            f"The checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            f"it is damaged or not a hyperbench checkpoint. Start afresh with trainer.resume=false "
            f"or resume another run directory.") from None
    needed = {"format", "epoch", "model", "optimizer", "schedule", "rng", "history"}
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not needed <= set(state):
        raise CheckpointError(f"The checkpoint {path} is not a {CHECKPOINT_FORMAT} file (missing fields); "
                              f"start afresh with trainer.resume=false.")
    return state


def owned_optimizers(model: nn.Module) -> dict[str, torch.optim.Optimizer]:
    """Every optimizer a model owns besides the trainer's (the adversarial autoencoder's critic): submodules
    that define owned_optimizers() -> {name: optimizer}, keyed '<module path>:<name>'."""
    out = {}
    for path, mod in model.named_modules():
        own = getattr(type(mod), "owned_optimizers", None)
        if own is not None:
            out.update({f"{path}:{k}": o for k, o in own(mod).items()})
    return out


def owned_optimizer_states(model: nn.Module) -> dict[str, dict]:
    return {k: o.state_dict() for k, o in owned_optimizers(model).items()}


def load_owned_optimizers(model: nn.Module, states: dict[str, dict]) -> None:
    opts = owned_optimizers(model)
    if set(states) != set(opts):
        raise ValueError(f"owned optimizers {sorted(states)} in the checkpoint, {sorted(opts)} in the model")
    for k, o in opts.items():
        o.load_state_dict(states[k])


def to_host(obj):
    """A deep copy of a checkpoint's state with every tensor on the CPU (a snapshot: training may go on)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return copy.deepcopy(obj)


def as_random_state(state):
    """random.setstate wants tuples; a checkpoint may hand back lists."""
    return tuple(tuple(s) if isinstance(s, list) else s for s in state)


class CheckpointWriter:
    """Writes one checkpoint at a time in a background thread (atomically: files.save_torch), so that the
    training loop waits only for its host snapshot. wait() joins the write in progress and re-raises its error."""

    def __init__(self):
        self._thread, self._error = None, None

    def start(self, state: dict, path: Path) -> None:
        self.wait()

        def write():
            try:
                save_torch(state, path)
            except BaseException as exc:  # handed to the training thread by wait()
                self._error = exc

        self._thread = threading.Thread(target=write, name="hyperbench-checkpoint", daemon=True)
        self._thread.start()

    def wait(self, raise_error: bool = True) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error
