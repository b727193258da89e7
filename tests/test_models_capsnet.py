"""model=capsnet (Sabour et al. dynamic routing): squash, routing, shapes, the parameter count from the spec,
the losses, the masked decoder, and a tiny task=invariance run that writes the reconstruction grid."""
import json

import pytest
import torch

from hyperbench.errors import ConfigError
from hyperbench.models import create_model
from hyperbench.models.capsnet import margin_loss, route, squash

from .conftest import TINY, in_process

PNG = b"\x89PNG\r\n\x1a\n"
# a narrow CapsNet (same layout, fewer channels) for the slower tests
SMALL = dict(conv_channels=16, primary_channels=4, primary_dim=8, class_dim=16, decoder=[32, 64])


def test_squash_keeps_direction_and_puts_lengths_in_0_1():
    torch.manual_seed(0)
    # lengths ~1e-3 .. ~1e2: beyond that 1 - 1/(1+|s|^2) is within float32 rounding of 1 (checked below)
    s = torch.cat([torch.randn(200, 8) * torch.logspace(-3, 1.5, 200).unsqueeze(1), torch.zeros(1, 8)])
    v = squash(s)
    lengths = v.norm(dim=-1)
    assert torch.isfinite(v).all()
    assert (lengths >= 0).all() and (lengths < 1).all()
    assert lengths[-1] == 0  # the zero vector stays zero
    n = s.norm(dim=-1)
    torch.testing.assert_close(lengths, n ** 2 / (1 + n ** 2), atol=1e-6, rtol=1e-5)
    # same direction
    cos = torch.nn.functional.cosine_similarity(v[:-1], s[:-1], dim=-1)
    torch.testing.assert_close(cos, torch.ones(200))
    # huge vectors: length 1 - 1/(1+|s|^2) rounds to 1.0 in float32 but never above it, no overflow/NaN
    huge = squash(torch.full((3, 8), 1e15) * torch.tensor([[1.0], [-1.0], [0.5]]))
    assert torch.isfinite(huge).all() and (huge.norm(dim=-1) <= 1 + 1e-6).all() and (huge.norm(dim=-1) > 0.999).all()
    # the gradient at the zero vector is finite
    z = torch.zeros(2, 8, requires_grad=True)
    squash(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_routing_coefficients_sum_to_one_over_the_parents():
    torch.manual_seed(0)
    u_hat = torch.randn(3, 50, 7, 16)
    for iters in (1, 3):
        v, c = route(u_hat, iters)
        assert v.shape == (3, 7, 16) and c.shape == (3, 50, 7)
        torch.testing.assert_close(c.sum(2), torch.ones(3, 50))
        assert (v.norm(dim=-1) < 1).all()
    # one iteration: uniform coupling; three: the coupling has moved towards agreeing parents
    assert torch.allclose(route(u_hat, 1)[1], torch.full((3, 50, 7), 1 / 7))
    assert not torch.allclose(route(u_hat, 3)[1], torch.full((3, 50, 7), 1 / 7))


def test_every_capsule_layer_has_the_papers_shape():
    torch.manual_seed(0)
    m = create_model("capsnet", num_classes=10)
    x = torch.rand(2, 1, 28, 28)
    assert m.conv1(x).shape == (2, 256, 20, 20)
    assert m.primary(torch.relu(m.conv1(x))).shape == (2, 256, 6, 6)
    u = m.primary_capsules(x)
    assert u.shape == (2, 1152, 8) and (u.norm(dim=-1) < 1).all()
    assert m.W.shape == (1152, 10, 16, 8)
    v, c = m.capsules(x)
    assert v.shape == (2, 10, 16) and c.shape == (2, 1152, 10)
    assert m(x).shape == (2, 10)
    recon, pred = m.reconstruct(x)
    assert recon.shape == (2, 1, 28, 28) and pred.shape == (2,)
    assert torch.equal(pred, m(x).argmax(1))
    # evaluation in chunks gives the same scores as one pass
    m.eval_chunk = 1
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.capsules(x)[0].norm(dim=-1))
    # 8 classes (rotation=restricted34): K class capsules, the rest the same
    m8 = create_model("capsnet", num_classes=8)
    assert m8.capsules(x)[0].shape == (2, 8, 16) and m8.W.shape == (1152, 8, 16, 8)


