"""The rotation-equivariant row (model=steerable_cnn, e2cnn): exact invariance to rot90, exact size,
learning, bad options and a tiny run of the real command."""
import json

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("e2cnn")  # the `equivariant` extra; make install includes it

from hyperbench.errors import ConfigError  # noqa: E402
from hyperbench.models import create_model  # noqa: E402

from .conftest import TINY, in_process  # noqa: E402


@pytest.mark.parametrize("order", [4, 8])
def test_logits_are_invariant_to_rotations_by_90_degrees(order):
    torch.manual_seed(0)
    m = create_model("steerable_cnn", num_classes=8, group_order=order).eval()
    x = F.pad(torch.rand(3, 1, 28, 28), (0, 1, 0, 1))  # the model pads 28 to 29 itself; check on 29
    with torch.no_grad():
        ref = m(x)
        for k in (1, 2, 3):
            torch.testing.assert_close(m(torch.rot90(x, k, (2, 3))), ref, atol=1e-5, rtol=1e-4)
        # an ordinary image is not invariant to a shift: the check above is not vacuous
        assert (m(torch.roll(x, 5, dims=3)) - ref).abs().max() > 1e-3


def test_shape_and_exact_parameter_count():
    m = create_model("steerable_cnn", num_classes=8)
    assert m(torch.randn(5, 1, 28, 28)).shape == (5, 8)
    head = (16 * 256 + 256) + (256 * 8 + 8)
    batch_norm = 2 * (8 + 16 + 16)  # InnerBatchNorm: weight and bias per field
    total = sum(p.numel() for p in m.parameters())
    assert head == sum(p.numel() for p in m.head.parameters()) == 6408
    assert total - head - batch_norm == 23640  # the steerable convs' basis coefficients
    assert total == 30128


def test_loss_falls_and_every_layer_learns():
    torch.manual_seed(0)
    m = create_model("steerable_cnn", num_classes=2, channels=[2, 4], hidden=16)
    x = torch.rand(16, 1, 28, 28)
    y = (x[:, 0, :14].mean((1, 2)) > x[:, 0, 14:].mean((1, 2))).long()  # top half brighter than bottom
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.parametrize("opts,message", [({"group_order": 0}, "model.group_order must be a positive integer"),
                                          ({"channels": [8, 16, 32]}, "model.channels must be two field counts"),
                                          ({"hidden": -1}, "model.hidden must be a positive integer")])
def test_bad_options(opts, message):
    with pytest.raises(ConfigError, match=message):
        create_model("steerable_cnn", num_classes=8, **opts)


@pytest.mark.slow
def test_tiny_invariance_run_of_the_real_command(fake_mnist, tmp_path):
    run = tmp_path / "run"
    p = in_process("task=invariance", "model=steerable_cnn", "model.channels=[2,4]", "model.hidden=16", *TINY,
                   "trainer.epochs=1", "task.eval_repeats=1", "task.curve_images=20", "task.curve_step=45",
                   f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["model"] == "steerable_cnn" and (run / "acc_vs_angle.csv").exists()
