"""Models built by name, as in timm: @register_model("name") on a builder, create_model(arch, **options),
model_from_config(cfg.model, ...) for a Hydra model config."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch.nn as nn

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
