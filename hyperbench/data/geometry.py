"""Batched, on-device augmentation: no per-image Python."""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..precision import no_autocast


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


def rotate(x: torch.Tensor, degrees: torch.Tensor | float, fill: float = 0.0) -> torch.Tensor:
    """Rotate images x [N, C, H, W] about their centre, bilinear, `fill` outside; one angle per image.

    Positive angles turn the image counterclockwise as displayed. Output pixel p samples the input at
    R(-angle) p (pixel coordinates about the centre, y pointing down).
    """
    n, _, h, w = x.shape
    # float32 (MPS has no float64); cos/sin of a float32 angle are exact to ~1e-7, far below a pixel
    a = torch.as_tensor(degrees, dtype=torch.float32, device=x.device).expand(n) * (math.pi / 180)
    c, s = torch.cos(a), torch.sin(a)
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
    # affine_grid works in coordinates normalised to [-1, 1] per axis; w/h keeps non-square images round
    theta[:, 0, 0], theta[:, 0, 1] = c, -s * h / w
    theta[:, 1, 0], theta[:, 1, 1] = s * w / h, c
    return warp(x, theta, fill)
