"""task=transform: learn an image transformation f(x, a) (Potapov's SingularityNET articles, "Generation";
docs/studies/transformations.md). A model gets an image in [-1, 1] and the transformation parameters and must output the
transformed image; MSE loss. The family is the transform= group (rotate, shift, affine); for rotate the
ranges come from the rotation= group (restricted49: 4 and 9 trained within [-45, 45], the others in [-180, 180)).

Training pairs are drawn afresh on the device for every batch. Model selection: the lowest validation MSE,
the validation split (its first task.epoch_eval_images images) transformed by one fixed, seeded draw
(task.eval_seed) within the training ranges.

After training (best-validation model), on the test split:
    metrics.json        loss_in / loss_out (restricted digits inside / outside their training range) and
                        digit_<d>_in, digit_<d>_out per digit (random draws, task.metric_images per digit);
                        curve_in_<d> / curve_out_<d>: means of the curve inside / outside the training range
    recon_vs_<axis>.csv loss at each point of the family's curve (rotate: -180 to 178.2 in task.curve_step
                        steps; shift: transform.curve_step pixels) for task.curve_digits (4, 9 and the control 3), task.curve_images images each
    recon_vs_<axis>.png that curve, the restricted training range shaded
    grid_digit<d>.png   expected | produced images at several parameter values, for task.grid_digits (4, 9)
    history.csv, curves.png, model.pt

Transfer (no training): hyperbench task=transform eval.run=<run dir> eval.images=<folder|.npy|symbols|
emnist_letters> writes the same curve (column `images`), a grid and metrics.json for those images with
the trained run's model.

What the model gets and must produce is the *problem* (Learn here; tasks/compensate.py's Compensate gives the
model only the transformed image and asks for the original): run, the curves, grids, metrics and transfer take it.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from ..data import DataBundle, Split, load_data
from ..training.engine import Trainer, resolve_device
from ..training.objectives import Objective
from ..errors import ConfigError
from ..files import save_figure, write_text
from ..data.images import load_images, to_tensor
from ..models import create_model
from ..protocols.families import Transform, transform_of
from ..runs import model_from_run
from .common import fit_metrics, fit_recorded, log, param_count, run_header, finish


def model_options(cfg: DictConfig) -> dict:
    """The model config's options (everything but name and arch)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in ("name", "arch")}


def build_model(cfg: DictConfig, transform: Transform, shape=(1, 28, 28)) -> torch.nn.Module:
    return create_model(str(cfg.model.arch), n_params=transform.n_params, in_channels=shape[0],
                        image_size=shape[1], **model_options(cfg))


