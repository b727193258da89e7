"""Helpers every report section shares: percent formatting over seeds and markdown tables."""
from __future__ import annotations

from typing import Callable

import pandas as pd


def mean_std(fractions: pd.Series, digits: int = 2) -> str:
    """Fractions as percent: one value, or mean ± sample std (n) over repeated runs (seeds)."""
    v = fractions.dropna() * 100
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}%"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}% (n={len(v)})"


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def count_check(params: int, printed: int | None, formula_misprint: bool = False) -> str:
    """Compare a count that came out of the model with the one the seed prints."""
    if printed is None:
        return ""
    if params == printed:
        return "match"
    why = " (the seed's printed count breaks the formula its other rows follow)" if formula_misprint else ""
    return f"DIFFERS: seed prints {printed:,}, model has {params:,}{why}"


def selection_table(runs: pd.DataFrame, order: list[str], label: Callable[[str], str],
                    published: dict[str, tuple[float | None, int | None]],
                    misprints: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Seed 002's table layout (Model | Best Test Accuracy | Conv Parameters), published values
    beside ours. Per model, the lr with the best mean validation accuracy is selected (never by
    test accuracy); its runs (seeds) give mean ± std (n)."""
    rows = []
    models = [m for m in order if m in set(runs.model)] + sorted(set(runs.model) - set(order))
    for model in models:
        mruns = runs[runs.model == model]
        by_lr = mruns.groupby("lr").val_acc.mean()
        lr = by_lr.idxmax()
        sel = mruns[mruns.lr == lr]
        pub_acc, pub_params = published.get(model, (None, None))
        params = int(sel.conv_params.iloc[0])
        rows.append({
            "Model": label(model),
            "Best Test Accuracy": mean_std(sel.test_acc),
            "Best Test Accuracy (seed 002)": f"{100 * pub_acc:.2f}%" if pub_acc else "",
            "Conv Parameters": f"{params:,}",
            "Conv Parameters (seed 002)": f"{pub_params:,}" if pub_params else "",
            "Count check": count_check(params, pub_params, model in misprints),
            "Val Accuracy": mean_std(sel.val_acc),
            "lr": lr,
            "lrs tried": len(by_lr),
            "epochs": int(sel.epochs_completed.max()),
            "s/epoch": round(float(sel.seconds_per_epoch.mean()), 1),
        })
    return pd.DataFrame(rows)
