"""Figures of task=transform: loss versus the transformation parameter, expected-vs-produced grids, and
the training loss per epoch (headless: Agg backend)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

# Potapov's HyperNets article's colours: autoencoders blue, shallow HyperNet red, deep HyperNet green.
MODEL_COLOURS = {"ae": "tab:blue", "aae": "navy", "hypernet_shallow": "tab:red", "hypernet_deep": "tab:green"}
MODEL_STYLES = {"aae": "--"}


def restricted_spans(transform) -> list[tuple[float, float]]:
    """The restricted digits' training range on the curve's axis."""
    from ..protocols.rotation import wrapped_spans

    lo, hi = transform.restricted_axis_range()
    return wrapped_spans(lo, hi) if transform.axis == "angle" else [(lo, hi)]


def transform_curve_figure(curves: dict[str, pd.DataFrame], transform, title: str = "", by_column: bool = False,
                           column: str | None = None):
    """One line per entry: by_column=True draws column `label` of each frame (one run, several digits);
    otherwise column `column` of each run's frame (several runs, one digit), coloured as in Potapov's HyperNets article."""
    fig, ax = _shaded_axes(transform, (8, 4.2))
    for label, df in curves.items():
        col = label if by_column else column
        kw = {} if by_column else {"color": MODEL_COLOURS.get(label), "ls": MODEL_STYLES.get(label, "-")}
        ax.plot(df[transform.axis], df[col], lw=1.3, label=label.replace("_", " "), **kw)
    x = curves[next(iter(curves))][transform.axis]
    ax.set(xlim=(float(x.min()), float(x.max())), ylim=(0, None), ylabel="reconstruction MSE")
    return _finish(fig, ax, transform, title)


def _shaded_axes(transform, size):
    """A figure whose axes shade the restricted digits' training range."""
    fig, ax = plt.subplots(figsize=size)
    digits = ", ".join(map(str, transform.restricted))
    for i, (a, b) in enumerate(restricted_spans(transform)):
        ax.axvspan(a, b, color="grey", alpha=0.12, lw=0, label=f"training range of {digits}" if i == 0 else None)
    return fig, ax


def _finish(fig, ax, transform, title: str):
    """The curve axis' label and ticks, grid, legend, title."""
    ax.set_xlabel(f"{transform.axis} ({transform.axis_unit})")
    if transform.axis == "angle":
        ax.set_xticks(range(-180, 181, 45))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def transform_grid_figure(inputs: torch.Tensor, expected: torch.Tensor, produced: torch.Tensor, values: list[float],
                          transform, title: str = "", first: str = "input"):
    """Rows = images; the input, then for each value an expected | produced pair (Potapov's invariance article's layout)."""
    k, v = len(inputs), len(values)
    side = inputs.shape[-1]
    gap = 2
    cols = 1 + 2 * v
    canvas = np.full((k * (side + gap) + gap, cols * side + (v + 1) * 3 * gap), np.nan)

    def put(img, r, x0):
        canvas[gap + r * (side + gap):gap + r * (side + gap) + side, x0:x0 + side] = img.detach().float().cpu().numpy()

    starts = []
    for r in range(k):
        x0 = gap
        put(inputs[r, 0], r, x0)
        x0 += side + 3 * gap
        for j in range(v):
            if r == 0:
                starts.append(x0)
            put(expected[j, r, 0], r, x0)
            put(produced[j, r, 0], r, x0 + side)
            x0 += 2 * side + 3 * gap
    fig, ax = plt.subplots(figsize=(1.1 * cols * 0.6 + 1, 0.66 * k + 1.0))
    ax.imshow(canvas, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([gap + side / 2] + [s + side for s in starts])
    unit = "°" if transform.axis == "angle" else " px"
    ax.set_xticklabels([first] + [f"{transform.axis} {val:g}{unit}" for val in values], fontsize=7)
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def loss_curves(history: pd.DataFrame, title: str):
    """Training / validation / test MSE per epoch, the best-validation epoch marked."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        if f"{split}_loss" in history:
            ax.plot(history.epoch, history[f"{split}_loss"], style, marker=".", label=split)
    if "val_loss" in history and len(history):
        best = history.epoch[history.val_loss.idxmin()]
        ax.axvline(best, color="grey", lw=0.8, label=f"best val (epoch {best})")
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def six_nine_figure(df: pd.DataFrame, transform, title: str = ""):
    """task=compensate: the fraction of rotated 6s and 9s closer to the other digit's mean upright image, after
    normalisation (solid) and as rotated inputs (dotted), versus the curve parameter."""
    fig, ax = _shaded_axes(transform, (8, 3.8))
    for d, colour in ((6, "tab:purple"), (9, "tab:orange")):
        ax.plot(df[transform.axis], df[f"normalised_{d}"], color=colour, lw=1.4, label=f"{d}s, normalised")
        ax.plot(df[transform.axis], df[f"input_{d}"], color=colour, lw=1, ls=":", label=f"{d}s, rotated input")
    ax.set(ylim=(-0.02, 1.02), ylabel="fraction closer to the other digit")
    return _finish(fig, ax, transform, title)
