"""The per-family table of `make bench`: every model family's training step against the machine's limits.

For each family (its task's recipe: batch size, optimizer, loss; one fixed, already augmented batch, no data work):
  FLOPs        of one training step (forward + backward), by PyTorch's flop counter's formulas
               (torch.utils.flop_counter: matrix products and convolutions; elementwise work and the optimizer
               count 0);
  bytes        the bytes the step's large tensors move: over every aten operator of one whole step (forward,
               backward, optimizer), the sizes of its input and output tensors of at least --cache-mib MiB, each
               counted once per operator (views none) (a tensor that size cannot stay in this CPU's cache between operators,
               so each use is a trip to memory; smaller ones are assumed to stay in cache);
  limits       the fp32 matmul rate (2048x2048, limits.matmul_gflops) and the memory-copy bandwidth
               (limits.copy_gbps: read + write of a 256 MiB copy), both measured in the same run, again right
               before each family (on a shared machine the load moves; each row is judged against its own);
  binding      the limit whose lower bound on the step time is larger (FLOPs / matmul rate vs bytes / copy
               bandwidth), and the fraction of it reached: that bound / the measured step time;
  s/step       Trainer.step_seconds (the engine's optimizer, autocast and memory format), and s/epoch = s/step
               x the recipe's steps per epoch.
On CUDA it also records images/s, peak memory (torch.cuda.max_memory_allocated) and the GPU's name;
--precision bf16 trains under bf16 autocast (trainer.amp=bf16).

    python benchmarks/families.py [--families conv,capsnet] [--steps 3] [--device auto] [--precision fp32]
                                  [--compare-old hypernet_shallow]
"""
from __future__ import annotations

import argparse
import os
import platform

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from common import config, sync

MIB = 1 << 20
CLASSIFY = ["data=mnist"]
INVARIANCE = ["task=invariance", "data=mnist", "rotation=restricted34"]
TRANSFORM = ["task=transform", "data=mnist", "rotation=restricted49", "transform=rotate"]
FAMILIES = {  # name -> (kind, overrides): the recipes the studies train them with
    "conv": ("classify", ["model=conv", *CLASSIFY]),
    "hyper5_5": ("classify", ["model=hyper5_5", *CLASSIFY]),
    "cnn": ("invariance", ["model=cnn", *INVARIANCE]),
    "hyper_cnn": ("invariance", ["model=hyper_cnn", *INVARIANCE]),
    "capsnet": ("invariance", ["model=capsnet", *INVARIANCE]),
    "capsnet_em": ("invariance", ["model=capsnet_em", *INVARIANCE]),
    "ae": ("transform", ["model=ae", *TRANSFORM]),
    "aae": ("transform", ["model=aae", *TRANSFORM]),
    "hypernet_shallow": ("transform", ["model=hypernet_shallow", *TRANSFORM]),
    "hypernet_deep": ("transform", ["model=hypernet_deep", *TRANSFORM]),
    "vgg_block1": ("classify", ["model=vgg_block1", "data=cifar10"]),
    "vgg_block2": ("classify", ["model=vgg_block2", "data=cifar10"]),
    "vgg_block3": ("classify", ["model=vgg_block3", "data=cifar10"]),
}


class StepCounter(TorchDispatchMode):
    """Over every aten operator run under it: FLOPs from PyTorch's flop counter's formulas
    (torch.utils.flop_counter.flop_registry: matrix products, convolutions, attention), and the bytes of its
    tensor inputs and outputs of at least `min_bytes` bytes (each tensor once per operator; views count 0). A dispatch mode
    rather than FlopCounterMode itself, whose module hooks refuse the adversarial autoencoder's autograd.grad."""

    def __init__(self, min_bytes: int):
        super().__init__()
        from torch.utils.flop_counter import flop_registry

        self.registry, self.min_bytes, self.flops, self.bytes = flop_registry, min_bytes, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = self.registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        if func.is_view:  # a view moves no bytes (s[b] of a 315 MB buffer reads 2.4 MB, in the op that uses it)
            return out
        seen = set()
        for t in tree_flatten((args, kwargs, out))[0]:
            if isinstance(t, torch.Tensor) and id(t) not in seen:
                seen.add(id(t))
                size = t.numel() * t.element_size()
                if size >= self.min_bytes:
                    self.bytes += size
        return out


def step_cost(step, min_bytes: int) -> tuple[int, int]:
    """(FLOPs, bytes moved) of one call of step()."""
    with StepCounter(min_bytes) as counter:
        step()
    return counter.flops, counter.bytes


def binding(flops: float, nbytes: float, seconds: float, matmul_flops_s: float, copy_bytes_s: float) -> dict:
    """Roofline verdict for one step: each limit's lower bound on its time, the larger one binds; the
    fraction reached is that bound over the measured time."""
    t_compute, t_memory = flops / matmul_flops_s, nbytes / copy_bytes_s
    limit = "compute" if t_compute >= t_memory else "memory"
    return {"gflops": flops / seconds / 1e9, "gbs": nbytes / seconds / 1e9, "binds": limit,
            "fraction": max(t_compute, t_memory) / seconds}