@pytest.mark.parametrize("k", [10, 8])
def test_parameter_count_is_the_one_the_spec_gives(k):
    m = create_model("capsnet", num_classes=k)
    conv1 = 9 * 9 * 1 * 256 + 256
    primary = 9 * 9 * 256 * 256 + 256
    w = 1152 * k * 16 * 8  # one 16x8 matrix per (primary capsule, class)
    decoder = (16 * k * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
    assert sum(p.numel() for p in m.parameters()) == conv1 + primary + w + decoder
    if k == 10:  # Sabour et al.: 8.2M parameters, 6.8M without the decoder (counted from the model)
        total = sum(p.numel() for p in m.parameters())
        assert total == 8_215_568 and total - sum(p.numel() for p in m.decoder.parameters()) == 6_804_224


def test_gradient_reaches_the_first_conv():
    torch.manual_seed(0)
    m = create_model("capsnet", num_classes=10, **SMALL)
    loss = m.training_loss(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for p in (m.conv1.weight, m.conv1.bias, m.primary.weight, m.W, m.decoder[0].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_margin_loss_on_hand_computed_examples():
    y = torch.tensor([0, 2])
    lengths = torch.tensor([[0.95, 0.05, 0.0],    # confident and right: no loss
                            [0.5, 0.2, 0.3]])     # true class 2 at 0.3, others above m- = 0.1
    # row 1: (0.9 - 0.3)^2 + 0.5 * ((0.5 - 0.1)^2 + (0.2 - 0.1)^2) = 0.36 + 0.5 * 0.17 = 0.445
    torch.testing.assert_close(margin_loss(lengths, y), torch.tensor([0.0, 0.445]))
    m = create_model("capsnet", num_classes=3, **SMALL)
    torch.testing.assert_close(m.score_loss(lengths, y), torch.tensor(0.445))


def test_training_loss_is_margin_plus_weighted_reconstruction_masked_by_the_true_class():
    torch.manual_seed(0)
    m = create_model("capsnet", num_classes=10, **SMALL)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    v, _ = m.capsules(x)
    recon = m.decode(v, y)
    assert recon.min() >= 0 and recon.max() <= 1
    expected = (margin_loss(v.norm(dim=-1), y) + 0.392 * ((recon - x) ** 2).mean((1, 2, 3))).mean()
    torch.testing.assert_close(m.training_loss(x, y), expected)
    # the decoder sees only the true class's capsule: another label gives another decoder input and loss
    seen = []
    hook = m.decoder[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    m.training_loss(x, y)
    m.training_loss(x, torch.tensor([5, 1, 2, 3]))
    hook.remove()
    a, b = (s.view(4, 10, 16) for s in seen)
    assert torch.equal(a[0, 0], v[0, 0].detach()) and (a[0, 1:] == 0).all()
    assert (b[0, 0] == 0).all() and torch.equal(b[0, 5], v[0, 5].detach())
    assert torch.equal(a[1:], b[1:])
    # the reconstruction range follows the data's scale
    m2 = create_model("capsnet", num_classes=10, recon_range=[-1.0, 1.0], **SMALL)
    r = m2.decode(m2.capsules(x)[0], y)
    assert r.min() >= -1 and r.max() <= 1 and r.min() < 0


@pytest.mark.parametrize("opts,message", [
    ({"routing_iters": 0}, "model.routing_iters must be a positive integer, got 0"),
    ({"routing_iters": 2.5}, "model.routing_iters must be a positive integer, got 2.5"),
    ({"image_size": 16}, "model=capsnet needs images of at least 17x17"),
    ({"recon_weight": -1.0}, "model.recon_weight must be >= 0"),
    ({"decoder": [512, 0]}, "model.decoder must be a positive integer, got 0"),
])
def test_bad_options_are_config_errors(opts, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        create_model("capsnet", **{"num_classes": 10, **opts})


def test_bad_routing_iters_on_the_command_line_is_one_paragraph_and_exit_2(tmp_path, run_cli):
    p = run_cli("task=invariance", "model=capsnet", "model.routing_iters=0", f"hydra.run.dir={tmp_path / 'run'}",
                   data_root=tmp_path / "nodata")
    assert p.returncode == 2, p.stderr
    assert "model.routing_iters must be a positive integer, got 0" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_tiny_invariance_run_writes_metrics_and_the_reconstruction_grid(fake_mnist, tmp_path):
    run = tmp_path / "run"
    small = [f"model.{k}={v}".replace(" ", "") for k, v in SMALL.items()]
    p = in_process("task=invariance", "model=capsnet", "data=mnist", "rotation=restricted34", *TINY, *small,
                   "trainer.epochs=1", "task.eval_repeats=1", "task.curve_images=20", "task.curve_step=90",
                   f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["model"] == "capsnet"
    for key in ("ptest", "p34in", "pout", "pinv", "test_acc", "val_acc"):
        assert 0 <= m[key] <= 1
    assert m["reconstructions"] == {"digits": [3, 4], "angles": [0, 30, -30, 90, 180, 270]}
    for png in ("reconstructions.png", "acc_vs_angle.png", "curves.png"):
        data = (run / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000


@pytest.mark.slow
def test_summary_lists_the_routing_transforms_and_times_an_epoch(tmp_path):
    small = [f"model.{k}={v}".replace(" ", "") for k, v in SMALL.items()]
    p = in_process("task=summary", "model=capsnet", "data=mnist", "trainer=invariance", *small, "task.time_steps=2",
                   "trainer.batch_size=16", "data.train_size=1000", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "(model)" in out and "W (144, 10, 16, 8)" in out  # 4 primary channels x 6x6 positions
    line = next(l for l in out.splitlines() if l.startswith("seconds per epoch (estimate):"))
    assert "= 62 steps x" in line and "timed over 2 steps after 1 warm-up, batch 16, 1,000 training images" in line
    assert "thread(s)" in line and "channels_last False" in line
    # without task.time_steps nothing is timed
    p = in_process("task=summary", "model=capsnet", "data=mnist", *small, f"hydra.run.dir={tmp_path / 'b'}")
    assert p.returncode == 0 and "seconds per epoch" not in p.stdout


def test_invariance_table_puts_the_capsule_rows_beside_their_published_values():
    import pandas as pd

    from hyperbench.report.published import INVARIANCE_PROTOCOL
    from hyperbench.report.invariance import invariance_table

    runs = pd.DataFrame([{"model": m, "protocol": INVARIANCE_PROTOCOL, "ptest": 0.9, "p34in": 0.9, "pout": 0.2,
                          "pinv": 0.01, "epochs_completed": 3, "seconds_per_epoch": 10.0, "run_time_s": 30.0,
                          "total_params": 1} for m in ("capsnet_em", "capsnet", "cnn")])
    table = invariance_table(runs)
    assert list(table.Model) == ["cnn", "capsnet", "capsnet_em"]
    caps, em = table.iloc[1], table.iloc[2]
    assert [caps[f"{k}, published (Potapov 2018a)"] for k in ("Ptest", "P34in", "Pout", "Pinv")] == ["0.991", "0.996", "0.249", "0.009"]
    assert [em[f"{k}, published (Potapov 2018a)"] for k in ("Ptest", "P34in", "Pout", "Pinv")] == ["0.976", "0.989", "0.218", "0.090"]
