"""The shallow HyperNet's training step, fused mixing layer against the plain softmax + einsum path, side by side
in one run: each variant in its own subprocess (tracemalloc does not see torch's allocations), alternating
plain / fused for --rounds rounds. A child builds the model, takes one untimed training step of batch 128
(forward, backward, gradient clipping at 1 as trainer=transform does, Adam), then times --steps more and
prints seconds per step and its high-water mark VmHWM from /proc/self/status. --optimizer adam is the engine's
torch.optim.Adam; adam_fused is the same with fused=True (what the engine's optimizer would cost fused).

    python benchmarks/hypernet_shallow.py [--batch 128] [--steps 3] [--rounds 2] [--optimizer adam,adam_fused]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import time, torch
from hyperbench.models.conditional import hypernet_shallow
torch.manual_seed(0)
m = hypernet_shallow()
m.mix.fused = {fused}
opt = torch.optim.Adam(m.parameters(), 1e-3, **({{"fused": True}} if "{opt}" == "adam_fused" else {{}}))
x, c, t = torch.rand({batch}, 1, 28, 28), torch.randn({batch}, 2), torch.rand({batch}, 1, 28, 28)
def step():
    opt.zero_grad(set_to_none=True)
    ((m(x, c) - t) ** 2).mean().backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
step()
t0 = time.perf_counter()
for _ in range({steps}):
    step()
print((time.perf_counter() - t0) / {steps}, [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
"""


def child(fused: bool, opt: str, batch: int, steps: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(fused=fused, opt=opt, batch=batch, steps=steps)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), int(out[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--optimizer", default="adam,adam_fused")
    args = ap.parse_args()
    print(f"load {os.getloadavg()}", flush=True)
    for opt in args.optimizer.split(","):
        times = {False: [], True: []}
        peak = {}
        for _ in range(args.rounds):
            for fused in (False, True):
                s, p = child(fused, opt, args.batch, args.steps)
                times[fused].append(s)
                peak[fused] = max(peak.get(fused, 0), p)
        plain, fused = statistics.median(times[False]), statistics.median(times[True])
        print(f"hypernet_shallow, batch {args.batch}, {opt}: s/step plain {' '.join(f'{v:.2f}' for v in times[False])}"
              f", fused {' '.join(f'{v:.2f}' for v in times[True])} -> {plain / fused:.2f}x (medians); peak RSS plain "
              f"{peak[False]:.0f} MiB, fused {peak[True]:.0f} MiB ({peak[True] / peak[False]:.2f}x)", flush=True)
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
