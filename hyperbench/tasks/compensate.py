"""task=compensate: rotation compensation without a known angle ("Just Deep is too Flat" (Potapov), "Compensation of Transformations";
docs/references.md). The model receives only the transformed image (rotate: the digit rotated by an
angle drawn from the rotation= protocol, restricted49: 4 and 9 within [-45, 45], the others over the full circle)
and must output the upright digit; MSE loss. The angle never reaches the model: it is wrapped in a
Compensator (hyperbench/models/compensate.py) whose forward takes the image alone, and the HyperNets'
control network (ImageControl) looks at that image instead of (cos a, sin a).

Everything else is task=transform's (tasks/transform.py, with Compensate as the problem): training pairs
drawn afresh per batch, best-validation model, metrics.json (loss_in / loss_out, digit_<d>_in/_out,
curve_in_/curve_out_<digit>), recon_vs_angle.csv/.png (loss of the normalised digit against the upright one
at every task.curve_step degrees of the full circle, for task.curve_digits 4, 9 and the control 3),
grid_digit<d>.png (upright digit, then rotated input | normalisation at -180 ... 135 degrees), history.csv,
curves.png, model.pt, and transfer with eval.run=<compensate run> eval.images=<...>. Added here:

    six_nine.csv/.png   the 6/9 figure (Potapov's HyperNets article: "the model somehow learns to distinguish rotated 6 and 9,
                        although it was not always correct"). Definition: the normalisation of a rotated test 6
                        is *confused* when its MSE to the mean upright 9 of the training split is lower than
                        its MSE to the mean upright 6 (and the other way round for 9s). Columns: the confused
                        fraction of task.six_nine_images test 6s / 9s at every task.six_nine_step degrees,
                        for the normalisation (normalised_6, normalised_9) and, as a reference, for the rotated
                        input itself (input_6, input_9).
    metrics.json        six_nine_confused (both digits, every angle), six_nine_confused_in / _out (angles inside /
                        outside the restricted range [-45, 45]), confused_6_in/_out, confused_9_in/_out,
                        six_nine_input_confused_in/_out (the rotated inputs), six_nine_upright_confused (the
                        upright test images themselves: the definition's own error floor).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

from ..data import DataBundle
from ..files import save_figure, write_text
from ..models.compensator import build_compensator, check_arch
from ..protocols.families import Transform
from . import transform as base

PAIR = (6, 9)


def build_model(cfg: DictConfig, transform: Transform, shape=(1, 28, 28)) -> torch.nn.Module:
    return build_compensator(str(cfg.model.arch), str(cfg.model.name), shape[0], shape[1], **base.model_options(cfg))


class Compensate(base.Learn):
    """The model gets apply(x, raw) alone and must produce x."""

    task = "compensate"
    verb = "compensates"
    pairs = "upright, then rotated input | normalised"
    first = "upright"
    build = staticmethod(build_model)

    @staticmethod
    def check(cfg: DictConfig) -> None:
        check_arch(str(cfg.model.arch), str(cfg.model.name))

    def inputs(self, x, raw):
        return (self.transform.apply(x, raw.expand(len(x), -1)),)

    def target(self, x, raw):
        return x

    def shown(self, x, raw):
        return self.inputs(x, raw)[0]

    def extra(self, model, data: DataBundle, cfg: DictConfig, run_dir: Path, fmt) -> dict:
        return six_nine(model, self, data, cfg, run_dir, fmt)


def _confused(img: torch.Tensor, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """1 where img is closer (MSE) to the other digit's mean upright image than to its own digit's."""
    mse = lambda m: (img.float() - m).pow(2).flatten(1).mean(1)  # noqa: E731
    return (mse(other) < mse(own)).float()


def six_nine(model, problem: Compensate, data: DataBundle, cfg: DictConfig, run_dir: Path, fmt) -> dict:
    """The 6/9 figure and metrics (definition in the module docstring); {} when 6s or 9s are not in the data."""
    transform, task = problem.transform, cfg.task
    have = [bool((s.y == d).any()) for s in (data.train, data.test) for d in PAIR]
    if not all(have):
        base.log.info("no 6/9 figure: the data holds no 6s or no 9s (rotation.remove?)")
        return {}
    means = {d: data.train.x[data.train.y == d].mean(0) for d in PAIR}
    n, bs = int(task.six_nine_images), int(cfg.trainer.eval_batch_size)
    tests = {d: data.test.x[data.test.y == d][:n] for d in PAIR}
    values = transform.curve_values(float(task.six_nine_step))
    raws = transform.along_axis(values.to(data.test.x.device, torch.float32))
    rows = []
    for v, raw in zip(values.tolist(), raws):
        row = {transform.axis: round(v, 6)}
        for d, other in (PAIR, PAIR[::-1]):
            x = tests[d]
            out = torch.cat([problem.predict(model, x[i:i + bs], raw[None], fmt) for i in range(0, len(x), bs)])
            row[f"normalised_{d}"] = _confused(out, means[d], means[other]).mean().item()
            row[f"input_{d}"] = _confused(problem.shown(x, raw[None]), means[d], means[other]).mean().item()
        rows.append(row)
    df = pd.DataFrame(rows)
    inside = transform.inside_restricted(raws).cpu().numpy()
    both = lambda kind, sel: float(df.loc[sel, [f"{kind}_{d}" for d in PAIR]].values.mean())  # noqa: E731
    upright = torch.cat([_confused(tests[d], means[d], means[o]) for d, o in (PAIR, PAIR[::-1])])
    scores = {"six_nine_confused": both("normalised", slice(None)),
              "six_nine_confused_in": both("normalised", inside), "six_nine_confused_out": both("normalised", ~inside),
              **{f"confused_{d}_{k}": float(df.loc[sel, f"normalised_{d}"].mean())
                 for d in PAIR for k, sel in (("in", inside), ("out", ~inside))},
              "six_nine_input_confused_in": both("input", inside), "six_nine_input_confused_out": both("input", ~inside),
              "six_nine_upright_confused": upright.mean().item(), **{f"six_nine_images_{d}": len(tests[d]) for d in PAIR}}
    write_text(run_dir / "six_nine.csv", df.to_csv(index=False))
    from ..viz.transform_plots import six_nine_figure

    save_figure(six_nine_figure(df, transform, f"{cfg.model.name}: rotated 6s and 9s whose normalisation is closer "
                                               f"to the other digit"), run_dir / "six_nine.png")
    return scores


def run(cfg: DictConfig, run_dir: Path) -> dict:
    return base.run(cfg, run_dir, Compensate)
