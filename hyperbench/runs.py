"""A finished run directory read back: its config and its model with the saved best weights (for
task.compare_with, transfer evaluation with eval.run, and the report's kernel figures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from .data import dataset_info
from .errors import ConfigError
from .models import model_from_config


def model_from_run(run_dir, task: str | None = None, build=None) -> tuple[Any, nn.Module]:
    """(config, model with its saved best weights) of a finished run directory. `task`: the task the
    run must come from (checked before anything is built); `build(cfg)`: how to make the model when
    the data/model config alone does not say (default: model_from_config for the run's dataset)."""
    run_dir = Path(str(run_dir)).expanduser()
    cfg_file, weights = run_dir / ".hydra" / "config.yaml", run_dir / "model.pt"
    kind = f"task={task} run" if task else "hyperbench run"
    if not cfg_file.exists() or not weights.exists():
        raise ConfigError(
            f"'{run_dir}' is not a finished {kind}: it needs .hydra/config.yaml and model.pt "
            f"(runs write model.pt unless trainer.save_model=false)."
        )
    cfg = OmegaConf.load(cfg_file)
    if task is not None and OmegaConf.select(cfg, "task.name") != task:
        raise ConfigError(f"'{run_dir}' is a task={OmegaConf.select(cfg, 'task.name')} run; a {kind} is needed.")
    if build is None:
        shape, num_classes = dataset_info(str(cfg.data.name))
        model = model_from_config(cfg.model, num_classes, shape, cfg.get("hypernet"))
    else:
        model = build(cfg)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    return cfg, model
