"""The decoder-reconstruction grid of task=invariance for models that have `reconstruct(x)` (capsnet):
test images of the restricted digits at angles inside and outside their training range, each input above
the model's reconstruction, which is masked by the predicted class (Potapov's invariance article: out-of-range 3s and 4s are
reconstructed as other digits)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import Split
from ..files import save_figure
from ..data.geometry import rotate
from ..protocols.rotation import RotationProtocol


def inside(angle: float, lo: float, hi: float) -> bool:
    """Whether `angle` (degrees) lies in the range [lo, hi] modulo 360."""
    return hi - lo >= 360 or (angle - lo) % 360 <= hi - lo


def reconstruction_grid(model, split: Split, protocol: RotationProtocol, angles: list[float], per_digit: int,
                        out: Path, title: str, fmt=lambda t: t) -> dict:
    """Write `out` (PNG): the first `per_digit` images of each restricted digit in `split` (unrotated, remapped
    labels) at every angle. Returns what it shows: {"digits": [...], "angles": [...]}."""
    xs, names = [], []
    for digit, label in zip(protocol.restricted, protocol.restricted_labels()):
        idx = torch.nonzero(split.y == label).flatten()[:per_digit]
        xs.append(split.x[idx])
        names += [f"digit {digit}"] * len(idx)
    x = torch.cat(xs)
    rotated = torch.stack([rotate(x, float(a)) for a in angles], 1)  # [R, A, C, H, W]
    flat = rotated.flatten(0, 1)
    with torch.inference_mode():
        recon, pred = model.reconstruct(fmt(flat))
    recon, pred = recon.view_as(rotated), pred.view(len(x), len(angles)).cpu()
    lo, hi = protocol.restricted_range
    cols = [f"{a:+g}° ({'in' if inside(a, lo, hi) else 'out'})" for a in angles]
    cells = [[f"read as {protocol.digits[int(p)]}" for p in row] for row in pred]
    from ..viz.plots import reconstruction_figure

    save_figure(reconstruction_figure(rotated, recon, names, cols, cells, title), out)
    return {"digits": list(protocol.restricted), "angles": [float(a) if a % 1 else int(a) for a in angles]}
