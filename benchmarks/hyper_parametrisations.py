"""Summarise experiment=hyper_parametrisations sweeps: validation accuracy vs training step per arm
(init=ha, variance, hyperfan_in; param=mip), steps to a threshold, final accuracy, mean +- std over seeds.

    python benchmarks/hyper_parametrisations.py OUT_PREFIX THRESHOLD[,THRESHOLD...] SWEEP_DIR [SWEEP_DIR ...]
    -> OUT_PREFIX_curves.csv (every run's val acc per evaluation), OUT_PREFIX_summary.csv, OUT_PREFIX.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402


def arm(cfg) -> str:
    h = cfg.hypernet
    return "param=mip" if h.param == "mip" else f"init={h.init}"


def load_runs(sweeps: list[Path]) -> pd.DataFrame:
    rows = []
    for sweep in sweeps:
        for run in sorted(p for p in sweep.iterdir() if (p / "history.csv").exists()):
            cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
            hist = pd.read_csv(run / "history.csv")
            per_epoch = int(cfg.data.train_size) // int(cfg.trainer.batch_size)
            for _, r in hist.iterrows():
                rows.append({"arm": arm(cfg), "seed": int(cfg.seed), "epoch": int(r.epoch),
                             "step": int(r.epoch) * per_epoch, "val_acc": r.val_acc, "test_acc": r.test_acc,
                             "train_loss": r.train_loss})
    return pd.DataFrame(rows)


def steps_to(df: pd.DataFrame, thr: float):
    hit = df[df.val_acc >= thr]
    return int(hit.step.min()) if len(hit) else None


def summarise(curves: pd.DataFrame, thresholds: list[float]) -> pd.DataFrame:
    out = []
    for name, g in curves.groupby("arm", sort=False):
        per_seed = []
        for seed, s in g.groupby("seed"):
            last = s[s.step == s.step.max()].iloc[0]
            per_seed.append({"final_val": last.val_acc, "final_test": last.test_acc,
                             **{f"steps_to_{t:g}": steps_to(s, t) for t in thresholds}})
        p = pd.DataFrame(per_seed)
        row = {"arm": name, "seeds": len(p), "steps": int(g.step.max()),
               "final_val_mean": p.final_val.mean(), "final_val_std": p.final_val.std(ddof=1),
               "final_test_mean": p.final_test.mean(), "final_test_std": p.final_test.std(ddof=1)}
        for t in thresholds:
            col = p[f"steps_to_{t:g}"]
            reached = col.dropna()
            row[f"reached_{t:g}"] = f"{len(reached)}/{len(col)}"
            row[f"steps_to_{t:g}_mean"] = reached.mean() if len(reached) else None
            row[f"steps_to_{t:g}_std"] = reached.std(ddof=1) if len(reached) > 1 else None
        out.append(row)
    return pd.DataFrame(out)


def figure(curves: pd.DataFrame, title: str):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, g in curves.groupby("arm", sort=False):
        stats = g.groupby("step").val_acc.agg(["mean", "std"]).reset_index()
        line, = ax.plot(stats.step, 100 * stats["mean"], marker="o", ms=3, label=name)
        ax.fill_between(stats.step, 100 * (stats["mean"] - stats["std"]), 100 * (stats["mean"] + stats["std"]),
                        color=line.get_color(), alpha=0.2)
    ax.set(xlabel="training step", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str]) -> None:
    prefix, thresholds, sweeps = Path(argv[0]), [float(t) for t in argv[1].split(",")], [Path(a) for a in argv[2:]]
    curves = load_runs(sweeps)
    summary = summarise(curves, thresholds)
    curves.to_csv(f"{prefix}_curves.csv", index=False, float_format="%.4f")
    summary.to_csv(f"{prefix}_summary.csv", index=False, float_format="%.4f")
    figure(curves, prefix.name.replace("_", " ") + ": mean +- std over seeds").savefig(f"{prefix}.png", dpi=110)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
