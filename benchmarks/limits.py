"""What the machine can do, for `make bench`: the fp32 matmul rate, the achieved GFLOP/s of the
ConvModel's training step (with a profile of its top operators on request), and batched rotation
against torchvision's per-image rotate."""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from common import config, seconds_per_call, sync
from hyperbench.models import model_from_config

def matmul_gflops(device, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def conv_step_gflops(device, batch: int = 1000, steps: int = 10, profile: bool = False) -> tuple[float, str]:
    """Achieved GFLOP/s of one training step (forward + backward + Adam) of the CS618-report ConvModel,
    in hyperbench's layout (channels_last on CPU/CUDA)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = config("model=conv", "data=mnist")
    model = model_from_config(cfg.model, 10, (1, 28, 28)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    per_step = seconds_per_call(step, device, steps)
    table = ""
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with prof(activities=acts) as p:
            for _ in range(3):
                step()
        table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return flops / per_step / 1e9, table, flops, per_step


def rotation_speed(device, n: int = 10000) -> dict[str, float]:
    """Seconds to rotate n 28x28 images by random angles: batched on the device (hyperbench) vs
    torchvision's rotate called per image, on tensors and on PIL images (what a Dataset with
    transforms.RandomRotation does to MNIST)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from hyperbench.data.geometry import rotate

    x = torch.rand(n, 1, 28, 28, device=device)
    angles = torch.rand(n, device=device) * 360
    rotate(x[:100], angles[:100])
    best = math.inf
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        rotate(x, angles)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    xs, ang = x.cpu(), angles.cpu().tolist()
    bilinear = TF.InterpolationMode.BILINEAR
    t0 = time.perf_counter()
    for i in range(n):
        TF.rotate(xs[i], ang[i], interpolation=bilinear)
    per_tensor = time.perf_counter() - t0
    pils = [Image.fromarray((xs[i, 0] * 255).byte().numpy()) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(n):
        TF.rotate(pils[i], ang[i], interpolation=bilinear)
    per_pil = time.perf_counter() - t0
    return {"batched": best, "tensor": per_tensor, "pil": per_pil}



def copy_gbps(device, mib: int = 256, reps: int = 5) -> float:
    """Memory-copy bandwidth in GB/s: a `mib` MiB fp32 tensor copied into another (both already touched),
    counted as read + write (2 x its size), best of `reps`."""
    n = mib * (1 << 20) // 4
    src, dst = torch.ones(n, device=device), torch.zeros(n, device=device)
    dst.copy_(src)
    sync(device)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best / 1e9
