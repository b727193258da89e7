"""Tasks: each is run(cfg, run_dir) -> metrics, built on the shared engine."""
from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from . import classify, compensate, continual, invariance, summary, transform

TASKS: dict[str, Callable] = {"classify": classify.run, "compensate": compensate.run, "continual": continual.run,
                               "invariance": invariance.run,
                               "summary": summary.run, "transform": transform.run}


def get_task(name: str) -> Callable:
    if name not in TASKS:
        raise ConfigError(f"Unknown task '{name}'. Known tasks: {', '.join(sorted(TASKS))}. Choose one with task=<name>.")
    return TASKS[name]
