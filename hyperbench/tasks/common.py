"""What every task does around the engine: pick the device, record results, write files atomically."""
from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from omegaconf import DictConfig

from ..training.engine import FitResult
from ..errors import HyperbenchError, StorageError
from ..files import save_torch, write_json, write_text

log = logging.getLogger("hyperbench")


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_header(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """Facts identifying a run, repeated at the top of its metrics.json."""
    return {
        "task": str(cfg.task.name),
        "data": str(cfg.data.name),
        "model": str(cfg.model.name),
        "seed": int(cfg.seed),
        "device": str(device),
        "torch": torch.__version__,
        "host_cpu": platform.processor() or platform.machine(),
        **device_facts(device),
    }


def device_facts(device: torch.device) -> dict[str, Any]:
    """The accelerator a run used: its name, and the CUDA version torch was built with (None without CUDA)."""
    name = platform.processor() or platform.machine()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = f"Apple MPS ({platform.machine()})"
    return {"device_name": name, "cuda": torch.version.cuda}


def hypernet_label(cfg: DictConfig) -> str | None:
    """'hypernet=static N_z=5 d=5 init=variance param=plain ...' when the run hypernetizes layers, else None."""
    h = cfg.get("hypernet")
    if h is None or h.get("name", "none") == "none":
        return None
    keys = ("z_dim", "d", "targets", "tile", "chunk", "init", "param", "cond_dim", "num_tasks")
    skip = {"tile"} if h.get("chunk") else set()  # flat chunks: the tile size plays no part
    return f"hypernet={h.name} " + " ".join(f"{k}={h.get(k)}" for k in keys
                                            if h.get(k) not in (None, 0) and k not in skip)


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_text(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_json(run_dir / "metrics.json", metrics)


def finish(cfg: DictConfig, run_dir: Path, metrics: dict[str, Any], weights: dict | None = None) -> dict[str, Any]:
    """The end every task shares: metrics.json, and with trainer.save_model the weights (the best epoch's) as
    model.pt. Returns the metrics."""
    write_metrics(run_dir, metrics)
    if weights is not None and cfg.trainer.save_model:
        save_torch(weights, run_dir / "model.pt")
    return metrics


def fit_metrics(result: FitResult, epochs_planned: int) -> dict[str, Any]:
    """Headline numbers of a fit: the best-validation epoch's val_* and test_* metrics."""
    times = [row["epoch_time_s"] for row in result.history]
    last = result.history[-1] if result.history else {}
    return {
        **result.best,
        "best_epoch": result.best_epoch,
        "epochs": epochs_planned,
        "epochs_completed": len(result.history),
        **{f"final_{k}": v for k, v in last.items() if k.startswith("test_")},
        "precision": result.precision,  # what the model ran in (fp32, bf16, fp16): part of the report's config
        "compiled": list(result.compiled),
        "wall_time_s": round(result.wall_time_s, 2),
        "checkpoint_wait_s": round(result.checkpoint_wait_s, 3),
        "seconds_per_epoch": round(sum(times) / len(times), 3) if times else None,
        **({"resumed_after_epoch": result.resumed_from_epoch} if result.resumed_from_epoch is not None else {}),
    }


def epoch_recorder(cfg: DictConfig, run_dir: Path):
    """on_epoch callback for Trainer.fit: rewrite history.csv and feed the configured logger.
    Returns (callback, close)."""
    from ..training.loggers import make_logger

    logger = make_logger(cfg, run_dir)

    def on_epoch(result: FitResult) -> None:
        write_history(run_dir, result.history)
        logger.log(result.history)

    return on_epoch, logger.close


def fit_recorded(trainer, model: nn.Module, data, objective, cfg: DictConfig, run_dir: Path,
                 facts: dict[str, Any]) -> FitResult:
    """trainer.fit with everything a run records: checkpoints (and trainer.resume) in run_dir,
    history.csv and the logger after every epoch, and, if the fit stops (divergence, Ctrl-C,
    crash), the history, best weights and partial metrics (`exc.partial_metrics`, which jobs.run
    writes into metrics.json) before the exception goes on."""
    trainer.run_dir = run_dir
    on_epoch, close_logger = epoch_recorder(cfg, run_dir)
    try:
        return trainer.fit(model, data, objective, on_epoch=on_epoch)
    except BaseException as exc:
        partial = getattr(trainer, "result", None)
        if partial is not None:
            try:  # on a full disk these may fail too: then the last version written stays, as on_epoch left it
                write_history(run_dir, partial.history)
                if partial.best_state is not None and cfg.trainer.save_model:
                    save_torch(partial.best_state, run_dir / "model.pt")
            except HyperbenchError as again:
                log.warning(f"while recording the stopped run: {again}")
            exc.partial_metrics = {**facts, **fit_metrics(partial, int(cfg.trainer.epochs))}
            if isinstance(exc, StorageError):
                saved = getattr(trainer, "saved_epoch", None)
                exc.args = (f"{exc} The run stopped after {len(partial.history)} finished epoch(s); kept in {run_dir}: "
                            f"history.csv as last written, "
                            + (f"checkpoint.pt of epoch {saved}" if saved is not None else "no checkpoint yet")
                            + ". Free some space and continue with trainer.resume=true (same hydra.run.dir).",)
        raise
    finally:
        close_logger()
