"""capsnet_em (matrix capsules with EM routing): the routing itself, every layer's shape, exact parameter
counts, gradients, the spread loss and its margin schedule, bad options, and a tiny invariance run."""
import json

import pytest
import torch

from hyperbench.errors import ConfigError
from hyperbench.models import create_model
from hyperbench.models.capsnet_em import em_routing, spread_loss

from .conftest import TINY, in_process


@pytest.mark.parametrize("iters", [1, 2, 3])
def test_em_responsibilities_sum_to_one_over_the_outputs(iters):
    g = torch.Generator().manual_seed(0)
    m, o, i = 6, 5, 7
    votes = torch.randn(m, o, i, 16, generator=g)
    a_in = torch.rand(m, i, generator=g)
    beta_u, beta_a = torch.randn(o, generator=g), torch.randn(o, generator=g)
    mu, a_out, r = em_routing(votes, a_in, beta_u, beta_a, iters, lam=0.01, return_r=True)
    assert mu.shape == (m, o, 16) and a_out.shape == (m, o) and r.shape == (m, o, i)
    assert torch.allclose(r.sum(1), torch.ones(m, i), atol=1e-5)
    assert (r >= 0).all() and ((a_out > 0) & (a_out < 1)).all()
    if iters == 1:  # no E-step: uniform responsibilities, mu the activation-weighted mean of the votes
        assert torch.allclose(r, torch.full_like(r, 1 / o))
        w = a_in / a_in.sum(1, keepdim=True)
        assert torch.allclose(mu, torch.einsum("mi,moih->moh", w, votes), atol=1e-5)
    else:  # routing is not a no-op
        assert not torch.allclose(r, torch.full_like(r, 1 / o))


def test_em_routing_sends_each_input_to_the_output_its_vote_agrees_with():
    # two outputs; inputs 0-3 agree closely on output 0 and scatter widely on output 1, inputs 4-7 the reverse
    g = torch.Generator().manual_seed(1)
    votes = torch.randn(1, 2, 8, 16, generator=g) * 0.05
    votes[0, 1, :4] = torch.randn(4, 16, generator=g) * 3
    votes[0, 0, 4:] = torch.randn(4, 16, generator=g) * 3
    _, _, r = em_routing(votes, torch.ones(1, 8), torch.zeros(2), torch.zeros(2), 3, lam=0.01, return_r=True)
    assert (r[0, 0, :4] > 0.5).all() and (r[0, 1, 4:] > 0.5).all()


def layer_shapes(model, x):
    out = model.layers(x)
    shapes = {"conv": tuple(out["conv"].shape)}
    for name in ("primary", "caps1", "caps2", "classes"):
        shapes[name] = tuple(out[name][0].shape), tuple(out[name][1].shape)
    return shapes


def test_shapes_of_every_layer_default_and_published_sizes():
    x = torch.rand(3, 1, 28, 28)
    m = create_model("capsnet_em", num_classes=8)  # the defaults: A=32, B=4, C=D=8
    assert layer_shapes(m, x) == {
        "conv": (3, 32, 12, 12),
        "primary": ((3, 4, 16, 12, 12), (3, 4, 12, 12)),
        "caps1": ((3, 8, 16, 5, 5), (3, 8, 5, 5)),
        "caps2": ((3, 8, 16, 3, 3), (3, 8, 3, 3)),
        "classes": ((3, 8, 16), (3, 8)),
    }
    m = create_model("capsnet_em", num_classes=10, A=32, B=8, C=16, D=16, iters=3)  # published sizes
    assert layer_shapes(m, x) == {
        "conv": (3, 32, 12, 12),
        "primary": ((3, 8, 16, 12, 12), (3, 8, 12, 12)),
        "caps1": ((3, 16, 16, 5, 5), (3, 16, 5, 5)),
        "caps2": ((3, 16, 16, 3, 3), (3, 16, 3, 3)),
        "classes": ((3, 10, 16), (3, 10)),
    }
    # a larger RGB image: 32 -> 14 -> 6 -> 4
    m = create_model("capsnet_em", num_classes=5, in_channels=3, image_size=32, A=6, B=2, C=3, D=4)
    assert layer_shapes(m, torch.rand(2, 3, 32, 32)) == {
        "conv": (2, 6, 14, 14),
        "primary": ((2, 2, 16, 14, 14), (2, 2, 14, 14)),
        "caps1": ((2, 3, 16, 6, 6), (2, 3, 6, 6)),
        "caps2": ((2, 4, 16, 4, 4), (2, 4, 4, 4)),
        "classes": ((2, 5, 16), (2, 5)),
    }
    scores = m(torch.rand(2, 3, 32, 32))
    assert scores.shape == (2, 5) and ((scores > 0) & (scores < 1)).all()


def expected_params(A, B, C, D, K, cin=1, batch_norm=True):
    conv = A * cin * 25 + (2 * A if batch_norm else A)       # 5x5 kernels, + BN scale/shift or a bias
    primary = A * B * 16 + B * 16 + A * B + B                # 1x1 conv to poses, 1x1 conv to activations
    caps1 = 3 * 3 * B * C * 16 + 2 * C                       # a 4x4 matrix per (kernel position, in type, out type)
    caps2 = 3 * 3 * C * D * 16 + 2 * D                       # + beta_u, beta_a per output type
    classes = D * K * 16 + 2 * K                             # shared over positions
    return conv + primary + caps1 + caps2 + classes


