"""task=invariance: each metric on exactly its digits and angle range (a stub model that reads the
angle off the image), the invariance study's CNN shapes and exact parameter counts, the hypernetwork row."""

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from hyperbench.data import Split
from hyperbench.models import create_model
from hyperbench.models.cnn import DynamicConv2d
from hyperbench.protocols.rotation import RotationProtocol
from hyperbench.tasks.invariance import angle_curve, protocol_metrics

from .conftest import CONF

PROTOCOL = RotationProtocol.from_config(OmegaConf.load(CONF / "rotation" / "restricted34.yaml"), 10)


def marked_images(y: torch.Tensor) -> torch.Tensor:
    """A 4x4 centre block whose brightness encodes the label (rotation leaves the centre pixel
    unchanged) and a bar straight above it that shows which way the image has been turned."""
    x = torch.zeros(len(y), 1, 28, 28)
    x[:, 0, 12:16, 12:16] = ((y + 1) / 10).view(-1, 1, 1)
    x[:, 0, 3:6, 12:16] = 1.0
    return x


class AngleReader(nn.Module):
    """Reads label and rotation angle back from marked_images; right only where `rule(digit, angle)`."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule
        r = torch.arange(28) - 13.5
        self.register_buffer("dy", r.view(28, 1).expand(28, 28))
        self.register_buffer("dx", r.view(1, 28).expand(28, 28))

    def forward(self, x):
        label = (x[:, 0, 13, 13] * 10).round().long() - 1
        far = (self.dy ** 2 + self.dx ** 2 > 25).float()
        m = x[:, 0] * far
        cy, cx = (m * self.dy).sum((1, 2)), (m * self.dx).sum((1, 2))
        angle = torch.rad2deg(torch.atan2(-cy, cx)) - 90  # the bar starts at +90 (straight up)
        angle = (angle + 180) % 360 - 180
        digit = torch.tensor(PROTOCOL.digits)[label]
        right = self.rule(digit, angle)
        pred = torch.where(right, label, (label + 1) % 8)
        return nn.functional.one_hot(pred, 8).float()


def test_reader_reads_the_angle():
    y = torch.zeros(7, dtype=torch.long)
    from hyperbench.data.geometry import rotate

    angles = torch.tensor([-170.0, -90, -30, 0, 44, 120, 179])
    reader = AngleReader(lambda d, a: torch.ones_like(d, dtype=torch.bool))
    x = rotate(marked_images(y), angles)
    far = (reader.dy ** 2 + reader.dx ** 2 > 25).float()
    m = x[:, 0] * far
    got = torch.rad2deg(torch.atan2(-(m * reader.dy).sum((1, 2)), (m * reader.dx).sum((1, 2)))) - 90
    got = (got + 180) % 360 - 180
    assert (got - angles).abs().max() < 1.5


def test_metrics_use_exactly_their_digits():
    y = torch.arange(8).repeat_interleave(torch.tensor([50, 60, 70, 80, 90, 100, 110, 120]))
    split = Split(marked_images(y), y)
    only_threes = AngleReader(lambda d, a: d == 3)  # right on every 3 at any angle, wrong elsewhere
    m = protocol_metrics(only_threes, split, PROTOCOL, repeats=2, seed=0, batch_size=256)
    assert m["ptest"] == pytest.approx(80 / len(y))
    for name in ("p34in", "pout", "pinv"):
        assert m[name] == pytest.approx(80 / (80 + 90))  # 3s and 4s only
    assert set(m) == {"ptest", "p34in", "pout", "pinv", "ptest_std", "p34in_std", "pout_std", "pinv_std"}


def test_metrics_use_exactly_their_angle_ranges():
    y = torch.arange(8).repeat(150)
    split = Split(marked_images(y), y)
    upright = AngleReader(lambda d, a: a.abs() <= 90)  # right only when turned by at most 90 degrees
    m = protocol_metrics(upright, split, PROTOCOL, repeats=3, seed=0, batch_size=400)
    assert m["p34in"] == 1.0  # [-45, 45]
    assert m["pinv"] == 0.0  # [135, 225]
    assert m["pout"] == pytest.approx(90 / 270, abs=0.05)  # [45, 315]: [45, 90] and [270, 315] are upright
    # ptest: 3s and 4s in [-45, 45] (all right), the other six digits in [0, 360) (half right)
    assert m["ptest"] == pytest.approx((2 + 6 * 0.5) / 8, abs=0.04)


def test_angle_curve_every_step_over_the_full_circle():
    y = torch.arange(8).repeat(20)
    split = Split(marked_images(y), y)
    upright = AngleReader(lambda d, a: (a.abs() <= 90) | (d != 3) & (d != 4))
    curve = angle_curve(upright, split, PROTOCOL, step=5, max_images=30, batch_size=100)
    assert list(curve.angle) == [-180 + 5 * k for k in range(72)]
    at = curve.set_index("angle")
    assert at.loc[0, "restricted"] == 1 and at.loc[-45, "restricted"] == 1 and at.loc[85, "restricted"] == 1
    assert at.loc[180 - 5, "restricted"] == 0 and at.loc[-135, "restricted"] == 0
    assert (curve.others == 1).all()
    assert at.loc[135, "digit_3"] == 0 and at.loc[135, "digit_8"] == 1
    assert "digit_6" not in curve and "digit_9" not in curve


def test_cnn_shapes_and_exact_parameter_count():
    m = create_model("cnn", num_classes=8)
    x = torch.randn(2, 1, 28, 28)
    h1 = m.conv1(x)
    h2 = m.conv2(h1)
    assert h1.shape == (2, 64, 14, 14) and h2.shape == (2, 128, 7, 7) and m(x).shape == (2, 8)
    assert m.fc1.in_features == 7 * 7 * 128 and m.fc1.out_features == 1024
    # conv1 1*64*16+64, conv2 64*128*16+128, dense 6272*1024+1024, dense 1024*8+8
    assert sum(p.numel() for p in m.parameters()) == 1088 + 131_200 + 6_423_552 + 8200 == 6_564_040


def test_variants():
    bn = create_model("cnn", num_classes=8, batch_norm=True)
    assert isinstance(bn.conv1.bn, nn.BatchNorm2d) and bn.conv1.conv.bias is None
    drop = create_model("cnn", num_classes=8, dropout=0.5)
    assert drop.drop.p == 0.5
    deep = create_model("cnn", num_classes=8, extra_convs=2)
    assert len(deep.extra) == 2 and deep(torch.randn(2, 1, 28, 28)).shape == (2, 8)
    assert create_model("cnn", num_classes=10, channels=[8, 16], hidden=32)(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_hyper_cnn_generates_one_kernel_per_image_batched():
    torch.manual_seed(0)
    m = create_model("hyper_cnn", num_classes=8)
    layer = m.conv1
    assert isinstance(layer, DynamicConv2d)
    x = torch.randn(5, 1, 28, 28)
    w, b = layer.kernels_for(x)
    assert w.shape == (5, 64, 1, 4, 4) and b.shape == (5, 64)
    assert not torch.allclose(w[0], w[1])  # the kernels depend on the image
    out = layer(x)
    for i in (0, 3):  # the grouped convolution equals convolving each image with its own kernel
        ref = nn.functional.leaky_relu(nn.functional.conv2d(x[i:i + 1], w[i], b[i], stride=2, padding=1), 0.1)
        torch.testing.assert_close(out[i:i + 1], ref, atol=1e-5, rtol=1e-4)
    loss = m(x).logsumexp(1).mean()
    loss.backward()
    assert layer.head.weight.grad.abs().sum() > 0 and layer.control[0].weight.grad.abs().sum() > 0
