"""Figures written into run and report directories (headless: Agg backend)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402


def training_curves(history: pd.DataFrame, title: str):
    """Loss and accuracy per epoch for train/val/test; the best-validation epoch marked."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        if f"{split}_loss" in history:
            ax_l.plot(history.epoch, history[f"{split}_loss"], style, label=split)
        if f"{split}_acc" in history:
            ax_a.plot(history.epoch, 100 * history[f"{split}_acc"], style, label=split)
    if "val_acc" in history and len(history):
        best = history.epoch[history.val_acc.idxmax()]
        ax_a.axvline(best, color="grey", lw=0.8, label=f"best val (epoch {best})")
    ax_l.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax_a.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def kernel_canvas(kernel: torch.Tensor) -> np.ndarray:
    """[out, in, f, f] -> one image: a grid of out rows x in columns of f x f filters, 1px gaps."""
    k = kernel.detach().float().cpu().numpy()
    o, i, f, _ = k.shape
    canvas = np.full((o * (f + 1) + 1, i * (f + 1) + 1), np.nan)
    for r in range(o):
        for c in range(i):
            canvas[1 + r * (f + 1):1 + r * (f + 1) + f, 1 + c * (f + 1):1 + c * (f + 1) + f] = k[r, c]
    return canvas


def kernels_figure(panels: dict[str, torch.Tensor], title: str = ""):
    """Side-by-side kernel grids (seed 002 Figure 2: learned vs hypernetwork-generated)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.6), squeeze=False)
    for ax, (label, kernel) in zip(axes[0], panels.items()):
        canvas = kernel_canvas(kernel)
        lim = np.nanmax(np.abs(canvas))
        ax.imshow(canvas, cmap="Greys", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{label}\n{tuple(kernel.shape)}", fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if title else 1))
    return fig
