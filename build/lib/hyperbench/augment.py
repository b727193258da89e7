"""Batched, on-device augmentation: no per-image Python."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """Seed 002 augmentation: pad by `pad` pixels, then a random crop back to the input size."""
    if pad <= 0:
        return x
    n = x.shape[0]
    oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    return crop_at(x, pad, oy, ox)
