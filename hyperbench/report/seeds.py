"""Every configuration of every task over its seeds: one row per config (runs equal apart from seed
and common.NOT_CONFIG), each headline metric as mean ± std (n). Covers tasks without a section of their own."""
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


def seeds_table(ok: pd.DataFrame) -> pd.DataFrame:
    configs = {key: json.loads(key) for key in ok.config_key.unique()}
    # the keys that tell the configs apart (besides task, data and model)
    varying = sorted(k for k in set().union(*map(set, configs.values()))
                     if len({json.dumps(c.get(k), default=str) for c in configs.values()}) > 1
                     and k not in ("task.name", "data.name", "model.name"))
    rows = []
    for key, runs in ok.groupby("config_key", sort=False):
        cfg = configs[key]
        row = {"task": runs.task.iloc[0], "data": runs.data.iloc[0], "model": runs.model.iloc[0],
               "config": " ".join(f"{k}={cfg.get(k)}" for k in varying if k not in ("model.z_dim", "model.d")),
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
          "each number is the mean ± sample std (n) over its seeds, accuracies in percent.\n\n" + markdown(table))
    write_text(out / "seeds.md", md + "\n")
    return [md]
