"""`hyperbench-report PATH...`: turn run and sweep directories into the seed's tables.

Reads only files in run directories (metrics.json, .hydra/config.yaml, model.pt), so it works the
same for local and cluster sweeps. Writes into <first PATH>/report/ (or --out): runs.csv, one CSV and
one markdown file per table, figure2_filters.png, and report.md, which it also prints.
Several runs of one configuration (seeds) are shown as mean ± std (n).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from .files import save_figure, write_text
from .published import MNIST_LR_GRID, MNIST_TABLE2, row_label

def _run_dirs(root: Path) -> list[Path]:
    """Directories holding a run: a metrics.json, or a .hydra/ config (a job that died early)."""
    found = {p.parent for p in root.rglob("metrics.json")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return sorted(d for d in found if "report" not in d.relative_to(root).parts)


def load_runs(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for root in paths:
        for d in _run_dirs(root):
            cfg_file = d / ".hydra" / "config.yaml"
            cfg = OmegaConf.load(cfg_file) if cfg_file.exists() else OmegaConf.create({})
            metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {
                "status": "no_metrics", "error": "the job left no metrics.json (killed or crashed before writing)"}
            row = {
                "run_dir": str(d),
                "task": OmegaConf.select(cfg, "task.name"),
                "data": OmegaConf.select(cfg, "data.name"),
                "model": OmegaConf.select(cfg, "model.name"),  # resolves hyper${.z_dim}_${.d}
                "lr": OmegaConf.select(cfg, "trainer.lr"),
                "seed": OmegaConf.select(cfg, "seed"),
            }
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
            rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(fractions: pd.Series) -> str:
    """Accuracies as percent: one value, or mean ± sample std (n) over repeated runs."""
    v = fractions.dropna() * 100
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.2f}%"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}% (n={len(v)})"


def _order(models) -> list[str]:
    known = [m for m in MNIST_TABLE2 if m in set(models)]
    return known + sorted(set(models) - set(known))


def mnist_table2(ok: pd.DataFrame) -> pd.DataFrame:
    """Seed 002 Table 2: per model the lr with the best mean validation accuracy (selection by
    validation, never by test), its test accuracy, and the conv-parameter count."""
    rows = []
    for model in _order(ok.model.unique()):
        runs = ok[ok.model == model]
        by_lr = runs.groupby("lr").val_acc.mean()
        lr = by_lr.idxmax()
        sel = runs[runs.lr == lr]
        pub_acc, pub_params = MNIST_TABLE2.get(model, (None, None))
        params = int(sel.conv_params.iloc[0])
        rows.append({
            "Model": row_label(model),
            "Best Test Accuracy": _mean_std(sel.test_acc),
            "Best Test Accuracy (seed 002)": f"{100 * pub_acc:.2f}%" if pub_acc else "",
            "Conv Parameters": f"{params:,}",
            "Conv Parameters (seed 002)": f"{pub_params:,}" if pub_params else "",
            "Count check": "" if pub_params is None else ("match" if params == pub_params else "DIFFERS"),
            "Val Accuracy": _mean_std(sel.val_acc),
            "lr": lr,
            "lrs tried": len(by_lr),
            "epochs": int(sel.epochs_completed.max()),
            "s/epoch": round(float(sel.seconds_per_epoch.mean()), 1),
        })
    return pd.DataFrame(rows)


def mnist_lr_grid(ok: pd.DataFrame) -> pd.DataFrame:
    """Seed 002 appendix Tables 6-7: every (model, lr) with validation and test accuracy."""
    rows = []
    for model in _order(ok.model.unique()):
        for lr, runs in ok[ok.model == model].groupby("lr"):
            pub = MNIST_LR_GRID.get((model, round(float(lr), 6)))
            rows.append({
                "Model": row_label(model), "lr": lr,
                "Val Accuracy": _mean_std(runs.val_acc), "Val (seed 002)": f"{100 * pub[0]:.2f}%" if pub else "",
                "Test Accuracy": _mean_std(runs.test_acc), "Test (seed 002)": f"{100 * pub[1]:.2f}%" if pub else "",
                "Conv Parameters": f"{int(runs.conv_params.iloc[0]):,}",
            })
    return pd.DataFrame(rows)


def figure2(ok: pd.DataFrame, out: Path) -> Path | None:
    """Seed 002 Figure 2: conv2 kernels learned by the ConvModel next to those a hypernetwork generates
    (the best-validation run of each kind)."""
    from .models import model_from_run
    from .plots import kernels_figure, labelled_kernels

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
    return save_figure(kernels_figure(panels, "Seed 002 Figure 2: MNIST conv2 kernels"), out / "figure2_filters.png")


def _markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def build_report(paths: list[Path], out: Path) -> str:
    runs = load_runs(paths)
    if runs.empty:
        raise SystemExit(f"hyperbench-report: no runs (metrics.json or .hydra/config.yaml) under {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "runs.csv", runs.to_csv(index=False))
    ok = runs[runs.status == "ok"]
    sections = [f"# hyperbench report\n\nRuns read: {len(runs)} ({len(ok)} ok) from {', '.join(map(str, paths))}"]
    mnist = ok[(ok.task == "classify") & (ok.data == "mnist")] if not ok.empty else ok
    if not mnist.empty:
        t2 = mnist_table2(mnist)
        write_text(out / "table2_mnist.csv", t2.to_csv(index=False))
        md = ("## MNIST, seed 002 Table 2\n\nBest Test Accuracy = test accuracy at the best-validation epoch, "
              "for the learning rate with the best validation accuracy (the seed picked by test accuracy).\n\n"
              + _markdown(t2))
        write_text(out / "table2_mnist.md", md + "\n")
        sections.append(md)
        if mnist.groupby("model").lr.nunique().max() > 1:
            grid = mnist_lr_grid(mnist)
            write_text(out / "lr_grid_mnist.csv", grid.to_csv(index=False))
            md = "## MNIST learning-rate grid, seed 002 appendix Tables 6-7\n\n" + _markdown(grid)
            write_text(out / "lr_grid_mnist.md", md + "\n")
            sections.append(md)
        fig = figure2(mnist, out)
        if fig is not None:
            sections.append(f"![Figure 2]({fig.name})")
    failed = runs[runs.status != "ok"]
    if not failed.empty:
        lines = [f"- `{r.run_dir}` ({r.model}): **{r.status}**: {str(r.error).strip()}" for r in failed.itertuples()]
        sections.append(f"## Failed runs ({len(failed)})\n\n" + "\n".join(lines))
    text = "\n\n".join(sections) + "\n"
    write_text(out / "report.md", text)
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="hyperbench-report", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="run or sweep directories")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <first path>/report)")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        print(f"hyperbench-report: not a directory: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    print(build_report(args.paths, args.out or args.paths[0] / "report"), end="")


if __name__ == "__main__":
    main()
