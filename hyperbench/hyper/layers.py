"""Layers whose weight a (shared) KernelGenerator makes: HyperConv2d and HyperLinear.

Each learns one embedding per tile (or flat chunk) and an ordinary bias; the bias is not generated (it
starts at zero, or, with param=mip, keeps the replaced layer's bias). With param=mip the layer also learns
theta_0, an ordinary weight of the layer's shape, and uses theta_0 + g(z). Tiles are ordered
(out tile, in tile): a 32->48 layer made of 16x16 tiles has 3 x 2 = 6 embeddings.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .generator import KernelGenerator


class GeneratedWeight(nn.Module):
    """Common part: embeddings, weight assembly from tiles/chunks, conditioning, MIP's theta_0."""

    kind = "layer"

    def _setup(self, g: KernelGenerator, out_f: int, in_f: int, kh: int, kw: int, name: str,
               fan: int | None = None) -> None:
        self.generator = [g]  # a list, so the shared generator is not registered as our child
        self.name = name
        self.shape = (out_f, in_f, kh, kw)
        numel = out_f * in_f * kh * kw
        if g.flat:
            if numel % g.out_size:
                raise ConfigError(
                    f"Layer '{name}' ({self.kind}, weight {self._shape_str()} = {numel:,} numbers) cannot be cut "
                    f"into flat chunks of {g.out_size:,} numbers: the chunk size must divide the weight's size "
                    f"(e.g. hypernet.chunk={math.gcd(numel, g.out_size)} or a divisor of {numel:,}).")
            self.tiles_out, self.tiles_in = numel // g.out_size, 1
        else:
            if (kh, kw) != (g.ksize, g.ksize):
                raise ConfigError(
                    f"Layer '{name}' ({self.kind}, weight {self._shape_str()}) has a {kh}x{kw} kernel, but the "
                    f"shared generator makes {g.out_size}x{g.in_size}x{g.ksize}x{g.ksize} tiles (from the first "
                    f"target): one tile generator serves layers of one kernel size. Cut every target into flat "
                    f"chunks instead (hypernet.chunk=N, N dividing each target's weight size) or hypernetize "
                    f"layers of one kernel size.")
            if in_f % g.in_size or out_f % g.out_size:
                raise ConfigError(
                    f"Layer '{name}' ({in_f}->{out_f} channels) cannot be tiled from the hypernetwork's "
                    f"{g.in_size}->{g.out_size} kernel tiles: both channel counts must be multiples of the "
                    f"tile size (pick a tile that divides both, e.g. hypernet.tile={math.gcd(in_f, out_f)} "
                    f"(model.tile= for vgg_hyper), or cut the weights into flat chunks with hypernet.chunk=N).")
            self.tiles_in, self.tiles_out = in_f // g.in_size, out_f // g.out_size
        self.z = nn.Parameter(g.new_embedding(self.tiles_out * self.tiles_in, fan))
        self.theta0: nn.Parameter | None = None
        self.encoder = nn.Linear(in_f, g.cond_dim) if g.conditioning == "input" else None

    def _shape_str(self) -> str:
        out_f, in_f, kh, kw = self.shape
        return f"{out_f}x{in_f}" + (f"x{kh}x{kw}" if self.kind == "Conv2d" else "")

    @property
    def num_tiles(self) -> int:
        return self.tiles_in * self.tiles_out

    def generated(self, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The weight [out, in, kh, kw] (static, task, param), or [N, out, in, kh, kw] for a condition
        per example [N, cond_in]; theta_0 added under MIP."""
        g = self.generator[0]
        zin = g.inputs(self.z, cond)
        batch = zin.shape[:-2]  # () or (N,)
        k = g(zin.reshape(-1, zin.shape[-1]))  # [B*T, o, i, f, f]
        out_f, in_f, kh, kw = self.shape
        if g.flat:
            w = k.reshape(*batch, out_f, in_f, kh, kw)
        else:
            k = k.view(*batch, self.tiles_out, self.tiles_in, g.out_size, g.in_size, kh, kw)
            k = k.permute(0, 2, 1, 3, 4, 5) if not batch else k.permute(0, 1, 3, 2, 4, 5, 6)
            w = k.reshape(*batch, out_f, in_f, kh, kw)
        return w if self.theta0 is None else w + self.theta0.reshape(out_f, in_f, kh, kw)

    def _static_condition(self):
        g = self.generator[0]
        if g.conditioning == "input":  # the kernel for a zero code: what `weight` shows
            return torch.zeros(g.cond_in, device=self.z.device, dtype=self.z.dtype)
        return g.condition_vector()

    def _example_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Input conditioning: each example's code [N, cond_dim] from this layer's own input (its mean over
        positions, then a learned linear map)."""
        pooled = x.float().mean(tuple(range(2, x.dim()))) if self.kind == "Conv2d" else \
            x.reshape(x.shape[0], -1, x.shape[-1]).float().mean(1)
        return self.encoder(pooled.to(self.encoder.weight.dtype))

    def extra_repr(self) -> str:
        g = self.generator[0]
        what = f"chunks={self.num_tiles}x{g.out_size}" if g.flat else f"tiles={self.tiles_out}x{self.tiles_in}"
        return f"{self._shape_str()}, {what}, z_dim={g.z_dim}" + (", mip" if self.theta0 is not None else "")


class HyperConv2d(GeneratedWeight):
    """A conv layer (groups=1) whose kernel the generator makes."""

    kind = "Conv2d"

    def __init__(self, generator: KernelGenerator, in_channels: int, out_channels: int,
                 padding: int | str | tuple = "same", bias: bool = True, name: str = "conv",
                 kernel_size: tuple[int, int] | None = None, stride=1, dilation=1, fan: int | None = None):
        super().__init__()
        kh, kw = kernel_size or (generator.ksize, generator.ksize)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self._setup(generator, out_channels, in_channels, kh, kw, name, fan)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """The generated kernel [out_channels, in_channels, kh, kw]."""
        return self.generated(self._static_condition())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        n, c, h, wd = x.shape
        w = self.generated(self._example_codes(x))  # [N, out, in, kh, kw]: one grouped conv, groups = N
        b = None if self.bias is None else self.bias.repeat(n)
        y = F.conv2d(x.reshape(1, n * c, h, wd), w.reshape(n * self.out_channels, c, *w.shape[-2:]).to(x.dtype),
                     b, self.stride, self.padding, self.dilation, groups=n)
        return y.view(n, self.out_channels, *y.shape[2:])


class HyperLinear(GeneratedWeight):
    """A linear layer whose weight [out, in] the generator makes (a 1x1 kernel to a tile generator)."""

    kind = "Linear"

    def __init__(self, generator: KernelGenerator, in_features: int, out_features: int, bias: bool = True,
                 name: str = "linear", fan: int | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup(generator, out_features, in_features, 1, 1, name, fan)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return self.generated(self._static_condition()).view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return F.linear(x, self.weight, self.bias)
        n = x.shape[0]
        w = self.generated(self._example_codes(x)).view(n, self.out_features, self.in_features)
        y = torch.einsum("noi,nsi->nso", w.to(x.dtype), x.reshape(n, -1, self.in_features))  # batched, no loop
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)
