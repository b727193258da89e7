"""Helpers every report section shares: percent formatting over seeds and markdown tables."""
from __future__ import annotations

import pandas as pd


def mean_std(fractions: pd.Series, digits: int = 2, percent: bool = True) -> str:
    """Fractions as percent (or as fractions, percent=False): one value, or mean ± sample std (n)
    over repeated runs (seeds)."""
    v = fractions.dropna() * (100 if percent else 1)
    unit = "%" if percent else ""
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}{unit}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}{unit} (n={len(v)})"


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
