"""Checkpoint cost against an epoch: the old synchronous write (model, Adam state and a copy of the best weights)
against the engine's blocking host snapshot and background write, for the shallow HyperNet and a small model.

    python benchmarks/checkpoint_cost.py      (from the repository root; docs/gpu.md, benchmarks/README.md)
"""
import copy, os, sys, time, tempfile
import torch
sys.path.insert(0, "benchmarks")
from common import config
from hyperbench.training.checkpoint import BEST_IS_MODEL, to_host
from hyperbench.training.engine import Trainer, make_optimizer
from hyperbench.files import save_torch
from hyperbench.models import create_model, model_from_config
from hyperbench.tasks.transform import transform_loss

def measure(name, model, loss, x, y, cfg, steps_per_epoch, out):
    tr = Trainer(cfg.trainer, torch.device("cpu"), 0, log=lambda _: None)
    step = tr.step_seconds(model, loss, x, y, steps=3, warmup=1)
    opt = make_optimizer(list(model.parameters()), cfg.trainer)
    with torch.autocast("cpu", enabled=False):
        loss(model, x, y).backward()
    opt.step()
    best = copy.deepcopy(model.state_dict())
    base = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    t = time.perf_counter(); save_torch({**base, "best_state": best}, out); old = time.perf_counter() - t
    size_old = os.path.getsize(out)
    t = time.perf_counter(); host = to_host({**base, "best_state": BEST_IS_MODEL}); snap = time.perf_counter() - t
    t = time.perf_counter(); save_torch(host, out); write = time.perf_counter() - t
    size_new = os.path.getsize(out)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params:,} params; step {step:.3f} s x {steps_per_epoch} steps = epoch {step * steps_per_epoch:.1f} s; "
          f"old checkpoint (sync, with best copy) {old:.2f} s, {size_old / 1e6:.0f} MB; new: blocking snapshot "
          f"{snap:.2f} s, background write {write:.2f} s, {size_new / 1e6:.0f} MB", flush=True)

out = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
cfg = config("task=transform", "model=hypernet_shallow")
m = create_model("hypernet_shallow")
g = torch.Generator().manual_seed(0)
x = torch.rand(128, 1, 28, 28, generator=g) * 2 - 1
measure("hypernet_shallow (task=transform, batch 128)", m, transform_loss, x, (x, [torch.rand(128, 2, generator=g)]), cfg, 40000 // 128, out)
cfg = config("model=hyper4_4")
from hyperbench.tasks.classify import classifier_loss
m = model_from_config(cfg.model, 10, (1, 28, 28))
x = torch.rand(1000, 1, 28, 28, generator=g); y = torch.randint(0, 10, (1000,), generator=g)
measure("hyper4_4 (task=classify, batch 1000)", m, classifier_loss, x, y, cfg, 55000 // 1000, out)
os.remove(out)
os.rmdir(os.path.dirname(out))
