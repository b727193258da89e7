"""Potapov, "Can Deep Networks Learn Invariants?", "Recognition" classifiers: the reference CNN family and a dynamic hypernetwork row.

    cnn:  conv 64 4x4 s2 -> leaky-ReLU(0.1) -> conv 128 4x4 s2 -> leaky-ReLU -> dense 1024 -> leaky-ReLU -> dense K
          (padding 1, i.e. TensorFlow's 'same' for 4x4 stride 2: 28 -> 14 -> 7)
    batch_norm: BatchNorm2d after each conv (before the activation)
    dropout:    dropout before the output layer
    extra_convs: more conv layers (3x3 stride 1, same width) after the second conv (cnn_deep)
    hyper_cnn:  the first conv's kernels (and bias) are generated per example by a control network
                that sees the input image; the rest is the cnn.
The config rows (conf/model/cnn*.yaml, hyper_cnn.yaml) set these options; K comes from the data.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .registry import positive_int, register_model



def _conv_out(size: int, k: int = 4, s: int = 2, p: int = 1) -> int:
    return (size + 2 * p - k) // s + 1


class ConvBlock(nn.Module):
    """conv -> (batch norm) -> leaky-ReLU(0.1)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), 0.1)


class RotationCNN(nn.Module):
    """The invariance-study reference CNN and its variants. `first` replaces the first conv (hyper_cnn)."""

    def __init__(self, num_classes: int = 8, in_channels: int = 1, image_size: int = 28,
                 channels: tuple[int, int] = (64, 128), hidden: int = 1024, batch_norm: bool = False,
                 dropout: float = 0.0, extra_convs: int = 0, first: nn.Module | None = None):
        super().__init__()
        c1, c2 = (positive_int("channels", int(c)) for c in channels)
        self.conv1 = first if first is not None else ConvBlock(in_channels, c1, 4, 2, 1, batch_norm)
        self.conv2 = ConvBlock(c1, c2, 4, 2, 1, batch_norm)
        self.extra = nn.Sequential(*[ConvBlock(c2, c2, 3, 1, 1, batch_norm) for _ in range(extra_convs)])
        side = _conv_out(_conv_out(image_size))
        self.fc1 = nn.Linear(c2 * side * side, positive_int("hidden", hidden))
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.extra(self.conv2(self.conv1(x)))
        x = F.leaky_relu(self.fc1(x.flatten(1)), 0.1)
        return self.fc2(self.drop(x))


class DynamicConv2d(nn.Module):
    """A conv layer whose kernel and bias a control network generates from each input image.

    control: conv 4x4 s2 -> leaky-ReLU -> conv 4x4 s2 -> leaky-ReLU -> global mean -> dense -> leaky-ReLU
             -> dense to (cout * cin * k * k + cout) numbers = this image's kernel and bias.
    The generated kernel is a learned static kernel plus the input-dependent part. All examples are
    convolved at once as one grouped convolution (groups = batch size), no loop over examples.
    """

    def __init__(self, cin: int, cout: int, k: int = 4, stride: int = 2, padding: int = 1,
                 control_channels: int = 32, control_hidden: int = 128):
        super().__init__()
        self.cin, self.cout, self.k, self.stride, self.padding = cin, cout, k, stride, padding
        cc, ch = control_channels, control_hidden
        self.control = nn.Sequential(
            nn.Conv2d(cin, cc, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(cc, cc, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(cc, ch), nn.LeakyReLU(0.1),
        )
        self.head = nn.Linear(ch, cout * cin * k * k + cout)
        # the static part starts as PyTorch's default conv init; the dynamic part at a tenth of its scale
        bound = 1 / math.sqrt(cin * k * k)
        self.base_weight = nn.Parameter(torch.empty(cout, cin, k, k).uniform_(-bound, bound))
        self.base_bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))
        nn.init.normal_(self.head.weight, std=0.1 * bound / math.sqrt(ch))
        nn.init.zeros_(self.head.bias)

    def kernels_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example kernels [N, cout, cin, k, k] and biases [N, cout]."""
        n = x.shape[0]
        out = self.head(self.control(x))
        w = out[:, :-self.cout].view(n, self.cout, self.cin, self.k, self.k) + self.base_weight
        b = out[:, -self.cout:] + self.base_bias
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, wd = x.shape
        w, b = self.kernels_for(x)
        y = F.conv2d(x.reshape(1, n * self.cin, h, wd), w.reshape(n * self.cout, self.cin, self.k, self.k),
                     b.reshape(n * self.cout), stride=self.stride, padding=self.padding, groups=n)
        return F.leaky_relu(y.view(n, self.cout, *y.shape[2:]), 0.1)


@register_model("cnn")
def cnn(num_classes: int = 8, in_channels: int = 1, image_size: int = 28, channels=(64, 128), hidden: int = 1024,
        batch_norm: bool = False, dropout: float = 0.0, extra_convs: int = 0) -> RotationCNN:
    if not 0 <= float(dropout) < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}.")
    if isinstance(extra_convs, bool) or not isinstance(extra_convs, int) or extra_convs < 0:
        raise ConfigError(f"model.extra_convs must be a non-negative integer, got {extra_convs!r}.")
    return RotationCNN(num_classes, in_channels, image_size, tuple(channels), hidden, bool(batch_norm),
                       float(dropout), extra_convs)


@register_model("hyper_cnn")
def hyper_cnn(num_classes: int = 8, in_channels: int = 1, image_size: int = 28, channels=(64, 128),
              hidden: int = 1024, control_channels: int = 32, control_hidden: int = 128) -> RotationCNN:
    c1 = positive_int("channels", int(channels[0]))
    first = DynamicConv2d(in_channels, c1, control_channels=positive_int("control_channels", control_channels),
                          control_hidden=positive_int("control_hidden", control_hidden))
    return RotationCNN(num_classes, in_channels, image_size, tuple(channels), hidden, first=first)
