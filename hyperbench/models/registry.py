"""Models built by name, as in timm: @register_model("name") on a builder, create_model(cfg)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from ..data import dataset_info
from ..errors import ConfigError

MODELS: dict[str, Callable[..., nn.Module]] = {}

# Keys of a model config that describe the run, not the builder's arguments.
_META_KEYS = {"name", "arch"}


def positive_int(name: str, value) -> int:
    """`value` if it is a positive integer (not a bool), else a ConfigError naming model.<name>."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model.{name} must be a positive integer, got {value!r}.")
    return value


def register_model(name: str):
    def deco(fn):
        if name in MODELS:
            raise ValueError(f"model architecture '{name}' registered twice")
        MODELS[name] = fn
        return fn

    return deco


def create_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build architecture `arch`; keyword arguments the builder does not take are an error,
    except data facts (num_classes, in_channels, image_size) that only some builders need."""
    if arch not in MODELS:
        raise ConfigError(
            f"Unknown model architecture '{arch}'. Registered architectures: {', '.join(sorted(MODELS))}. "
            f"Pick a model config with model=<name> (see conf/model/)."
        )
    builder = MODELS[arch]
    params = inspect.signature(builder).parameters
    data_keys = {"num_classes", "in_channels", "image_size"}
    unknown = [k for k in kwargs if k not in params and k not in data_keys]
    if unknown:
        raise ConfigError(
            f"Model '{arch}' takes no option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(p for p in params if p not in data_keys) or 'no options'}."
        )
    return builder(**{k: v for k, v in kwargs.items() if k in params})


def model_from_config(model_cfg, num_classes: int, shape: tuple[int, int, int], hypernet=None) -> nn.Module:
    """Build the model a Hydra `model` group entry describes, for data of `shape` (C, H, W); `hypernet`: the
    `hypernet` group entry (cfg.hypernet), whose targets' weights then come from a shared generator."""
    opts = {k: v for k, v in dict(model_cfg).items() if k not in _META_KEYS}

    def build() -> nn.Module:
        return create_model(
            str(model_cfg.arch), num_classes=num_classes, in_channels=shape[0], image_size=shape[1], **opts
        )

    if hypernet is None:
        return build()
    from ..hyper import from_config

    return from_config(hypernet, build, f"model {model_cfg.get('name', model_cfg.arch)}")


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
