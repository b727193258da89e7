"""Vineet's CS618 report MNIST section: Table 2, the appendix learning-rate grid and Figure 2."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import save_figure, write_text
from .published import MNIST_LR_GRID, MNIST_TABLE2, VINEET, published_column, row_label
from .common import markdown, mean_std, ordered, selection_table


def mnist_table2(ok: pd.DataFrame) -> pd.DataFrame:
    """Table 2 of Vineet's CS618 report: per model the lr with the best mean validation accuracy (selection by
    validation, never by test), its test accuracy, and the conv-parameter count."""
    return selection_table(ok, list(MNIST_TABLE2), row_label, MNIST_TABLE2)


def mnist_lr_grid(ok: pd.DataFrame) -> pd.DataFrame:
    """Appendix Tables 6-7 of Vineet's CS618 report: every (model, lr) with validation and test accuracy."""
    rows = []
    for model in ordered(ok.model.unique(), MNIST_TABLE2):
        for _, runs in sorted(ok[ok.model == model].groupby("config_key"), key=lambda kv: kv[1].lr.iloc[0]):
            lr = runs.lr.iloc[0]
            pub = MNIST_LR_GRID.get((model, round(float(lr), 6)))
            rows.append({
                "Model": row_label(model), "lr": lr,
                "Val Accuracy": mean_std(runs.val_acc), published_column("Val", VINEET): f"{100 * pub[0]:.2f}%" if pub else "",
                "Test Accuracy": mean_std(runs.test_acc), published_column("Test", VINEET): f"{100 * pub[1]:.2f}%" if pub else "",
                "Conv Parameters": f"{int(runs.conv_params.iloc[0]):,}",
            })
    return pd.DataFrame(rows)


def figure2(ok: pd.DataFrame, out: Path) -> Path | None:
    """Figure 2 of Vineet's CS618 report: conv2 kernels learned by the ConvModel next to those a hypernetwork generates
    (the best-validation run of each kind)."""
    from ..runs import model_from_run
    from ..viz.plots import kernels_figure, labelled_kernels

    panels = {}
    for runs in (ok[ok.model == "conv"], ok[ok.model.str.startswith("hyper")]):
        runs = runs[[Path(d, "model.pt").exists() for d in runs.run_dir]]
        if runs.empty:
            continue
        best = runs.loc[runs.val_acc.idxmax()]
        _, model = model_from_run(best.run_dir)
        panels.update(labelled_kernels(model, row_label(best.model)))
    if len(panels) < 2:
        return None
    return save_figure(kernels_figure(panels, f"MNIST conv2 kernels (Figure 2 of {VINEET})"), out / "figure2_filters.png")


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    mnist = ok[(ok.task == "classify") & (ok.data == "mnist")]
    if mnist.empty:
        return []
    parts = []
    t2 = mnist_table2(mnist)
    write_text(out / "table2_mnist.csv", t2.to_csv(index=False))
    md = (f"## MNIST: Table 2 of {VINEET}\n\nBest Test Accuracy = test accuracy at the best-validation epoch, "
          f"for the learning rate with the best validation accuracy ({VINEET} picked by test accuracy). "
          "Runs whose configs differ only in seed are pooled: mean ± std (n) over seeds.\n\n"
          + markdown(t2))
    write_text(out / "table2_mnist.md", md + "\n")
    parts.append(md)
    if mnist.groupby("model").lr.nunique().max() > 1:
        grid = mnist_lr_grid(mnist)
        write_text(out / "lr_grid_mnist.csv", grid.to_csv(index=False))
        md = f"## MNIST learning-rate grid: appendix Tables 6-7 of {VINEET}\n\n" + markdown(grid)
        write_text(out / "lr_grid_mnist.md", md + "\n")
        parts.append(md)
    fig = figure2(mnist, out)
    if fig is not None:
        parts.append(f"![Figure 2]({fig.name})")
    return parts
