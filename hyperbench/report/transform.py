"""Learning transformations (Potapov's SingularityNET articles, "Generation" and "Learning Transformations"): the
reconstruction loss at 0, +-45, +-90 and 180 degrees per model and digit beside the published autoencoder values, each
row's training budget (with a warning when the compared rows' budgets differ), the digit-4 loss-versus-angle curves of
all models in one figure (the articles' colours), and the transfer evaluations (task=transform eval.run=...)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import save_figure, write_text
from .published import POTAPOV_HYPERNETS, POTAPOV_INVARIANTS, SEMANTIC_VISION, TRANSFORM_AE
from .common import markdown, ordered

ROWS = ("ae", "aae", "hypernet_shallow", "hypernet_deep")
ANGLES = ((0.0,), (-45.0, 45.0), (-90.0, 90.0), (-180.0,))
HEADS = ("0°", "-45° / +45°", "-90° / +90°", "180°")


def family_curves(runs: pd.DataFrame, axis: str) -> dict[str, pd.DataFrame]:
    """model -> its recon_vs_<axis>.csv (mean over its runs, e.g. seeds)."""
    out = {}
    for model in ordered(runs.model.unique(), ROWS):
        frames = [pd.read_csv(Path(d, f"recon_vs_{axis}.csv")) for d in runs[runs.model == model].run_dir
                  if Path(d, f"recon_vs_{axis}.csv").exists()]
        if frames:
            out[model] = pd.concat(frames).groupby(axis, as_index=False).mean()
    return out


def budget(sel: pd.DataFrame) -> str:
    """A model's training budget: optimizer steps of a batch size (the most any of its runs made)."""
    if "steps" not in sel or sel.steps.isna().all():
        return ""
    batch = f" of {int(sel.batch_size.max())}" if "batch_size" in sel and sel.batch_size.notna().any() else ""
    return f"{int(sel.steps.max()):,} steps{batch}"


def budget_note(runs: pd.DataFrame, order) -> str:
    """One sentence on the compared rows' budgets: the common one, or a warning that lists each when they differ."""
    budgets = {m: budget(runs[runs.model == m]) for m in ordered(runs.model.unique(), order)}
    if len(set(budgets.values())) <= 1:
        common = next(iter(budgets.values()), "")
        return f"Every model here trained {common} (the reference code trained about 100k steps)." if common else ""
    listed = "; ".join(f"{m}: {b or 'unknown'}" for m, b in budgets.items())
    return (f"**Warning: the compared rows were trained on different budgets** ({listed}); a gap between rows may be "
            f"the budget, not the model. The budget column gives each row's.")


def _at(df: pd.DataFrame, col: str, angle: float) -> float | None:
    hit = df[(df.angle - angle).abs() < 1e-6]
    return float(hit[col].iloc[0]) if len(hit) and col in hit else None


def _fmt(values) -> str:
    return " / ".join("" if v is None else f"{v:.3f}" for v in values)


