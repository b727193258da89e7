"""benchmarks/families.py (the per-family table of `make bench`): exact FLOP and byte counts on tiny steps, the
roofline verdict, and one family through the whole table (bf16 path included) on the CPU."""
import sys

import pytest
import torch

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


def test_flops_of_a_linear_layer_are_counted_exactly():
    import families

    lin, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    flops, _ = families.step_cost(lambda: lin(x), 0)
    assert flops == 2 * 2 * 4 * 3  # forward: 2 x batch x in x out
    flops, _ = families.step_cost(lambda: lin(x).sum().backward(), 0)
    assert flops == 2 * (2 * 2 * 4 * 3)  # + the weight gradient (x needs none)


def test_bytes_count_large_tensors_once_per_operator():
    import families

    a, b = torch.ones(1 << 18), torch.ones(1 << 18)  # 1 MiB each
    _, moved = families.step_cost(lambda: torch.add(a, b), 1 << 20)
    assert moved == 3 << 20  # two inputs and the output
    _, moved = families.step_cost(lambda: torch.add(a, a), 1 << 20)
    assert moved == 2 << 20  # the same tensor twice is one trip
    assert families.step_cost(lambda: torch.add(a, b), 2 << 20)[1] == 0  # below the threshold: in cache
    assert families.step_cost(lambda: (a.view(2, -1)[1], a.t(), a[:10]), 0)[1] == 0  # views move nothing
    assert families.step_cost(lambda: a.view(2, -1)[1].sum(), 0)[1] == (1 << 19) + 4  # the half the sum reads


def test_the_binding_limit_is_the_larger_lower_bound():
    import families

    r = families.binding(flops=100e9, nbytes=1e9, seconds=1.0, matmul_flops_s=200e9, copy_bytes_s=10e9)
    assert r["binds"] == "compute" and r["fraction"] == pytest.approx(0.5) and r["gflops"] == pytest.approx(100)
    r = families.binding(flops=1e9, nbytes=8e9, seconds=2.0, matmul_flops_s=200e9, copy_bytes_s=10e9)
    assert r["binds"] == "memory" and r["fraction"] == pytest.approx(0.4) and r["gbs"] == pytest.approx(4)


def test_a_family_through_the_table_in_fp32_and_bf16(capsys, fake_mnist, monkeypatch):
    import families

    monkeypatch.setenv("HYPERBENCH_DATA", str(fake_mnist))  # the synthetic MNIST: no real data needed
    cpu = torch.device("cpu")
    rows = families.table(["conv", "nosuch"], cpu, "fp32", steps=1, batch=8)
    (row,) = rows
    assert row["family"] == "conv" and row["batch"] == 8 and row["flops"] > 0 and row["bytes"] >= 0
    assert row["binds"] in ("compute", "memory") and row["fraction"] > 0 and "peak_mib" not in row
    assert row["s_epoch"] == pytest.approx(row["s_step"] * row["steps_per_epoch"])
    bf16 = families.table(["conv"], cpu, "bf16", steps=1, batch=8)[0]
    assert bf16["flops"] == row["flops"]  # the same products, in bf16 under autocast
    out = capsys.readouterr().out
    assert "nosuch            skipped: unknown family" in out and "cpu, bf16" in out
