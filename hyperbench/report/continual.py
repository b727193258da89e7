"""Continual-learning section (task=continual): per benchmark and method, the average accuracy after the last
task, backward transfer and forgetting over seeds, beside von Oswald et al.'s published task-incremental numbers,
and one figure of the average accuracy over the tasks seen so far after each task."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..files import save_figure
from .published import CONTINUAL, CONTINUAL_METHODS, CONTINUAL_SOURCE
from .common import markdown, mean_std, ordered, write_section

BENCHMARKS = ("split_mnist", "permuted_mnist")


def _method(runs: pd.DataFrame) -> pd.Series:
    return runs.config.map(lambda c: str(c.cl.name) if "cl" in c and c.cl is not None else "?")


def _published(data: str, method: str) -> str:
    value = CONTINUAL.get((data, method))
    return "not found" if value is None else f"{value[0]:.2f} ± {value[1]:.2f}%"


def continual_table(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.assign(method=_method(runs))
    rows = []
    for data in ordered(runs.data.unique(), BENCHMARKS):
        for method in ordered(runs[runs.data == data].method.unique(), CONTINUAL_METHODS):
            sel = runs[(runs.data == data) & (runs.method == method)]
            for _, cfg_runs in sel.groupby("config_key", sort=False):
                rows.append({
                    "benchmark": data, "method": method,
                    "avg acc (last task)": mean_std(cfg_runs.avg_acc),
                    "published (task-incremental)": _published(data, method),
                    "BWT": mean_std(pd.to_numeric(cfg_runs.bwt, errors="coerce")),
                    "forgetting": mean_std(pd.to_numeric(cfg_runs.forgetting, errors="coerce")),
                    "tasks": int(cfg_runs.tasks.iloc[0]),
                    "epochs/task": int(cfg_runs.epochs_per_task.iloc[0]),
                    "params": f"{int(cfg_runs.total_params.iloc[0]):,}",
                    "seeds": ",".join(str(int(s)) for s in sorted(cfg_runs.seed.dropna())),
                    "wall (s)": round(float(cfg_runs.wall_time_s.mean()), 0),
                })
    return pd.DataFrame(rows)


def _matrix(run_dir: str) -> pd.DataFrame | None:
    f = Path(run_dir, "acc_matrix.csv")
    return pd.read_csv(f, index_col=0) if f.exists() else None


def average_curves(runs: pd.DataFrame, out: Path) -> Path | None:
    """Per benchmark: the mean accuracy over the tasks seen so far after each task (mean over seeds), per method;
    joint training as one point after the last task."""
    from ..viz.plots import plt

    runs = runs.assign(method=_method(runs))
    datas = ordered(runs.data.unique(), BENCHMARKS)
    fig, axes = plt.subplots(1, len(datas), figsize=(5.5 * len(datas), 3.8), squeeze=False)
    drawn = False
    for ax, data in zip(axes[0], datas):
        for method in ordered(runs[runs.data == data].method.unique(), CONTINUAL_METHODS):
            mats = [m for m in map(_matrix, runs[(runs.data == data) & (runs.method == method)].run_dir)
                    if m is not None]
            if not mats:
                continue
            curves = [[np.nanmean(m.to_numpy(float)[i, :i + 1]) for i in range(len(m))] if len(m) > 1
                      else [np.nanmean(m.to_numpy(float)[0])] for m in mats]
            mean = 100 * np.mean(curves, axis=0)
            x = np.arange(1, len(mean) + 1) if len(mean) > 1 else [mats[0].shape[1]]
            ax.plot(x, mean, "o-" if len(mean) > 1 else "*", ms=5 if len(mean) > 1 else 12, label=method)
            drawn = True
        ax.set(xlabel="tasks learned", ylabel="mean test accuracy over them (%)", title=data)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    return save_figure(fig, out / "continual_avg_acc.png")


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    runs = ok[ok.task == "continual"]
    if runs.empty:
        return []
    table = continual_table(runs)
    md = ("## Continual learning, task-incremental\n\n"
          "Average test accuracy over all tasks after the last one (each task evaluated with its own head / "
          "generated weights), backward transfer (BWT) and forgetting, mean ± std (n) over seeds. Published: "
          f"{CONTINUAL_SOURCE}; \"not found\" where the number could not be verified. The published runs "
          "trained far longer (2,000 / 5,000 iterations per task) with larger networks; the budget here is the "
          "epochs/task column.\n\n" + markdown(table))
    return write_section(out, "table_continual", table, md, average_curves(runs, out),
                         "average accuracy after each task")
