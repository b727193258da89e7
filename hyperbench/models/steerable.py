"""A rotation-equivariant classifier: a steerable CNN on the cyclic group C_N (Weiler & Cesa,
"General E(2)-Equivariant Steerable CNNs", NeurIPS 2019, through their `e2cnn` library).

    steerable_cnn:  pad to an odd side (29x29, so that stride-2 sampling commutes with rot90)
        -> R2Conv trivial -> c1 regular fields 5x5 -> InnerBatchNorm -> ReLU -> antialiased avg pool s2
        -> R2Conv c1 -> c2 regular fields 5x5 -> InnerBatchNorm -> ReLU -> antialiased avg pool s2
        -> R2Conv c2 -> c2 regular fields 3x3 -> InnerBatchNorm -> ReLU
        -> group pooling (max over the N rotations of each field: rotation-invariant channels)
        -> global average over space -> dense hidden -> ELU -> dense K
A regular field of C_N is N channels, so c1 = 8, c2 = 16 fields of C8 are 64 and 128 channels, the widths
of the `cnn` row. The logits are exactly invariant to rotations by multiples of 360/N degrees that map
the pixel grid onto itself (90 degrees for N = 4, 8, 16) and approximately to the others: invariance
is built in, not learned, which is the row no source measured.

e2cnn is an optional dependency (`pip install hyperbench[equivariant]`, included by `make install`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .registry import positive_int, register_model


def _e2cnn():
    try:
        from e2cnn import gspaces, nn as enn
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "model=steerable_cnn needs the e2cnn package (Weiler & Cesa's library): "
            "pip install 'hyperbench[equivariant]' (make install includes it)."
        ) from err
    return gspaces, enn


class SteerableCNN(nn.Module):
    channels_last = False  # e2cnn's GeometricTensor expects contiguous NCHW

    def __init__(self, num_classes: int = 10, in_channels: int = 1, group_order: int = 8,
                 channels: tuple[int, int] = (8, 16), hidden: int = 256):
        super().__init__()
        gspaces, enn = _e2cnn()
        self.enn = enn
        self.gspace = gspaces.Rot2dOnR2(N=group_order)
        c1, c2 = channels
        self.in_type = enn.FieldType(self.gspace, in_channels * [self.gspace.trivial_repr])
        t1 = enn.FieldType(self.gspace, c1 * [self.gspace.regular_repr])
        t2 = enn.FieldType(self.gspace, c2 * [self.gspace.regular_repr])

        def block(tin, tout, k, pool):
            layers = [enn.R2Conv(tin, tout, kernel_size=k, padding=k // 2, bias=False),
                      enn.InnerBatchNorm(tout), enn.ReLU(tout, inplace=True)]
            if pool:
                layers.append(enn.PointwiseAvgPoolAntialiased(tout, sigma=0.66, stride=2, padding=2))
            return layers

        self.features = enn.SequentialModule(*block(self.in_type, t1, 5, True), *block(t1, t2, 5, True),
                                             *block(t2, t2, 3, False))
        self.group_pool = enn.GroupPooling(t2)
        self.head = nn.Sequential(nn.Linear(c2, hidden), nn.ELU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 == 0:  # odd side: the stride-2 sampling grid is symmetric under rot90
            x = F.pad(x, (0, 1, 0, 1), value=float(x.amin()))
        h = self.features(self.enn.GeometricTensor(x.contiguous(), self.in_type))
        h = self.group_pool(h).tensor  # [N, c2, H, W], invariant over the group at every position
        return self.head(h.mean(dim=(2, 3)))


@register_model("steerable_cnn")
def steerable_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, group_order: int = 8,
                  channels=(8, 16), hidden: int = 256) -> SteerableCNN:
    n = positive_int("group_order", group_order)
    if len(channels) != 2:
        raise ConfigError(f"model.channels must be two field counts [c1, c2], got {list(channels)!r}.")
    c1, c2 = (positive_int("channels", int(c)) for c in channels)
    return SteerableCNN(num_classes, in_channels, n, (c1, c2), positive_int("hidden", hidden))
