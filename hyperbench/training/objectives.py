"""What a task plugs into the engine: its loss, its metrics on a split, optional batched augmentation, and the
validation metric that chooses the best epoch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..data import Split


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
