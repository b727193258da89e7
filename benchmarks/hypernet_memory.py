"""Peak resident memory of the shallow HyperNet's training step, fused path against the plain softmax + einsum
path: each variant in its own subprocess (tracemalloc does not see torch's allocations), two training steps of
batch 128 (forward, backward, Adam), then the process's high-water mark VmHWM from /proc/self/status.

    python benchmarks/hypernet_memory.py [--batch 128]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import torch
from hyperbench.models.transform import hypernet_shallow
torch.manual_seed(0)
m = hypernet_shallow()
m.mix.fused = {fused}
opt = torch.optim.Adam(m.parameters(), 1e-3)
x, c, t = torch.rand({batch}, 1, 28, 28), torch.randn({batch}, 2), torch.rand({batch}, 1, 28, 28)
for _ in range(2):
    opt.zero_grad(set_to_none=True)
    ((m(x, c) - t) ** 2).mean().backward()
    opt.step()
print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
"""


def peak_mib(fused: bool, batch: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD.format(fused=fused, batch=batch)], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    plain, fused = peak_mib(False, args.batch), peak_mib(True, args.batch)
    print(f"hypernet_shallow, batch {args.batch}, 2 training steps: peak RSS plain {plain:.0f} MiB, fused {fused:.0f} MiB "
          f"({fused / plain:.2f}x)")


if __name__ == "__main__":
    main()
