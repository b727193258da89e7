"""Helpers every report section shares: percent formatting over seeds and markdown tables."""
from __future__ import annotations

import json

import pandas as pd
from omegaconf import OmegaConf

# Keys that do not change what a run measures: runs differing only in these (and in seed) are
# repetitions of one configuration, and the report pools them as mean ± std (n) over seeds.
NOT_CONFIG = ("seed", "outputs_root", "data.root", "data.download", "trainer.resume", "trainer.checkpoint_every",
              "trainer.progress", "trainer.log_every", "trainer.save_model", "trainer.device", "logger",
              "task.compare_with")


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


def flat_config(cfg) -> dict:
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that does not resolve here (e.g. a missing env var)
        container = OmegaConf.to_container(cfg, resolve=False)
    return dict(walk(container))


def config_key(cfg) -> str:
    """The run's configuration without seed and the NOT_CONFIG keys: equal keys = one config, many seeds."""
    flat = flat_config(cfg)
    kept = {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_CONFIG)}
    return json.dumps(kept, sort_keys=True, default=str)


def mean_std_plain(values: pd.Series, digits: int = 4) -> str:
    """Like mean_std, for values that are not fractions (losses, seconds)."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1):.2g} (n={len(v)})"