class Learn:
    """task=transform: the model gets (x, encode(raw)) and must produce apply(x, raw). raw has one row per
    image or one row for all. task=compensate (tasks/compensate.py) swaps inputs and target."""

    task = "transform"
    verb = "learns"
    pairs = "expected | produced"  # what each grid pair shows
    first = "input"                # the grid's first column
    build = staticmethod(build_model)

    def __init__(self, transform: Transform):
        self.transform = transform

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """Config checks before any data is read (create_model checks the model's options here)."""

    def inputs(self, x: torch.Tensor, raw: torch.Tensor) -> tuple:
        return x, self.transform.encode(raw)

    def target(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        return self.transform.apply(x, raw.expand(len(x), -1))

    def shown(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """The left image of each grid pair (here the expected one)."""
        return self.target(x, raw)

    def predict(self, model, x: torch.Tensor, raw: torch.Tensor, fmt=lambda t: t) -> torch.Tensor:
        return model(*(fmt(t) for t in self.inputs(x, raw))).float()

    def extra(self, model, raw: DataBundle, cfg: DictConfig, run_dir: Path, fmt) -> dict:
        """Task-specific metrics and files after the curves (none here)."""
        return {}


def per_image_loss(model, x: torch.Tensor, raw: torch.Tensor, problem: Learn, batch_size: int,
                   fmt=lambda t: t) -> torch.Tensor:
    """MSE per image between the model's output and the problem's target; raw has one row per image."""
    out = []
    for i in range(0, len(x), batch_size):
        xb, rb = x[i:i + batch_size], raw[i:i + batch_size]
        out.append((problem.predict(model, xb, rb, fmt) - problem.target(xb, rb)).pow(2).flatten(1).mean(1))
    return torch.cat(out) if out else torch.zeros(0, device=x.device)


def transform_loss(model, x: torch.Tensor, y) -> torch.Tensor:
    """The training loss of a transform model on (first input, (target, [other inputs])): the model's own
    training_loss when it has one (the adversarial autoencoder: critic update + combined loss), else MSE,
    in float32 (only the model runs in reduced precision)."""
    target, rest = y
    if hasattr(model, "training_loss"):
        return model.training_loss(x, *rest, target)
    return F.mse_loss(model(x, *rest).float(), target.float())


def problem_objective(problem: Learn, seed: int) -> Objective:
    """Training pairs drawn afresh per batch: (the model's first input, (target, its other inputs))."""
    transform = problem.transform

    def augment(x, y, g):
        raw = transform.sample(y, g)
        first, *rest = problem.inputs(x, raw)
        return first, (problem.target(x, raw), rest)

    def evaluate(model, split: Split, batch_size: int) -> dict[str, float]:
        g = torch.Generator(device=split.y.device).manual_seed(seed)  # the same draw at every epoch
        raw = transform.sample(split.y, g)
        return {"loss": per_image_loss(model, split.x, raw, problem, batch_size).mean().item()}

    return Objective(loss=transform_loss, evaluate=evaluate, augment=augment, monitor="loss", higher_is_better=False)


def transform_objective(transform: Transform, seed: int) -> Objective:
    return problem_objective(Learn(transform), seed)


def curve(model, x: torch.Tensor, groups: dict[str, torch.Tensor], problem: Learn, values: torch.Tensor,
          batch_size: int, fmt=lambda t: t) -> pd.DataFrame:
    """Mean loss of each group of images (name -> index into x) at each curve value; one condition per value."""
    rows = []
    transform = problem.transform
    raws = transform.along_axis(values.to(x.device, torch.float32))
    # an autoencoder's code does not depend on the parameters: encode each image once, decode per value
    codes = ([model.encode(fmt(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
             if hasattr(model, "decode") else None)
    for v, raw in zip(values.tolist(), raws):
        losses = []
        for b, i in enumerate(range(0, len(x), batch_size)):
            xb = x[i:i + batch_size]
            pred = (model.decode(codes[b], transform.encode(raw[None])) if codes is not None
                    else problem.predict(model, xb, raw[None], fmt))
            losses.append((pred.float() - problem.target(xb, raw[None])).pow(2).flatten(1).mean(1))
        per = torch.cat(losses)
        rows.append({transform.axis: round(v, 6), **{k: per[idx].mean().item() for k, idx in groups.items()}})
    return pd.DataFrame(rows)


def curve_ranges(df: pd.DataFrame, transform: Transform, columns) -> dict[str, float]:
    """Means of the curve inside / outside the restricted training range, per column."""
    inside = transform.inside_restricted(transform.along_axis(torch.tensor(df[transform.axis].values,
                                                                           dtype=torch.float32))).numpy()
    out = {}
    for c in columns:
        out[f"curve_in_{c}"] = float(df[c][inside].mean()) if inside.any() else float("nan")
        out[f"curve_out_{c}"] = float(df[c][~inside].mean()) if (~inside).any() else float("nan")
    return out


def digit_metrics(model, test: Split, problem: Learn, per_digit: int | None, seed: int, batch_size: int,
                  fmt=lambda t: t) -> dict[str, float]:
    """digit_<d>_in: each digit's test images at draws from its own training range; digit_<d>_out (restricted
    digits): at draws from the others' range that fall outside the restricted range. loss_in / loss_out:
    the same over all digits / over the restricted digits."""
    g = torch.Generator(device=test.y.device).manual_seed(seed)
    transform = problem.transform
    out, all_in, all_out = {}, [], []
    for d in range(10):
        idx = torch.nonzero(test.y == d).flatten()
        if per_digit is not None:
            idx = idx[:per_digit]
        if len(idx) == 0:
            continue
        x, y = test.x[idx], test.y[idx]
        loss_in = per_image_loss(model, x, transform.sample(y, g), problem, batch_size, fmt)
        out[f"digit_{d}_in"] = loss_in.mean().item()
        all_in.append(loss_in)
        if d in transform.restricted:
            raw = transform.sample_others(len(y), g, y.device)
            keep = ~transform.inside_restricted(raw)
            loss_out = per_image_loss(model, x[keep], raw[keep], problem, batch_size, fmt)
            out[f"digit_{d}_out"] = loss_out.mean().item() if len(loss_out) else float("nan")
            all_out.append(loss_out)
    out = {"loss_in": torch.cat(all_in).mean().item() if all_in else float("nan"),
           "loss_out": torch.cat(all_out).mean().item() if all_out else float("nan"), **out}
    return out


def write_curve_files(run_dir: Path, df: pd.DataFrame, transform: Transform, title: str) -> None:
    from ..viz.transform_plots import transform_curve_figure

    name = f"recon_vs_{transform.axis}"
    write_text(run_dir / f"{name}.csv", df.to_csv(index=False))
    save_figure(transform_curve_figure({c: df for c in df.columns if c != transform.axis}, transform, title,
                                       by_column=True), run_dir / f"{name}.png")


def write_grid(path: Path, model, x: torch.Tensor, problem: Learn, title: str, fmt=lambda t: t) -> None:
    """Input column, then a pair for each of the family's grid values: expected | produced (task=transform),
    rotated input | normalised (task=compensate)."""
    from ..viz.transform_plots import transform_grid_figure

    transform = problem.transform
    values = torch.tensor(transform.grid_values(), device=x.device)
    raws = transform.along_axis(values)
    shown = torch.stack([problem.shown(x, raw[None]) for raw in raws])
    produced = torch.stack([problem.predict(model, x, raw[None], fmt) for raw in raws])
    save_figure(transform_grid_figure(x, shown, produced, values.tolist(), transform, title, problem.first), path)


def prepared(data: DataBundle, transform: Transform) -> DataBundle:
    """The images the family works on: without the digits a rotation protocol removes (e.g. rotation=restricted34
    takes out 6 and 9; labels stay digits), centred on the family's canvas when it has one."""
    removed = getattr(getattr(transform, "protocol", None), "removed", ())
    if not removed and transform.canvas is None:
        return data

    def keep(s: Split) -> Split:
        k = ~torch.isin(s.y, torch.tensor(removed, device=s.y.device)) if removed else slice(None)
        return Split(transform.on_canvas(s.x[k]), s.y[k])

    return DataBundle(data.name, keep(data.train), keep(data.val), keep(data.test), data.num_classes)


def _fixed(split: Split, n: int | None) -> Split:
    return split if n is None else Split(split.x[:n], split.y[:n])


def run(cfg: DictConfig, run_dir: Path, kind: type[Learn] = Learn) -> dict:
    if cfg.eval.get("run") is not None or cfg.eval.get("images") is not None:
        return run_transfer(cfg, run_dir, kind)
    t_start = time.perf_counter()
    transform = transform_of(cfg)  # every config problem before any data is read
    problem = kind(transform)
    kind.check(cfg)
    device = resolve_device(cfg.trainer.device)
    task = cfg.task
    seed = int(task.eval_seed)
    raw = prepared(load_data(cfg.data, device), transform)
    model = kind.build(cfg, transform, raw.shape)
    # per-epoch validation / test losses on the first task.epoch_eval_images images of each split
    # (the final metrics and curves use the whole test split)
    n_eval = None if task.epoch_eval_images is None else int(task.epoch_eval_images)
    data = DataBundle(raw.name, raw.train, _fixed(raw.val, n_eval), _fixed(raw.test, n_eval), raw.num_classes)
    header = run_header(cfg, device)
    facts = {"transform": transform.name, "protocol": transform.describe(), "restricted": list(transform.restricted),
             "n_params": transform.n_params, "total_params": param_count(model), "lr": float(cfg.trainer.lr),
             "batch_size": int(cfg.trainer.batch_size), "train_size": len(raw.train), "val_size": len(raw.val),
             "test_size": len(raw.test)}
    log.info(f"{cfg.model.name} {kind.verb} {transform.describe()} on {raw.name}; {len(raw.train)}/{len(raw.val)}/"
             f"{len(raw.test)} images, params={facts['total_params']:,} device={device} -> {run_dir}")
    trainer = Trainer(cfg.trainer, device, int(cfg.seed), log=log.info)
    result = fit_recorded(trainer, model, data, problem_objective(problem, seed), cfg, run_dir, {**header, **facts})
    model.load_state_dict(result.best_state)
    model.eval()
    bs, fmt = int(cfg.trainer.eval_batch_size), trainer.fmt
    test = raw.test
    t_eval = time.perf_counter()
    per = None if task.curve_images is None else int(task.curve_images)
    with torch.inference_mode():
        scores = digit_metrics(model, test, problem, None if task.metric_images is None else int(task.metric_images),
                               seed + 100, bs, fmt)
        idx = {f"digit_{d}": torch.nonzero(test.y == int(d)).flatten()[:per] for d in task.curve_digits}
        sel = torch.cat(list(idx.values()))
        offsets, groups = 0, {}
        for k, i in idx.items():
            groups[k] = torch.arange(offsets, offsets + len(i), device=device)
            offsets += len(i)
        df = curve(model, test.x[sel], groups, problem, transform.curve_values(float(task.curve_step)), bs, fmt)
        scores.update(curve_ranges(df, transform, list(groups)))
        for d in task.grid_digits:
            x = test.x[test.y == int(d)][: int(task.grid_images)]
            if len(x):
                write_grid(run_dir / f"grid_digit{d}.png", model, x, problem,
                           f"{cfg.model.name}, digit {d}: {kind.pairs}", fmt)
        scores.update(problem.extra(model, raw, cfg, run_dir, fmt))
    metrics = {"status": "ok", "mode": "train", **header, **facts, **scores,
               **fit_metrics(result, int(cfg.trainer.epochs)),
               "steps": len(result.history) * (len(raw.train) // min(int(cfg.trainer.batch_size), len(raw.train))),
               "eval_time_s": round(time.perf_counter() - t_eval, 2),
               "run_time_s": round(time.perf_counter() - t_start, 2)}
    finish(cfg, run_dir, metrics, result.best_state)
    write_curve_files(run_dir, df, transform,
                      f"{cfg.model.name}: reconstruction MSE versus {transform.axis} ({transform.name})")
    from ..viz.transform_plots import loss_curves

    save_figure(loss_curves(pd.DataFrame(result.history), f"{cfg.model.name}, transform={transform.name}"),
                run_dir / "curves.png")
    log.info(f"test loss in range {scores['loss_in']:.4f}, restricted digits outside {scores['loss_out']:.4f} "
             f"(best val epoch {result.best_epoch}, {metrics['run_time_s']:.0f}s)")
    return metrics


def load_trained(run_path, kind: type[Learn] = Learn) -> tuple[DictConfig, torch.nn.Module, Transform]:
    """(config, model, transform family) of a finished task=transform (or kind.task) run (eval.run=...)."""
    cfg, model = model_from_run(run_path, task=kind.task,
                                build=lambda c: kind.build(c, transform_of(c), transform_of(c).image_shape((1, 28, 28))))
    return cfg, model.eval(), transform_of(cfg)


def run_transfer(cfg: DictConfig, run_dir: Path, kind: type[Learn] = Learn) -> dict:
    """Evaluate a trained run on other images: the loss curve over all of them, a grid of the first few."""
    if cfg.eval.get("run") is None or cfg.eval.get("images") is None:
        raise ConfigError(f"Transfer evaluation needs both eval.run=<a task={kind.task} run directory> and "
                          "eval.images=<folder of PNGs | file.npy | symbols | emnist_letters>.")
    t_start = time.perf_counter()
    trained, model, transform = load_trained(cfg.eval.run, kind)
    problem = kind(transform)
    max_images = None if cfg.eval.max_images is None else int(cfg.eval.max_images)
    images, names = load_images(cfg.eval.images, str(Path(str(cfg.data.root)).expanduser()), 28, max_images)
    device = resolve_device(cfg.trainer.device)
    model.to(device)
    x = transform.on_canvas(to_tensor(images, trained.data.scale, device))
    bs = int(cfg.trainer.eval_batch_size)
    step = float(OmegaConf.select(trained, "task.curve_step", default=cfg.task.curve_step))
    with torch.inference_mode():
        df = curve(model, x, {"images": torch.arange(len(x), device=device)}, problem,
                   transform.curve_values(step), bs)
        write_grid(run_dir / "grid_images.png", model, x[: int(cfg.eval.grid_images)], problem,
                   f"{trained.model.name} on {cfg.eval.images}: {kind.pairs}")
    header = run_header(cfg, device)
    header["model"] = str(trained.model.name)
    metrics = {"status": "ok", "mode": "transfer", **header, "eval_run": str(cfg.eval.run),
               "eval_images": str(cfg.eval.images), "n_images": len(x), "transform": transform.name,
               "protocol": transform.describe(), "curve_mean": float(df["images"].mean()),
               **curve_ranges(df, transform, ["images"]), "run_time_s": round(time.perf_counter() - t_start, 2)}
    finish(cfg, run_dir, metrics)
    write_curve_files(run_dir, df, transform, f"{trained.model.name} on {cfg.eval.images} ({len(x)} images): "
                                              f"reconstruction MSE versus {transform.axis}")
    log.info(f"{trained.model.name} on {cfg.eval.images}: {len(x)} images, mean loss over the curve "
             f"{metrics['curve_mean']:.4f} (inside the restricted range {metrics['curve_in_images']:.4f}, "
             f"outside {metrics['curve_out_images']:.4f}) -> {run_dir}")
    return metrics

