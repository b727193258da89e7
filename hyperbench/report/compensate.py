"""Potapov, "Just Deep is too Flat", "Compensation of Transformations" section: per model, the loss of the normalised digit against the
upright one inside / outside [-45, 45] for 4, 9 and the control 3, the 6/9 figure (tasks/compensate.py's
definition), the digit-4 loss-versus-angle curves of all models in one figure, and the transfer runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import save_figure, write_text
from .published import POTAPOV_HYPERNETS
from .common import markdown, ordered
from .transform import family_curves, run_transform, budget, budget_note, task_section

ROWS = ("hypernet_deep", "hypernet_shallow", "ae", "aae")


def _pair(sel: pd.DataFrame, a: str, b: str) -> str:
    return " / ".join(f"{sel[k].mean():.3f}" if k in sel and sel[k].notna().any() else "" for k in (a, b))


def compensate_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model in ordered(runs.model.unique(), ROWS):
        sel = runs[runs.model == model]
        row = {"model": model}
        for d in (4, 9, 3):
            row[f"digit {d}: in / out"] = _pair(sel, f"curve_in_digit_{d}", f"curve_out_digit_{d}")
        row["6/9 confused: all"] = f"{sel.six_nine_confused.mean():.3f}" if "six_nine_confused" in sel else ""
        row["in / out"] = _pair(sel, "six_nine_confused_in", "six_nine_confused_out")
        row["6s in / out"] = _pair(sel, "confused_6_in", "confused_6_out")
        row["9s in / out"] = _pair(sel, "confused_9_in", "confused_9_out")
        row["rotated inputs in / out"] = _pair(sel, "six_nine_input_confused_in", "six_nine_input_confused_out")
        row["budget"] = budget(sel)
        row["run s"] = f"{sel.run_time_s.mean():.0f}" if "run_time_s" in sel else ""
        row["params"] = f"{int(sel.total_params.iloc[0]):,}"
        rows.append(row)
    return pd.DataFrame(rows)


def train_section(runs: pd.DataFrame, out: Path) -> list[str]:
    from ..viz.transform_plots import transform_curve_figure

    transform = run_transform(runs.run_dir.iloc[0])
    table = compensate_table(runs)
    write_text(out / "table_compensate.csv", table.to_csv(index=False))
    head = (f"## Rotation compensation without a known angle ({POTAPOV_HYPERNETS})\n\nProtocol: {transform.describe()}. The model "
            f"gets only the rotated image and must output the upright digit. digit d: in / out = mean MSE (images in "
            f"[-1, 1]) of the normalised digit against the upright one over the {transform.axis} curve inside / "
            f"outside the restricted range. 6/9 confused = fraction of rotated test 6s and 9s whose normalisation "
            f"is closer (MSE) to the other digit's mean upright training image than to its own; 'rotated inputs' "
            f"applies the same test to the rotated input itself. " + budget_note(runs, ROWS) + "\n\n" + markdown(table))
    write_text(out / "table_compensate.md", head + "\n")
    parts = [head]
    curves = family_curves(runs, transform.axis)
    if curves:
        fig = transform_curve_figure(curves, transform, "Rotation compensation, digit 4: MSE of the normalised digit "
                                                        f"versus {transform.axis}", column="digit_4")
        path = save_figure(fig, out / "compensate_digit4.png")
        parts.append(f"![compensation: digit 4 loss versus {transform.axis}]({path.name})")
    return parts


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    return task_section(ok, out, "compensate", train_section, "compensate_", "Compensation transfer")
