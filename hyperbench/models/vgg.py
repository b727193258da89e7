"""Vineet's CS618 report CIFAR-10 main network (Table 1): VGG-BlockN, its conv kernels learned or generated.

    block b (channels 16, 32, 64):  conv 3x3 same, ReLU, conv 3x3 same, ReLU, max-pool 2, dropout 0.4
    VGG-BlockN = blocks 1..N, then dense 128, ReLU, dropout, dense 10

In the hypernetwork version one static hypernetwork (hyper.KernelGenerator) makes 16x16x3x3 kernel
tiles, and every conv layer except the first (3 input channels) is a HyperConv2d assembling its
kernel from tiles, one learned embedding per tile (16->32: 2 tiles, 32->32: 4, 64->64: 16).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..hyper import HyperConv2d, build_hypernetized
from .mnist_net import check_hyper_size
from .registry import register_model

WIDTHS = (16, 32, 64)


class VGGBlocks(nn.Module):
    def __init__(self, blocks: int = 1, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                 block_dropout: float = 0.4, dense_dropout: float = 0.5, hidden: int = 128, ksize: int = 3):
        super().__init__()
        if not 1 <= blocks <= len(WIDTHS):
            raise ConfigError(f"model.blocks must be 1, 2 or 3 (VGG-Block1..3 of Vineet's CS618 report), got {blocks!r}.")
        for key, p in (("block_dropout", block_dropout), ("dense_dropout", dense_dropout)):
            if not 0 <= p < 1:
                raise ConfigError(f"model.{key} must be a probability in [0, 1), got {p!r}.")
        self.hypernet = None  # set by hyperbench.hyper when layers are hypernetized
        self.blocks = blocks
        c = in_channels
        for b in range(blocks):
            layers = {}
            for j in range(2):
                w = WIDTHS[b]
                layers[f"conv{j + 1}"] = nn.Conv2d(c, w, ksize, padding=ksize // 2)
                c = w
            setattr(self, f"block{b + 1}", nn.ModuleDict(layers))
        self.block_dropout = nn.Dropout(block_dropout)
        self.fc1 = nn.Linear(c * (image_size >> blocks) ** 2, hidden)
        self.dense_dropout = nn.Dropout(dense_dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def named_convs(self) -> list[tuple[str, nn.Module]]:
        """[("block1.conv1", layer), ("block1.conv2", layer), ...] in forward order."""
        return [(f"block{b}.{k}", m) for b in range(1, self.blocks + 1) for k, m in getattr(self, f"block{b}").items()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in range(1, self.blocks + 1):
            block = getattr(self, f"block{b}")
            x = F.relu(block.conv2(F.relu(block.conv1(x))))
            x = self.block_dropout(F.max_pool2d(x, 2))
        x = self.dense_dropout(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)

    def conv_params(self) -> int:
        """Vineet's CS618 report's "Conv Parameters": every conv layer but the first. Learned layers count weight
        and bias; a hypernetwork counts its generator once plus every tile embedding (the
        un-generated biases are not counted, as in Table 2)."""
        rest = [m for _, m in self.named_convs()[1:]]
        gen = 0 if self.hypernet is None else sum(p.numel() for p in self.hypernet.parameters())
        return gen + sum(c.z.numel() if isinstance(c, HyperConv2d) else sum(p.numel() for p in c.parameters())
                         for c in rest)

    def kernels(self) -> dict[str, torch.Tensor]:
        """The first 16->16 kernel (block1.conv2), learned or generated: comparable across models."""
        return {"block1.conv2": self.block1.conv2.weight.detach()}


@register_model("vgg_conv")
def vgg_conv(blocks: int = 1, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
             block_dropout: float = 0.4, dense_dropout: float = 0.5, hidden: int = 128) -> VGGBlocks:
    return VGGBlocks(blocks, num_classes, in_channels, image_size, block_dropout, dense_dropout, hidden)


@register_model("vgg_hyper")
def vgg_hyper(blocks: int = 1, z_dim: int = 4, d: int = 4, tile: int = 16, num_classes: int = 10,
              in_channels: int = 3, image_size: int = 32, block_dropout: float = 0.4,
              dense_dropout: float = 0.5, hidden: int = 128) -> VGGBlocks:
    """VGG-BlockN with every conv but the first generated: hypernetize with tile x tile x 3 x 3 tiles."""
    z_dim, d = check_hyper_size("z_dim", z_dim), check_hyper_size("d", d)
    return build_hypernetized(lambda: VGGBlocks(blocks, num_classes, in_channels, image_size, block_dropout,
                                                dense_dropout, hidden),
                              targets=None, z_dim=z_dim, d=d, tile=tile, label=f"model vgg_block{blocks}")
