"""Figures of task=continual: the accuracy matrix as a heatmap, and every task's learning curve in sequence."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import plots  # noqa: F401  (selects the headless backend)
import matplotlib.pyplot as plt  # noqa: E402


def accuracy_heatmap(acc: pd.DataFrame, title: str):
    """acc: rows 'after task i' (or 'joint'), columns 'task j', fractions (NaN = not yet seen)."""
    values = 100 * acc.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * values.shape[1], 1.2 + 0.55 * values.shape[0]))
    im = ax.imshow(np.ma.masked_invalid(values), vmin=50, vmax=100, cmap="viridis")
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < 80 else "black")
    ax.set_xticks(range(values.shape[1]), acc.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(values.shape[0]), acc.index, fontsize=8)
    ax.set(xlabel="evaluated on", ylabel="after training on", title=title)
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame, title: str):
    """history: rows of every task's epochs (columns stage, global_epoch, train_loss, val_acc, test_acc):
    the training loss and the current task's val/test accuracy, one colour per task, in sequence."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    for stage, rows in history.groupby("stage", sort=False):
        line, = ax_l.plot(rows.global_epoch, rows.train_loss, "-o", ms=3, label=f"task {stage}")
        ax_a.plot(rows.global_epoch, 100 * rows.test_acc, "-o", ms=3, color=line.get_color(),
                  label=f"task {stage} test")
        ax_a.plot(rows.global_epoch, 100 * rows.val_acc, "--", color=line.get_color(), lw=0.8)
    ax_l.set(xlabel="epoch (all tasks in sequence)", ylabel="training loss", yscale="log", title="loss")
    ax_a.set(xlabel="epoch (all tasks in sequence)", ylabel="accuracy on the task being learned (%)",
             title="accuracy (solid test, dashed val)")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
    ax_l.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
