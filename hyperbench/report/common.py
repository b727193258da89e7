"""Helpers every report section shares: percent formatting over seeds and markdown tables."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd
from omegaconf import OmegaConf

from ..config import NOT_MEASURED, measured_settings
from ..files import write_text
from ..models.names import parse_model_name
from .published import VINEET, published_column

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


def ordered(models, known_first) -> list[str]:
    """The models present, those of `known_first` (a table's published row order) first, then the rest sorted."""
    present = set(models)
    known = [m for m in known_first if m in present]
    return known + sorted(present - set(known))


def count_check(params: int, printed: int | None, formula_misprint: bool = False) -> str:
    """Compare a count that came out of the model with the one the source prints."""
    if printed is None:
        return ""
    if params == printed:
        return "match"
    why = " (the printed count breaks the formula its other rows follow)" if formula_misprint else ""
    return f"DIFFERS: published {printed:,}, model has {params:,}{why}"


def selection_table(runs: pd.DataFrame, order: list[str], label: Callable[[str], str],
                    published: dict[str, tuple[float | None, int | None]],
                    misprints: frozenset[str] = frozenset()) -> pd.DataFrame:
    """The CS618 report's table layout (Model | Best Test Accuracy | Conv Parameters), published values
    beside ours. Per model, the configuration (lr, ...) with the best mean validation accuracy is selected
    (never by test accuracy); its runs (seeds) give mean ± std (n)."""
    rows = []
    for model in ordered(runs.model, order):
        mruns = runs[runs.model == model]
        by_config = mruns.groupby("config_key").val_acc.mean()  # one entry per config, seeds pooled
        sel = mruns[mruns.config_key == by_config.idxmax()]
        lr = sel.lr.iloc[0]
        pub_acc, pub_params = published.get(model, (None, None))
        params = int(sel.conv_params.iloc[0])
        rows.append({
            "Model": label(model),
            "Best Test Accuracy": mean_std(sel.test_acc),
            published_column("Best Test Accuracy", VINEET): f"{100 * pub_acc:.2f}%" if pub_acc else "",
            "Conv Parameters": f"{params:,}",
            published_column("Conv Parameters", VINEET): f"{pub_params:,}" if pub_params else "",
            "Count check": count_check(params, pub_params, model in misprints),
            "Val Accuracy": mean_std(sel.val_acc),
            "lr": lr,
            "lrs tried": mruns.lr.nunique(),
            "epochs": int(sel.epochs_completed.max()),
            "s/epoch": round(float(sel.seconds_per_epoch.mean()), 1),
        })
    return pd.DataFrame(rows)


def run_precision(cfg, metrics: dict) -> str | None:
    """The precision a run's model ran in: metrics.json's `precision`, or, for runs from before it was
    recorded, what trainer.amp resolved to on the recorded device (auto: bf16 on CUDA, else fp32)."""
    if metrics.get("precision"):
        return str(metrics["precision"])
    amp = OmegaConf.select(cfg, "trainer.amp", default=None)
    if amp is None or "device" not in metrics:
        return None
    amp = str(amp)
    if amp == "auto":
        return "bf16" if str(metrics["device"]).startswith("cuda") else "fp32"
    return {"off": "fp32"}.get(amp, amp)


def config_key(cfg, precision: str | None = None) -> str:
    """The run's configuration without the seed and the settings that do not change what is measured
    (config.NOT_MEASURED), plus the precision the model ran in (trainer.device is not configuration, but
    trainer.amp=auto means bf16 on a GPU and fp32 on a CPU, so those are not seeds of one configuration):
    equal keys = one config, many seeds."""
    kept = measured_settings(cfg, NOT_MEASURED + ("seed",))
    if precision is not None:
        kept["precision"] = precision
    return json.dumps(kept, sort_keys=True, default=str)


def mean_std_plain(values: pd.Series, digits: int = 4) -> str:
    """Like mean_std, for values that are not fractions (losses, seconds)."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1):.2g} (n={len(v)})"


def run_model_label(cfg) -> str | None:
    """The model a run is reported as: model.name, or for a hypernetized run (hypernet=...) the network it
    builds. model=conv / vgg_blockN with hypernet=static at the published settings (default targets, tiles of
    16, init=variance, param=plain) is the table row hyperA_B / vgg_blockN_hyperA_B, the same network; any
    other hypernetized run is '<model>+<hypernet> zA_dB' with its non-default settings, so it never pools with
    the plain model."""
    name = OmegaConf.select(cfg, "model.name")
    h = OmegaConf.select(cfg, "hypernet")
    if name is None or h is None or h.get("name", "none") == "none":
        return name
    z, d = h.get("z_dim"), h.get("d")
    published = (h.get("conditioning", "static") == "static" and h.get("targets") is None and h.get("tile", 16) == 16
                 and h.get("chunk") is None and h.get("init", "variance") == "variance"
                 and h.get("param", "plain") == "plain")
    parsed = parse_model_name(name)
    block = parsed.blocks if parsed is not None and parsed.network == "conv" else None
    if published and name == "conv":
        return f"hyper{z}_{d}"
    if published and block is not None:
        return f"vgg_block{block}_hyper{z}_{d}"
    extras = [f"{k}={h.get(k)}" for k, default in (("init", "variance"), ("param", "plain"), ("conditioning", "static"))
              if h.get(k, default) != default]
    return " ".join([f"{name}+{h.get('name')} z{z}_d{d}", *extras])


def write_section(out: Path, stem: str, table: pd.DataFrame, md: str, figure: Path | None = None,
                  alt: str = "") -> list[str]:
    """A report section's files (<stem>.csv: the table; <stem>.md: its markdown) and its parts for report.md:
    the markdown, then the figure when one was made."""
    write_text(out / f"{stem}.csv", table.to_csv(index=False))
    write_text(out / f"{stem}.md", md + "\n")
    return [md] + ([f"![{alt}]({figure.name})"] if figure is not None else [])
