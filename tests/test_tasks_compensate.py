"""task=compensate pieces in process: the model only ever receives the rotated image (never the angle), the
image control's shape, which models can take it, the shallow variant's memory, and the 6/9 definition."""
import pytest
import torch

from hyperbench.data import Split
from hyperbench.errors import ConfigError
from hyperbench.models.compensator import Compensator, ImageControl, NoControl, build_compensator
from hyperbench.data.geometry import rotate
from hyperbench.tasks import transform as base
from hyperbench.tasks.compensate import Compensate, _confused
from hyperbench.protocols.families import Rotate

from .test_tasks_transform import digits_like, family


class Spy(torch.nn.Module):
    """Wraps the inner model of a Compensator and records every tensor its forward receives."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, *args):
        self.calls.append(args)
        return self.inner(*args)


def test_the_model_never_receives_the_angle(monkeypatch):
    """Training, validation, per-digit metrics and the curve: the wrapped model gets (rotated image, rotated image)
    and nothing else; the angle's encoding is never even computed (Rotate.encode raises)."""

    def leak(self, raw):
        raise AssertionError("task=compensate computed the angle encoding (cos a, sin a)")

    monkeypatch.setattr(Rotate, "encode", leak)
    torch.manual_seed(0)
    model = build_compensator("hypernet_deep", "hypernet_deep", 1, 28)
    spy = model.net = Spy(model.net)
    problem = Compensate(family("rotate"))
    obj = base.problem_objective(problem, seed=0)
    x, y = digits_like(6), torch.tensor([4, 9, 3, 6, 4, 1])

    rotated, (target, rest) = obj.augment(x, y, torch.Generator().manual_seed(1))
    angles = problem.transform.sample(y, torch.Generator().manual_seed(1))[:, 0]  # the same draw
    torch.testing.assert_close(rotated, rotate(x, angles, fill=-1.0))
    assert target is x and rest == []  # the target is the upright image; nothing but the image goes in
    obj.loss(model, rotated, (target, rest)).backward()
    with torch.no_grad():
        obj.evaluate(model, Split(x, y), batch_size=4)
        base.digit_metrics(model, Split(x, y), problem, None, 0, 4)
        base.curve(model, x, {"all": torch.arange(6)}, problem, torch.tensor([-90.0, 0.0, 135.0]), 4)
    assert len(spy.calls) > 6
    for args in spy.calls:
        assert len(args) == 2 and args[0] is args[1], "the condition must be the image itself"
        assert args[0].dim() == 4 and args[0].shape[1:] == (1, 28, 28)
    assert spy.calls[0][0] is rotated


def test_image_control_is_conv20_conv10_dense_and_feeds_the_generated_layer():
    model = build_compensator("hypernet_deep", "hypernet_deep", 1, 28, channels=[10, 20], code=200,
                              control_hidden=64)
    control = model.net.mix.control
    assert isinstance(control, ImageControl) and control.out_features == 64
    convs = [m for m in control.net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(20, (5, 5), (2, 2)), (10, (5, 5), (2, 2))]
    x = digits_like(3)
    w = model.net.mix.weights(x)
    assert w.shape == (3, 200, 200)  # one middle layer per image
    torch.testing.assert_close(w.sum(1), torch.ones(3, 200))  # softmax over the inputs
    assert model(x).shape == x.shape
    ae = build_compensator("transform_ae", "ae", 1, 28)
    assert isinstance(ae.net.control, NoControl) and ae.net.decoder.fc[0].in_features == 10  # latent only
    assert ae(x).shape == x.shape


@pytest.mark.parametrize("arch", ["transform_aae", "hypernet_shallow"])
def test_the_other_transform_models_take_the_image_too(arch):
    model = build_compensator(arch, arch, 1, 28)
    x = digits_like(2)
    assert isinstance(model, Compensator) and model(x).shape == x.shape
    if arch == "transform_aae":  # its own training step (critic update) gets the image as its condition
        assert model.training_loss(x, x).ndim == 0


def test_a_model_without_a_control_is_refused():
    with pytest.raises(ConfigError, match="model=hyper5_5 \\(arch hyper\\) cannot take one"):
        build_compensator("hyper", "hyper5_5", 1, 28)


def test_shift_and_affine_compensation_use_the_family():
    x = digits_like(2)
    for name in ("shift", "affine"):
        problem = Compensate(family(name))
        raw = problem.transform.sample(torch.tensor([4, 3]), torch.Generator().manual_seed(0))
        (inp,) = problem.inputs(x, raw)
        torch.testing.assert_close(inp, problem.transform.apply(x, raw))
        assert problem.target(x, raw) is x


def test_six_nine_definition():
    """Confused = closer (MSE) to the other digit's mean upright image than to its own."""
    six, nine = torch.full((1, 1, 2, 2), -1.0), torch.full((1, 1, 2, 2), 1.0)
    outputs = torch.tensor([-0.9, 0.8, 0.1]).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    assert _confused(outputs, six[0], nine[0]).tolist() == [0.0, 1.0, 1.0]  # as 6s
