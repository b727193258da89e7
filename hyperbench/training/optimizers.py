"""Optimizers beyond torch.optim's defaults, for recipes written in other frameworks."""
from __future__ import annotations

import torch


class TFRMSprop(torch.optim.RMSprop):
    """RMSProp as TensorFlow 1's tf.train.RMSPropOptimizer (the semantic-vision autoencoders' optimizer):
    decay 0.9, epsilon 1e-10 and the mean-square accumulator starting at ONE, so the first steps are about
    lr * g (tiny). torch.optim.RMSprop starts the accumulator at zero: its first step is lr * g / (0.1 |g|),
    10 x lr per weight whatever the gradient, which saturates the transform autoencoder's tanh output
    (docs/studies/transformations.md)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, alpha=0.9, eps=1e-10, momentum=momentum, weight_decay=weight_decay)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                if momentum > 0:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