def family_setup(name: str, device, precision: str, batch: int | None = None):
    """(trainer, model, loss, x, y, steps per epoch, batch) for a family, on one fixed, already augmented batch."""
    from bench import classify_case, fixed_batch, invariance_case, run_config, transform_case

    kind, overrides = FAMILIES[name]
    case = {"classify": classify_case, "invariance": lambda: invariance_case(overrides),
            "transform": lambda: transform_case(overrides)}[kind]()
    extra = ["trainer.amp=bf16"] if precision == "bf16" else ["trainer.amp=off"]
    if batch is not None:  # quick checks and tests (small datasets too); the table's numbers use the recipe's batch
        extra += [f"trainer.batch_size={batch}", "data.val_size=100"]
    return fixed_batch(run_config(overrides + extra, device, 1), case, device)


def measure(name: str, device, precision: str, steps: int, min_bytes: int, old: bool = False,
            batch: int | None = None) -> dict:
    trainer, model, loss, x, y, per_epoch, bs = family_setup(name, device, precision, batch)
    if old:
        use_plain_path(name, model)
    trainer.model_format(model)
    trainer.model_precision(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    xf = trainer.fmt(x)

    def step():  # what Trainer.step_seconds times, once, for the counters
        with trainer.autocast():
            value = loss(model, xf, y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    step()  # the optimizer's state exists before the count, as in every step but the first
    flops, nbytes = step_cost(step, min_bytes)
    del opt
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = trainer.step_seconds(model, loss, x, y, steps, warmup=1)
    out = {"family": name, "batch": bs, "flops": flops, "bytes": nbytes, "s_step": seconds,
           "s_epoch": seconds * per_epoch, "steps_per_epoch": per_epoch, "images_s": bs / seconds}
    if device.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    return out


def use_plain_path(name: str, model) -> None:
    """--compare-old: the implementation before the fused path (the plain softmax + einsum layer)."""
    if name != "hypernet_shallow":
        raise SystemExit(f"--compare-old knows hypernet_shallow only, not {name}")
    model.mix.fused = False


def table(names: list[str], device, precision: str = "fp32", steps: int = 3, cache_mib: float = 4.0,
          compare_old: list[str] = (), batch: int | None = None) -> list[dict]:
    from limits import copy_gbps, matmul_gflops

    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"\nper-family training step ({device.type}{gpu}, {precision}, {torch.get_num_threads()} threads; load "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}); limits measured before each row: fp32 matmul "
          f"GFLOP/s, memory copy GB/s (bytes: tensors >= {cache_mib:g} MiB, once per operator)", flush=True)
    head = (f"{'family':<17}{'batch':>6}{'GFLOP':>8}{'GB':>7}{'s/step':>8}{'s/epoch':>9}{'GFLOP/s':>9}"
            f"{'GB/s':>7}{'mm':>7}{'copy':>6}  binds    reached" + ("   img/s  peak MiB" if device.type == "cuda" else ""))
    print(head, flush=True)
    rows = []
    variants = [(n, False) for n in names] + [(n, True) for n in compare_old]
    for name, old in variants:
        if name not in FAMILIES:
            print(f"{name:<17} skipped: unknown family (known: {', '.join(FAMILIES)})", flush=True)
            continue
        mm, bw = matmul_gflops(device, reps=3), copy_gbps(device, reps=3)
        try:
            r = measure(name, device, precision, steps, int(cache_mib * MIB), old, batch)
        except Exception as e:  # a missing dataset must not hide the other rows
            print(f"{name:<17} skipped: {type(e).__name__}: {str(e).splitlines()[0][:100]}", flush=True)
            continue
        r.update(binding(r["flops"], r["bytes"], r["s_step"], mm * 1e9, bw * 1e9))
        r.update(family=name + (" (old)" if old else ""), matmul_gflops=mm, copy_gbps=bw)
        line = (f"{r['family']:<17}{r['batch']:>6}{r['flops'] / 1e9:>8.2f}{r['bytes'] / 1e9:>7.2f}{r['s_step']:>8.3f}"
                f"{r['s_epoch']:>9.0f}{r['gflops']:>9.1f}{r['gbs']:>7.1f}{mm:>7.1f}{bw:>6.1f}  {r['binds']:<8}{100 * r['fraction']:>6.0f}%")
        if device.type == "cuda":
            line += f"{r['images_s']:>8.0f}{r['peak_mib']:>10.0f}"
        print(line, flush=True)
        rows.append(r)
    return rows


def main() -> None:
    from hyperbench.training.engine import resolve_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="all", help=f"comma-separated, or all: {', '.join(FAMILIES)}")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per family (after one warm-up step)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--cache-mib", type=float, default=4.0, help="tensors this large or larger count as bytes moved")
    ap.add_argument("--batch", type=int, default=None, help="override the recipes' batch size (quick checks)")
    ap.add_argument("--compare-old", default="", help="families also measured with the plain path: hypernet_shallow")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
          flush=True)
    names = list(FAMILIES) if args.families == "all" else [f for f in args.families.split(",") if f]
    table(names, device, args.precision, args.steps, args.cache_mib,
          [f for f in args.compare_old.split(",") if f], args.batch)


if __name__ == "__main__":
    main()
