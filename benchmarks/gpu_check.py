"""`make gpu-check`: run whenever a GPU is at hand. Every task and model family trains a few hundred steps on
the GPU in fp32, in bf16 autocast and compiled (bf16 + torch.compile, as trainer.amp=auto trainer.compile=true
runs there), through hyperbench's own engine and objectives; the metrics of bf16 and of compile must agree with
fp32 within the tolerances below. Prints images/s and peak GPU memory per model and writes a markdown summary
(gpu_check.md) and the numbers (gpu_check.csv) under --out. Without a CUDA GPU it says so and exits 0.

    python benchmarks/gpu_check.py [--out DIR] [--steps 300] [--cases conv,capsnet_em,...] [--modes fp32,bf16,compile]
    python benchmarks/gpu_check.py --device cpu --steps 2 --batch 8 --eval-images 40 --compile-backend eager
                                   # the script's logic on the CPU (tests/test_benchmarks_gpu_check.py)

Data: the synthetic pattern set of the tests (class k = a bright 7x7 block at a place given by k, on noise),
made on the device, so the check needs no dataset. Each case and mode: the same seed, `steps` training steps
(one epoch), then the task's own validation metric on --eval-images (1,000) images. images/s: training images per second of
that epoch, evaluation included. Exit status 1 when a metric disagrees beyond its tolerance, else 0.
Cases still waiting when --budget seconds have passed are reported as skipped (the whole check stays under
8 minutes on one GPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Tolerances: bf16 / compiled against fp32, after the same steps from the same seed. Training trajectories
# part ways over hundreds of steps in any precision, so these bound a real precision bug (a wrong or NaN
# result, routing that collapses), not rounding: accuracy within 3 points, losses within 10% (relative).
ACC_TOLERANCE = 0.03
LOSS_TOLERANCE = 0.10

# case -> (task, overrides)
CASES = {
    "conv": ("classify", ["model=conv", "data=mnist"]),
    "hyper4_4": ("classify", ["model=hyper4_4", "data=mnist"]),
    "vgg_block1": ("classify", ["model=vgg_block1", "data=cifar10"]),
    "vgg_block1_hyper4_4": ("classify", ["model=vgg_block1_hyper4_4", "data=cifar10"]),
    "cnn": ("invariance", ["task=invariance", "model=cnn", "rotation=restricted34", "trainer=invariance"]),
    "hyper_cnn": ("invariance", ["task=invariance", "model=hyper_cnn", "rotation=restricted34", "trainer=invariance"]),
    "capsnet": ("invariance", ["task=invariance", "model=capsnet", "rotation=restricted34", "trainer=invariance"]),
    "capsnet_em": ("invariance", ["task=invariance", "model=capsnet_em", "rotation=restricted34", "trainer=invariance"]),
    "steerable_cnn": ("invariance", ["task=invariance", "model=steerable_cnn", "rotation=restricted34",
                                     "trainer=invariance"]),
    "conv_hypernet_mip": ("classify", ["model=conv", "data=mnist", "hypernet=static", "embedding=z5_d5",
                                       "hypernet.param=mip"]),
    "ae": ("transform", ["task=transform", "model=ae"]),
    "aae": ("transform", ["task=transform", "model=aae"]),
    "hypernet_shallow": ("transform", ["task=transform", "model=hypernet_shallow"]),
    "hypernet_deep": ("transform", ["task=transform", "model=hypernet_deep"]),
    "compensate_hypernet_deep": ("compensate", ["task=compensate", "model=hypernet_deep"]),
    "compensate_ae": ("compensate", ["task=compensate", "model=ae"]),
}
MODES = {"fp32": ("off", False), "bf16": ("bf16", False), "compile": ("bf16", True)}


def patterns(n: int, channels: int, side: int, device, seed: int = 0):
    """The tests' synthetic pattern set, on the device, scaled to `scale` like the dataset."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, channels, side, side, generator=g) * 0.25
    r, c = 3 + 7 * (y // 4), 3 + 7 * (y % 4)
    rows, cols = torch.arange(side), torch.arange(side)
    block = (((rows[None] >= r[:, None]) & (rows[None] < r[:, None] + 7))[:, :, None]
             & ((cols[None] >= c[:, None]) & (cols[None] < c[:, None] + 7))[:, None, :])
    x = torch.where(block[:, None], torch.ones(()), x)
    return x.to(device), y.to(device)


def setup(case: str, device: torch.device, steps: int, batch: int | None, mode: str, backend: str, n_eval: int):
    """(trainer, model, data, objective, monitor, batch size) for one case in one mode."""
    from common import config
    from hyperbench.data import DataBundle, Split
    from hyperbench.training.engine import Trainer, seed_everything

    task, overrides = CASES[case]
    amp, compile_ = MODES[mode]
    cfg = config(*overrides, f"trainer.device={device}", f"trainer.amp={amp}", f"trainer.compile={compile_}",
                 "trainer.progress=false", "trainer.epochs=1", "trainer.log_every=50")
    bs = batch or int(cfg.trainer.batch_size)
    cfg.trainer.batch_size = bs
    cfg.trainer.eval_batch_size = min(int(cfg.trainer.eval_batch_size), 500)
    seed_everything(0)
    side, channels = (32, 3) if cfg.data.name == "cifar10" else (28, 1)
    lo, hi = (float(v) for v in cfg.data.scale) if "scale" in cfg.data else (0.0, 1.0)
    k = steps * bs
    x, y = patterns(2 * (k + 2 * n_eval), channels, side, device)
    if task == "invariance":  # the digits the rotation protocol removes (restricted34: 6, 9) out first
        keep = ~torch.isin(y, torch.tensor(list(cfg.rotation.remove), device=y.device))
        x, y = x[keep], y[keep]
    x = lo + (hi - lo) * x
    train, val, test = Split(x[:k], y[:k]), Split(x[k:k + n_eval], y[k:k + n_eval]), Split(x[k + n_eval:], y[k + n_eval:])
    if task == "classify":
        from hyperbench.models import model_from_config
        from hyperbench.tasks.classify import classification_objective

        model, objective = model_from_config(cfg.model, 10, (channels, side, side), cfg.get("hypernet")), classification_objective(cfg)
        data = DataBundle("patterns", train, val, test, 10)
    elif task == "invariance":
        from hyperbench.models import model_from_config
        from hyperbench.protocols.rotation import RotationProtocol
        from hyperbench.tasks.invariance import invariance_objective, rotated_once

        protocol = RotationProtocol.from_config(cfg.rotation, 10)
        train, val, test = (protocol.select(s) for s in (train, val, test))
        model = model_from_config(cfg.model, protocol.num_classes, (channels, side, side), cfg.get("hypernet"))
        objective = invariance_objective(protocol)
        data = DataBundle("patterns", train, rotated_once(val, protocol, 1), rotated_once(test, protocol, 2),
                          protocol.num_classes)
    else:
        from hyperbench.protocols.families import transform_of
        from hyperbench.tasks import compensate, transform

        problem = (compensate.Compensate if task == "compensate" else transform.Learn)(transform_of(cfg))
        model = problem.build(cfg, problem.transform, (channels, side, side))
        objective = transform.problem_objective(problem, 0)
        data = DataBundle("patterns", train, val, test, 10)
    trainer = Trainer(cfg.trainer, device, 0, log=lambda _: None)
    trainer.compile_backend = backend
    return trainer, model, data, objective, bs


def run_case(case: str, mode: str, device: torch.device, steps: int, batch: int | None, backend: str,
             n_eval: int = 1000) -> dict:
    trainer, model, data, objective, bs = setup(case, device, steps, batch, mode, backend, n_eval)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = trainer.fit(model, data, objective)
    wall = time.perf_counter() - t0
    row = result.history[-1]
    metric = f"val_{objective.monitor}"
    return {"case": case, "task": CASES[case][0], "mode": mode, "precision": result.precision,
            "compiled": ",".join(result.compiled) or "-", "steps": len(data.train) // bs, "batch": bs,
            "metric": metric, "value": float(row[metric]), "train_loss": float(row["train_loss"]),
            "images_per_s": round(len(data.train) // bs * bs / row["epoch_time_s"], 1), "wall_s": round(wall, 2),
            "peak_mem_mib": (round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                             if device.type == "cuda" else None)}


def agreement(rows: list[dict]) -> list[dict]:
    """Each non-fp32 row against its case's fp32 row: the difference and whether it is within tolerance."""
    base = {r["case"]: r for r in rows if r["mode"] == "fp32" and "value" in r}
    for r in rows:
        ref = base.get(r["case"])
        if r["mode"] == "fp32" or ref is None or "value" not in r:
            continue
        if r["metric"].endswith("acc"):
            diff, ok = r["value"] - ref["value"], abs(r["value"] - ref["value"]) <= ACC_TOLERANCE
            r["vs_fp32"] = f"{diff:+.4f} (tol {ACC_TOLERANCE})"
        else:
            rel = (r["value"] - ref["value"]) / max(abs(ref["value"]), 1e-12)
            ok = abs(rel) <= LOSS_TOLERANCE
            r["vs_fp32"] = f"{100 * rel:+.2f}% (tol {100 * LOSS_TOLERANCE:g}%)"
        r["agrees"] = bool(ok) and torch.isfinite(torch.tensor(r["value"])).item()
    return rows


def markdown(rows: list[dict], header: str) -> str:
    cols = ["case", "task", "mode", "precision", "compiled", "steps", "batch", "metric", "value", "vs_fp32", "agrees",
            "images_per_s", "peak_mem_mib", "wall_s", "status"]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else
                                       (f"{r[c]:.4f}" if isinstance(r.get(c), float) and c == "value" else str(r[c]))
                                       for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cuda:N; cpu exercises the script itself")
    ap.add_argument("--steps", type=int, default=300, help="training steps per case and mode")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: each model's trainer recipe)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--eval-images", type=int, default=1000, help="validation (and test) images per case")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which waiting cases are skipped")
    ap.add_argument("--out", type=Path, default=Path("outputs") / "gpu-check" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU is visible to this PyTorch (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}); nothing was run. Run it on a machine with a GPU, or exercise "
              f"the script on the CPU with --device cpu --steps 2 --batch 8 --eval-images 40.")
        return 0
    cases, modes = args.cases.split(","), args.modes.split(",")
    bad = [c for c in cases if c not in CASES] + [m for m in modes if m not in MODES]
    if bad:
        print(f"gpu-check: unknown case or mode {', '.join(bad)}; cases: {', '.join(CASES)}; modes: "
              f"{', '.join(MODES)}.", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    header = (f"# gpu-check on {name}\n\ntorch {torch.__version__}, CUDA {torch.version.cuda}, {args.steps} steps "
              f"per case and mode, compile backend {args.compile_backend}; tolerances: accuracy {ACC_TOLERANCE}, "
              f"loss {100 * LOSS_TOLERANCE:g}% relative to fp32.")
    print(header, flush=True)
    t_start, rows = time.perf_counter(), []
    for case in cases:
        for mode in modes:
            if time.perf_counter() - t_start > args.budget:
                rows.append({"case": case, "task": CASES[case][0], "mode": mode, "status": "skipped (time budget)"})
                continue
            try:
                r = run_case(case, mode, device, args.steps, args.batch, args.compile_backend, args.eval_images)
                r["status"] = "ok"
            except Exception as exc:  # a failure is a result of the check: recorded, the others go on
                r = {"case": case, "task": CASES[case][0], "mode": mode,
                     "status": f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"}
            rows.append(r)
            print(f"{case:26s} {mode:8s} {r.get('metric', ''):9s} {r.get('value', float('nan')):.4f} "
                  f"{r.get('images_per_s', '')} img/s peak {r.get('peak_mem_mib')} MiB [{r['status']}]", flush=True)
    agreement(rows)
    total = time.perf_counter() - t_start
    failed = [r for r in rows if r.get("agrees") is False or r["status"].startswith("error")]
    verdict = (f"All {sum('agrees' in r for r in rows)} comparisons agree with fp32 within tolerance"
               if not failed else f"{len(failed)} row(s) disagree or failed: "
               + ", ".join(f"{r['case']}/{r['mode']}" for r in failed))
    text = markdown(rows, header) + f"\n{verdict}. Total {total:.0f} s.\n"
    from hyperbench.files import write_text
    import pandas as pd

    write_text(args.out / "gpu_check.md", text)
    write_text(args.out / "gpu_check.csv", pd.DataFrame(rows).to_csv(index=False))
    print(text + f"-> {args.out / 'gpu_check.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
