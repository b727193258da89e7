"""Every configuration of every task over its seeds: one row per config (runs equal apart from seed
and config.NOT_MEASURED), each headline metric as mean ± std (n). Covers tasks without a section of their own."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..files import write_text
from .common import markdown, mean_std, mean_std_plain

SKIP = ("epochs", "epochs_completed", "best_epoch", "resumed_after_epoch", "train_size", "val_size", "test_size")


def _metric_columns(ok: pd.DataFrame) -> list[str]:
    cols = [c for c in ok.columns if c.startswith(("val_", "test_", "final_test_")) and c not in SKIP]
    return [c for c in cols if pd.to_numeric(ok[c], errors="coerce").notna().any()]


MAX_CONFIG_CHARS = 160  # the config column's bound: longer descriptions are cut with an ellipsis


def distinguishing_settings(ok: pd.DataFrame) -> dict[str, str]:
    """config_key -> the settings that tell it apart from the other configurations of the same task, data and
    model (those three are columns of their own): only keys whose values differ inside that group, and only
    where this configuration sets them (never a key=None that only another task or model uses)."""
    configs = {key: json.loads(key) for key in ok.config_key.unique()}
    out = {}
    for _, group in ok.groupby(["task", "data", "model"], dropna=False, sort=False):
        keys = list(dict.fromkeys(group.config_key))
        varying = sorted(k for k in set().union(*(configs[c] for c in keys))
                         if len({json.dumps(configs[c].get(k), default=str) for c in keys}) > 1)
        for c in keys:
            text = " ".join(f"{k}={configs[c][k]}" for k in varying if configs[c].get(k) is not None)
            out[c] = text if len(text) <= MAX_CONFIG_CHARS else text[:MAX_CONFIG_CHARS - 1] + "…"
    return out


def seeds_table(ok: pd.DataFrame) -> pd.DataFrame:
    settings = distinguishing_settings(ok)
    rows = []
    for key, runs in ok.groupby("config_key", sort=False):
        row = {"task": runs.task.iloc[0], "data": runs.data.iloc[0], "model": runs.model.iloc[0],
               "config": settings[key],
               "seeds": ",".join(str(s) for s in sorted(runs.seed.dropna().astype(int)))}
        for col in _metric_columns(ok):
            fmt = mean_std if col.endswith("_acc") else mean_std_plain
            row[col] = fmt(pd.to_numeric(runs[col], errors="coerce"))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["task", "data", "model", "config"], kind="stable")


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    table = seeds_table(ok)
    write_text(out / "seeds.csv", table.to_csv(index=False))
    md = ("## Every configuration over seeds\n\nRuns whose configs are equal apart from `seed` (and settings that "
          "do not change what is measured: paths, device, logging, checkpointing, resume) are one configuration; "
          "each number is the mean ± sample std (n) over its seeds, accuracies in percent. The config column "
          "shows only the settings that tell configurations of the same task, data and model apart.\n\n"
          + markdown(table))
    write_text(out / "seeds.md", md + "\n")
    return [md]
