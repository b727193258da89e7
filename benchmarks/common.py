"""Helpers the benchmark modules share: composing a hyperbench config, waiting for the device."""
from __future__ import annotations

import torch
from hydra import compose, initialize_config_module

from hyperbench.config import CONF_PACKAGE


def config(*overrides: str):
    with initialize_config_module(config_module=CONF_PACKAGE, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn, device: torch.device, calls: int, warmup: int = 2) -> float:
    """Mean seconds of fn() over `calls` calls, after `warmup` untimed ones (the device waited for)."""
    import time

    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / calls
