"""Verdicts: every published claim hyperbench can test, judged on the runs given to the report by rules
written down here, never by hand.

Each claim measures one number on the runs (mean over seeds; n stated) and checks it against a rule with a
stated margin. The verdict is
  reproduces                          the rule holds;
  does not reproduce at this budget   it does not, and the runs are shorter than the source's (steps or epochs),
                                      or the model was still improving (best validation epoch in the last tenth
                                      of the epochs run);
  contradicts                         it does not, at the source's budget or later, with training converged.
A claim whose runs are not among the report's inputs is left out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .published import (CIFAR_TABLES, INVARIANCE, INVARIANCE_PROTOCOL, MNIST_TABLE2, POTAPOV_HYPERNETS,
                         POTAPOV_INVARIANTS, VINEET)
from .common import markdown, write_section

FLAT_MARGIN = 0.15   # "flat": the restricted digit's out/in loss ratio at most the control digit's ratio x (1 + this)
MNIST_MARGIN = 0.3   # points: Hyper5_5 "matches" the ConvModel when at most this far below it
CIFAR_MARGIN = 2.0   # points: a ConvModel "reaches" the published accuracy when at most this far below it
WIN_MARGIN = 0.5     # points: the ConvModel "beats" a hypernetwork when at least this far above it (less is within
                     # the spread of seeds: 0.1-0.2 points on MNIST, docs/studies/static-hypernetworks.md)
POUT_MAX, P34IN_MIN = 0.5, 0.9  # "no invariance outside the range": Pout at most this, P34in at least that
TRANSFER_LEVEL = 2.0  # symbols "transfer" when their mean loss is at most this x the model's in-range digit loss
SOURCE_STEPS = 100_000  # iterations of the transformation models in the semantic-vision code
SOURCE_EPOCHS_INVARIANCE = 300  # epochs of the invariance classifiers in the semantic-vision code

ROTATE_49 = "4, 9 trained in [-45, 45], the others in [-180, 180)"  # the rotate protocol the claims are about


@dataclass
class Measured:
    ours: str     # our value, with n
    ok: bool      # the claim's rule holds
    budget: str   # ours / the source's
    short: bool   # shorter than the source's budget, or still improving
    reason: str


@dataclass
class Claim:
    study: str
    claim: str
    source: str
    source_value: str
    measure: Callable[[pd.DataFrame], Measured | None]


def still_improving(runs: pd.DataFrame) -> bool:
    """Any run whose best validation epoch lies in the last tenth of its epochs (at least the last one)."""
    runs = runs.dropna(subset=["epochs_completed", "best_epoch"])
    done = runs.epochs_completed.astype(int)
    return bool((runs.best_epoch.astype(int) > done - (done // 10).clip(lower=1)).any())


def verdict(m: Measured) -> str:
    if m.ok:
        return "reproduces"
    return "does not reproduce at this budget" if m.short else "contradicts"


def _best_config(runs: pd.DataFrame, model: str) -> pd.DataFrame:
    """The runs (seeds) of the model's configuration with the best mean validation accuracy."""
    sel = runs[runs.model == model]
    if sel.empty:
        return sel
    return sel[sel.config_key == sel.groupby("config_key").val_acc.mean().idxmax()]


def _ms(values, fmt: str = ".3f", scale: float = 1.0) -> str:
    """mean, with "± std" (sample std over the seeds) when there are several: the verdicts' "ours" numbers."""
    v = pd.Series(values, dtype=float) * scale
    return f"{v.mean():{fmt}}" if len(v) < 2 else f"{v.mean():{fmt}} ± {v.std():{fmt}}"


def _epochs(runs: pd.DataFrame) -> str:
    done = pd.to_numeric(runs.epochs_completed, errors="coerce").max()
    return f"{'?' if pd.isna(done) else int(done)} epochs, n={len(runs)}"


# --------------------------------------------------------------------------------- static hypernetworks

def mnist_match(runs: pd.DataFrame) -> Measured | None:
    runs = runs[(runs.task == "classify") & (runs.data == "mnist")]
    conv, hyper = _best_config(runs, "conv"), _best_config(runs, "hyper5_5")
    if conv.empty or hyper.empty:
        return None
    gap = 100 * (hyper.test_acc.mean() - conv.test_acc.mean())
    both = pd.concat([conv, hyper])
    return Measured(f"{_ms(hyper.test_acc, '.2f', 100)}% vs {_ms(conv.test_acc, '.2f', 100)}% ({gap:+.2f} points; "
                    f"n={len(hyper)}, {len(conv)})", gap >= -MNIST_MARGIN, f"{_epochs(both)} / not stated",
                    still_improving(both), f"rule: Hyper5_5 at most {MNIST_MARGIN} points below the ConvModel")