@pytest.mark.parametrize("sizes", [dict(A=32, B=4, C=8, D=8, K=8), dict(A=32, B=8, C=16, D=16, K=10),
                                   dict(A=7, B=3, C=5, D=2, K=4, batch_norm=False)])
def test_exact_parameter_count(sizes):
    sizes = dict(sizes)
    k, bn = sizes.pop("K"), sizes.pop("batch_norm", True)
    m = create_model("capsnet_em", num_classes=k, batch_norm=bn, **sizes)
    assert sum(p.numel() for p in m.parameters()) == expected_params(**sizes, K=k, batch_norm=bn)
    if sizes == dict(A=32, B=8, C=16, D=16) and k == 10:  # the count of the model itself, not of the formula
        assert sum(p.numel() for p in m.parameters()) == 63292


def test_gradient_reaches_the_first_conv_and_every_parameter():
    torch.manual_seed(0)
    m = create_model("capsnet_em", num_classes=8, A=8, B=2, C=3, D=3, iters=3)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 5, 7])
    loss = m.training_loss(x, y)
    loss.backward()
    assert loss.item() > 0
    assert m.conv1.weight.grad is not None and m.conv1.weight.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.classes.weight.grad.abs().sum() > 0 and m.caps1.weight.grad.abs().sum() > 0


def test_margin_schedule_counts_training_steps_only_and_is_saved():
    m = create_model("capsnet_em", num_classes=4, A=4, B=2, C=2, D=2, margin_steps=10)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    assert m.margin().item() == pytest.approx(0.2)
    m.train()
    for _ in range(5):
        m.training_loss(x, y)
    assert int(m.step) == 5 and m.margin().item() == pytest.approx(0.55)
    m.eval()
    m.training_loss(x, y)                    # evaluation does not advance the schedule
    assert int(m.step) == 5
    m.train()
    for _ in range(10):
        m.training_loss(x, y)
    assert int(m.step) == 15 and m.margin().item() == pytest.approx(0.9)   # capped at 0.9
    assert int(m.state_dict()["step"]) == 15                                 # checkpoints carry it
    fresh = create_model("capsnet_em", num_classes=4, A=4, B=2, C=2, D=2, margin_steps=10)
    fresh.load_state_dict(m.state_dict())
    assert fresh.margin().item() == pytest.approx(0.9)
    assert create_model("capsnet_em", margin_steps=0).margin().item() == pytest.approx(0.9)


def test_spread_loss_on_a_hand_computed_example():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8]])
    y = torch.tensor([0, 1])
    # example 0 (target 0.9), m = 0.5: max(0, 0.5 - (0.9 - 0.5))^2 + max(0, 0.5 - (0.9 - 0.1))^2 = 0.01 + 0
    # example 1 (target 0.3):           max(0, 0.5 - (0.3 - 0.2))^2 + max(0, 0.5 - (0.3 - 0.8))^2 = 0.16 + 1.0
    assert torch.allclose(spread_loss(scores, y, 0.5), torch.tensor([0.01, 1.16]))
    m = create_model("capsnet_em", num_classes=3, A=4, B=2, C=2, D=2, margin_steps=0)   # margin 0.9
    # m = 0.9: example 0: 0.5^2 + 0.1^2 = 0.26; example 1: 0.8^2 + 1.4^2 = 2.6; summed over the batch
    assert m.score_loss(scores, y).item() == pytest.approx(0.26 + 2.6)


@pytest.mark.parametrize("opts,message", [
    (dict(A=0), "model.A must be a positive integer"),
    (dict(D=2.5), "model.D must be a positive integer"),
    (dict(iters=0), "model.iters must be a positive integer"),
    (dict(lam=0.0), "model.lam (the EM inverse temperature) must be a positive number"),
    (dict(margin_steps=-1), "model.margin_steps must be a non-negative integer"),
    (dict(image_size=16), "capsnet_em needs images of at least 17x17"),
    (dict(size=3), "takes no option(s) size"),
])
def test_bad_options_are_config_errors(opts, message):
    with pytest.raises(ConfigError) as err:
        create_model("capsnet_em", **opts)
    assert message in str(err.value)
    create_model("capsnet_em", image_size=17, A=2, B=1, C=1, D=1)  # the smallest image that fits


def test_evaluation_in_chunks_matches_one_batch():
    torch.manual_seed(0)
    m = create_model("capsnet_em", num_classes=4, A=4, B=2, C=2, D=2, eval_chunk=3).eval()
    x = torch.rand(7, 1, 28, 28)
    with torch.no_grad():
        chunked = m(x)
        m.eval_chunk = 100
        whole = m(x)
    assert torch.allclose(chunked, whole, atol=1e-6)


@pytest.mark.slow
def test_tiny_invariance_run_writes_the_protocol_metrics(fake_mnist, tmp_path):
    run = tmp_path / "capsnet_em"
    p = in_process("task=invariance", "model=capsnet_em", "rotation=restricted34", *TINY, "trainer.epochs=1",
                   "data.train_size=200", "model.A=4", "model.B=2", "model.C=2", "model.D=2",
                   "task.eval_repeats=1", "task.curve_step=90", "task.curve_images=20",
                   f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["model"] == "capsnet_em" and m["task"] == "invariance"
    for key in ("ptest", "p34in", "pout", "pinv", "test_acc"):
        assert 0 <= m[key] <= 1
    assert m["total_params"] == expected_params(4, 2, 2, 2, 8)
    for f in ("history.csv", "acc_vs_angle.csv", "curves.png", "acc_vs_angle.png", "model.pt"):
        assert (run / f).exists(), f
