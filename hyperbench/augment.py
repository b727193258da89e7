"""Batched, on-device augmentation: no per-image Python."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .precision import no_autocast


@functools.lru_cache(maxsize=128)
def constant(values: tuple, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A small constant tensor made once per device (a host-to-device copy per training batch would
    be a synchronisation on a GPU). Shared: do not modify it in place."""
    return torch.tensor(values, device=device, dtype=dtype)


def crop_at(x: torch.Tensor, pad: int, oy: torch.Tensor, ox: torch.Tensor) -> torch.Tensor:
    """Zero-pad `x` [N,C,H,W] by `pad` on every side and cut an HxW window at (oy[i], ox[i]) per image.

    The result is channels_last in memory (it is gathered pixel by pixel across channels).
    """
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # [N, H+2p, W+2p, C]
    rows = oy[:, None] + torch.arange(h, device=x.device)  # [N, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return xp[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Vineet's CS618 report augmentation: pad by `pad` pixels, then a random crop back to the input size."""
    if pad <= 0:
        return x
    n = x.shape[0]
    oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    return crop_at(x, pad, oy, ox)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, [N, C, h, w], align_corners=False) as one matrix product: the h*w base
    points [x, y, 1] times all N 2x3 matrices at once (F.affine_grid does N small products and was
    most of the time of a batched rotation on CPU). Returns a [N, h, w, 2] view."""
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones_like(xs).expand(h, w)], -1)
    n = theta.shape[0]
    return (base.view(h * w, 3) @ theta.reshape(n * 2, 3).T).view(h, w, n, 2).permute(2, 0, 1, 3)


def warp(x: torch.Tensor, theta: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Apply one 2x3 affine map per image (output -> input coordinates, normalised to [-1, 1]),
    bilinear, `fill` outside the image."""
    with no_autocast(x.device):  # the grid in float32 whatever the caller's autocast (targets, docs/gpu.md)
        grid = affine_grid(theta.to(torch.float32), x.shape[2], x.shape[3]).to(x.dtype)
    if fill == 0.0:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