def cifar_conv_wins(block: int) -> Callable[[pd.DataFrame], Measured | None]:
    def measure(runs: pd.DataFrame) -> Measured | None:
        runs = runs[(runs.task == "classify") & (runs.data == "cifar10")]
        conv = _best_config(runs, f"vgg_block{block}")
        hypers = {m: _best_config(runs, m) for m in CIFAR_TABLES[block] if m != f"vgg_block{block}"}
        hypers = {m: r for m, r in hypers.items() if not r.empty}
        if conv.empty or not hypers:
            return None
        best = max(hypers, key=lambda m: hypers[m].test_acc.mean())
        gap = 100 * (conv.test_acc.mean() - hypers[best].test_acc.mean())
        both = pd.concat([conv, hypers[best]])
        return Measured(f"ConvModel {gap:+.2f} points over {best} (n={len(conv)}, {len(hypers[best])})",
                        gap >= WIN_MARGIN, f"{_epochs(both)} / not stated", still_improving(both),
                        f"rule: the ConvModel's test accuracy at least {WIN_MARGIN} points above the best "
                        f"hypernetwork's ({len(hypers)} run here)")
    return measure


def cifar_conv_reaches(block: int) -> Callable[[pd.DataFrame], Measured | None]:
    def measure(runs: pd.DataFrame) -> Measured | None:
        conv = _best_config(runs[(runs.task == "classify") & (runs.data == "cifar10")], f"vgg_block{block}")
        if conv.empty:
            return None
        pub = CIFAR_TABLES[block][f"vgg_block{block}"][0]
        acc = conv.test_acc.mean()
        return Measured(f"{_ms(conv.test_acc, '.2f', 100)}% (n={len(conv)})", acc >= pub - CIFAR_MARGIN / 100,
                        f"{_epochs(conv)} / not stated", still_improving(conv),
                        f"rule: at most {CIFAR_MARGIN} points below {100 * pub:.2f}%")
    return measure


# --------------------------------------------------------------------------------------------- invariance

def invariance_row(model: str) -> Callable[[pd.DataFrame], Measured | None]:
    def measure(runs: pd.DataFrame) -> Measured | None:
        sel = runs[(runs.task == "invariance") & (runs.model == model) & (runs.protocol == INVARIANCE_PROTOCOL)]
        if sel.empty:
            return None
        pout, p34 = sel.pout.mean(), sel.p34in.mean()
        epochs = int(sel.epochs_completed.max())
        return Measured(f"Pout {_ms(sel.pout)}, P34in {_ms(sel.p34in)} (n={len(sel)})",
                        pout <= POUT_MAX and p34 >= P34IN_MIN,
                        f"{epochs} / {SOURCE_EPOCHS_INVARIANCE} epochs",
                        epochs < SOURCE_EPOCHS_INVARIANCE or still_improving(sel),
                        f"rule: Pout <= {POUT_MAX} with P34in >= {P34IN_MIN}")
    return measure


# -------------------------------------------------------------------------------------- transformations