def angle_table(runs: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for digit in (4, 9, 3):
        col = f"digit_{digit}"
        if not any(col in df for df in curves.values()):
            continue
        pub = TRANSFORM_AE.get(digit)
        if pub:
            rows.append({"digit": digit, "model": f"autoencoder, published ({SEMANTIC_VISION})",
                         **{h: v for h, v in zip(HEADS, pub)}, "in range": "", "outside": "",
                         "budget": "about 100k steps of 128", "params": ""})
        for model, df in curves.items():
            if col not in df:
                continue
            sel = runs[runs.model == model]
            row = {"digit": digit, "model": model}
            for head, angles in zip(HEADS, ANGLES):
                row[head] = _fmt([_at(df, col, a) for a in angles])
            for key, label in ((f"curve_in_{col}", "in range"), (f"curve_out_{col}", "outside")):
                row[label] = f"{sel[key].mean():.3f}" if key in sel else ""
            row["budget"] = budget(sel)
            row["params"] = f"{int(sel.total_params.iloc[0]):,}"
            rows.append(row)
    return pd.DataFrame(rows)


def run_transform(run_dir) -> object:
    from omegaconf import OmegaConf

    from ..protocols.families import transform_of

    return transform_of(OmegaConf.load(Path(run_dir, ".hydra", "config.yaml")))


def train_section(runs: pd.DataFrame, out: Path) -> list[str]:
    from ..viz.transform_plots import transform_curve_figure

    parts = []
    for family in sorted(runs["transform"].dropna().unique()):
        fam = runs[runs["transform"] == family]
        transform = run_transform(fam.run_dir.iloc[0])
        curves = family_curves(fam, transform.axis)
        if not curves:
            continue
        head = (f"## Learning to {family}: autoencoders vs HyperNets ({POTAPOV_INVARIANTS}, {POTAPOV_HYPERNETS})\n\n"
                f"Protocol: {transform.describe()}. Reconstruction MSE (images in [-1, 1]) on test digits, "
                f"{transform.axis} curve from recon_vs_{transform.axis}.csv; in range / outside = the curve's mean "
                f"inside / outside the restricted digits' training range. " + budget_note(fam, ROWS))
        if transform.axis == "angle" and family == "rotate":
            table = angle_table(fam, curves)
            write_text(out / f"table_transform_{family}.csv", table.to_csv(index=False))
            head += ("\n\n" + markdown(table) + "\n\nPublished values: the baseline autoencoder only; "
                     "its spikes at 0 and ±90 degrees come from the bilinear blurring of every other angle's target.")
        fig = transform_curve_figure(curves, transform, f"Digit 4: reconstruction MSE versus {transform.axis} "
                                                        f"({family})", column="digit_4")
        path = save_figure(fig, out / f"transform_{family}_digit4.png")
        write_text(out / f"table_transform_{family}.md", head + "\n")
        parts += [head, f"![digit 4 loss versus {transform.axis}]({path.name})"]
    return parts


def transfer_section(runs: pd.DataFrame, out: Path, prefix: str = "", heading: str = "Transfer") -> list[str]:
    from ..viz.transform_plots import transform_curve_figure

    parts = []
    for images in sorted(runs.eval_images.dropna().unique()):
        sel = runs[runs.eval_images == images]
        rows = [{"model": r.model, "images": images, "n": int(r.n_images), "mean over the curve": f"{r.curve_mean:.3f}",
                 "in range": f"{r.curve_in_images:.3f}", "outside": f"{r.curve_out_images:.3f}",
                 "run": Path(str(r.eval_run)).name} for r in sel.itertuples()]
        table = pd.DataFrame(rows).sort_values("model", key=lambda s: s.map(lambda m: ordered(sel.model, ROWS).index(m)))
        transform = run_transform(sel.eval_run.iloc[0])
        curves = {}
        for r in sel.itertuples():
            f = Path(r.run_dir, f"recon_vs_{transform.axis}.csv")
            if f.exists():
                curves[r.model] = pd.read_csv(f)
        name = Path(str(images)).name
        md = (f"## {heading} to {name} (no training on them)\n\nThe trained models applied to images that are not "
              f"MNIST digits; MSE between produced and expected images, mean over all images at each "
              f"{transform.axis}.\n\n" + markdown(table))
        parts.append(md)
        if curves:
            fig = transform_curve_figure({m: curves[m] for m in ordered(curves, ROWS)}, transform,
                                         f"{heading} to {name}: reconstruction MSE versus {transform.axis}",
                                         column="images")
            path = save_figure(fig, out / f"{prefix}transfer_{name}.png")
            parts.append(f"![transfer to {name}]({path.name})")
    return parts


def task_section(ok: pd.DataFrame, out: Path, task: str, train, prefix: str = "",
                 heading: str = "Transfer") -> list[str]:
    """The report of one transform-family task: train(runs, out) for its trained runs, then its transfer runs."""
    runs = ok[ok.task == task]
    if runs.empty:
        return []
    mode = runs["mode"] if "mode" in runs else pd.Series("train", index=runs.index)
    parts = train(runs[mode == "train"], out) if (mode == "train").any() else []
    if (mode == "transfer").any():
        parts += transfer_section(runs[mode == "transfer"], out, prefix, heading)
    return parts


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    return task_section(ok, out, "transform", train_section)
