"""Potapov, "Can Deep Networks Learn Invariants?", "Recognition" section: Ptest / P34in / Pout / Pinv per model beside the published values,
and the accuracy-versus-angle curves of all models in one figure."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import save_figure
from .published import INVARIANCE, INVARIANCE_OTHERS, INVARIANCE_PROTOCOL, POTAPOV_INVARIANTS, published_column
from .common import markdown, mean_std, ordered, write_section

METRICS = (("ptest", "Ptest"), ("p34in", "P34in"), ("pout", "Pout"), ("pinv", "Pinv"))
ROWS = ("cnn", "cnn_bn", "cnn_dropout", "cnn_bn_dropout", "cnn_deep", "hyper_cnn", "capsnet", "capsnet_em", "steerable_cnn")


def invariance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (protocol, model): each metric as mean ± std over seeds beside the published value
    (only for runs of exactly the published protocol, rotation=restricted34)."""
    rows = []
    runs = runs.assign(protocol=runs.protocol.fillna(""))
    several = runs.protocol.nunique() > 1
    for protocol in sorted(runs.protocol.unique(), key=lambda p: p != INVARIANCE_PROTOCOL):
        for model in ordered(runs[runs.protocol == protocol].model.unique(), ROWS):
            sel = runs[(runs.protocol == protocol) & (runs.model == model)]
            pub = INVARIANCE.get(model) if protocol == INVARIANCE_PROTOCOL else None
            row = {"Model": model} if not several else {"Model": model, "protocol": protocol}
            for i, (key, label) in enumerate(METRICS):
                row[label] = mean_std(sel[key], 3, percent=False) if key in sel else ""
                row[published_column(label, POTAPOV_INVARIANTS)] = f"{pub[i]:.3f}" if pub else ""
            row["epochs"] = int(sel.epochs_completed.max())
            row["s/epoch"] = round(float(sel.seconds_per_epoch.mean()), 1)
            row["wall (s)"] = round(float(sel.run_time_s.mean()), 0) if "run_time_s" in sel else ""
            row["params"] = f"{int(sel.total_params.iloc[0]):,}"
            rows.append(row)
    return pd.DataFrame(rows)


def curves_figure(runs: pd.DataFrame, out: Path) -> Path | None:
    """Every model's acc_vs_angle.csv (mean over its seeds) in one figure; the shading is the first run's
    protocol (the published one, restricted34, when present)."""
    from ..viz.plots import angle_curves_figure
    from ..protocols.rotation import RotationProtocol

    curves = {}
    for model in ordered(runs.model.unique(), ROWS):
        frames = [pd.read_csv(Path(d, "acc_vs_angle.csv")) for d in runs[runs.model == model].run_dir
                  if Path(d, "acc_vs_angle.csv").exists()]
        if frames:
            curves[model] = pd.concat(frames).groupby("angle", as_index=False).mean()
    if not curves:
        return None
    protocol = RotationProtocol.from_config(runs.config.iloc[0].rotation)
    title = f"Accuracy versus rotation angle, rotation={protocol.name} ({protocol.describe()})"
    return save_figure(angle_curves_figure(curves, protocol, title), out / "invariance_acc_vs_angle.png")


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    runs = ok[ok.task == "invariance"]
    if runs.empty:
        return []
    table = invariance_table(runs)
    main = runs[runs.protocol == INVARIANCE_PROTOCOL]
    runs = main if not main.empty else runs[runs.protocol == runs.protocol.iloc[0]]
    others = "; ".join(f"{name}: " + ", ".join(f"{label} {v:.3f}" for (_, label), v in zip(METRICS, values))
                       for name, values in INVARIANCE_OTHERS.items())
    md = (f"## Invariance of recognition under rotation ({POTAPOV_INVARIANTS})\n\n"
          "Fractions of the test set classified correctly, averaged over task.eval_repeats random rotations: "
          "Ptest = every digit within its training range, P34in / Pout / Pinv = the restricted digits (3 and 4) "
          "in [-45, 45] / [45, 315] / [135, 225]. Model at the best-validation epoch; several seeds show as "
          "mean ± std (n). The published models trained 300 epochs; the budget here is the epochs column.\n\n"
          + markdown(table) + (f"\n\nPublished rows not built here: {others}." if others else ""))
    return write_section(out, "table_invariance", table, md, curves_figure(runs, out), "accuracy versus angle")