def _ratios(sel: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per run: digit 4's and control digit 3's out/in loss ratios."""
    return sel.curve_out_digit_4 / sel.curve_in_digit_4, sel.curve_out_digit_3 / sel.curve_in_digit_3


def _trained(runs: pd.DataFrame, task: str, model: str) -> pd.DataFrame:
    sel = runs[(runs.task == task) & (runs.model == model) & (runs["mode"] != "transfer")]
    sel = sel[sel.protocol.astype(str).str.contains(ROTATE_49, regex=False)]
    needed = ["curve_out_digit_4", "curve_in_digit_4", "curve_out_digit_3", "curve_in_digit_3"]
    return sel.dropna(subset=[c for c in needed if c in sel]) if all(c in sel for c in needed) else sel.iloc[:0]


def flatness(task: str, model: str, flat: bool) -> Callable[[pd.DataFrame], Measured | None]:
    """flat=True: the claim is that digit 4's loss stays flat outside the range; False: that it rises."""
    def measure(runs: pd.DataFrame) -> Measured | None:
        sel = _trained(runs, task, model)
        if sel.empty:
            return None
        ratios4, ratios3 = _ratios(sel)
        is_flat = ratios4.mean() <= ratios3.mean() * (1 + FLAT_MARGIN)
        steps = int(sel.steps.max())
        return Measured(f"out/in loss: digit 4 {_ms(ratios4, '.2f')}, control 3 {_ms(ratios3, '.2f')} "
                        f"(n={len(sel)})", is_flat == flat,
                        f"{steps:,} / {SOURCE_STEPS:,} steps", steps < SOURCE_STEPS,
                        f"rule: flat = digit 4's out/in ratio <= control's x {1 + FLAT_MARGIN:g}")
    return measure


def symbols_transfer(runs: pd.DataFrame) -> Measured | None:
    sel = runs[(runs.task == "transform") & (runs["mode"] == "transfer") & (runs.eval_images.astype(str) == "symbols")]
    sel = sel[sel.model.astype(str).str.startswith("hypernet")]
    if sel.empty:
        return None
    ratios, levels, steps = [], [], []
    for r in sel.itertuples():
        trained = Path(str(r.eval_run), "metrics.json")
        source = json.loads(trained.read_text()) if trained.exists() else {}
        ratios.append(r.curve_out_images / r.curve_in_images)
        levels.append(r.curve_mean / source["loss_in"] if source.get("loss_in") else float("nan"))
        steps.append(int(source.get("steps", 0)))
    ratio, level = float(pd.Series(ratios).mean()), float(pd.Series(levels).mean())
    ok = ratio <= 1 + FLAT_MARGIN and level <= TRANSFER_LEVEL
    return Measured(f"out/in {_ms(ratios, '.2f')}, loss {_ms(levels, '.2f')}x the digits' (n={len(sel)})", ok,
                    f"{max(steps):,} / {SOURCE_STEPS:,} steps", max(steps) < SOURCE_STEPS,
                    f"rule: out/in <= {1 + FLAT_MARGIN:g} and mean loss <= {TRANSFER_LEVEL:g}x the model's "
                    f"in-range digit loss")


def six_nine(runs: pd.DataFrame) -> Measured | None:
    sel = runs[(runs.task == "compensate") & (runs.model == "hypernet_deep")]
    if sel.empty or "six_nine_confused_out" not in sel:
        return None
    out, base = sel.six_nine_confused_out.mean(), sel.six_nine_input_confused_out.mean()
    every = sel.six_nine_confused.mean()
    steps = int(sel.steps.max())
    return Measured(f"confused outside {out:.3f} vs rotated inputs {base:.3f}, overall {every:.3f} (n={len(sel)})",
                    out < base and every > 0, f"{steps:,} / {SOURCE_STEPS:,} steps", steps < SOURCE_STEPS,
                    "rule: fewer 6/9 confusions outside the range than the rotated inputs, and not none")


CLAIMS = [
    Claim("static hypernetworks", "On MNIST the best hypernetwork (Hyper5_5, 5,189 conv parameters) matches the "
          "ConvModel (12,560)", VINEET, f"{100 * MNIST_TABLE2['hyper5_5'][0]:.2f}% vs "
          f"{100 * MNIST_TABLE2['conv'][0]:.2f}%", mnist_match),
    *[Claim("static hypernetworks", f"On CIFAR-10 VGG-Block{b} the ConvModel beats every HyperA_B", VINEET,
            f"{100 * CIFAR_TABLES[b][f'vgg_block{b}'][0]:.2f}% vs at most "
            f"{100 * max(v[0] for m, v in CIFAR_TABLES[b].items() if m != f'vgg_block{b}'):.2f}%", cifar_conv_wins(b))
      for b in (1, 2, 3)],
    *[Claim("static hypernetworks", f"The VGG-Block{b} ConvModel reaches the published accuracy", VINEET,
            f"{100 * CIFAR_TABLES[b][f'vgg_block{b}'][0]:.2f}%", cifar_conv_reaches(b)) for b in (1, 2, 3)],
    *[Claim("invariance", f"{model}: recognition does not extend to rotations outside the training range",
            POTAPOV_INVARIANTS,
            f"Pout {INVARIANCE[model][2]:.3f}, P34in {INVARIANCE[model][1]:.3f}", invariance_row(model))
      for model in INVARIANCE],
    Claim("transformations", "The autoencoder fails to rotate 4s outside [-45, 45]", POTAPOV_HYPERNETS,
          "digit 4: 0.138 at 180 vs 0.047 at 45 degrees", flatness("transform", "ae", flat=False)),
    Claim("transformations", "The shallow HyperNet rotates 4s at all angles (flat loss)", POTAPOV_HYPERNETS,
          "flat (figure)", flatness("transform", "hypernet_shallow", flat=True)),
    Claim("transformations", "The deep HyperNet rotates 4s at all angles almost perfectly (flat loss)",
          POTAPOV_HYPERNETS,
          "flat (figure)", flatness("transform", "hypernet_deep", flat=True)),
    Claim("transformations", "HyperNets transfer the rotation to non-MNIST symbols", POTAPOV_HYPERNETS,
          "shown (figure)", symbols_transfer),
    Claim("compensation", "A HyperNet that sees only the rotated image returns 4s upright at all angles",
          POTAPOV_HYPERNETS,
          "flat (figure)", flatness("compensate", "hypernet_deep", flat=True)),
    Claim("compensation", "It distinguishes rotated 6s from 9s, though not always correctly", POTAPOV_HYPERNETS,
          "shown (figure)", six_nine),
]


def verdict_table(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.assign(**{c: None for c in ("task", "model", "data", "mode", "protocol", "eval_images", "best_epoch",
                                            "epochs_completed") if c not in runs})
    rows = []
    for c in CLAIMS:
        m = c.measure(runs)
        if m is not None:
            rows.append({"study": c.study, "claim": c.claim, "source": c.source, "source value": c.source_value,
                         "ours": m.ours, "budget (ours / source)": m.budget, "verdict": verdict(m),
                         "rule": m.reason})
    return pd.DataFrame(rows)


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    table = verdict_table(ok)
    if table.empty:
        return []
    md = ("## Verdicts\n\nEach published claim that the runs given can test, judged by the rule in its last column "
          "(hyperbench/report/verdicts.py): reproduces; does not reproduce at this budget (the runs are shorter "
          "than the source's, or the model was still improving); contradicts (at the source's budget or with "
          "training converged).\n\n" + markdown(table))
    return write_section(out, "verdicts", table, md)
