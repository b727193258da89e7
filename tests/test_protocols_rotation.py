"""hyperbench/rotation.py: the sign convention, the protocol's sampler, its parsing, and the views
each metric is computed on."""

import pytest
import torch
from omegaconf import OmegaConf

from hyperbench.data import Split
from hyperbench.errors import ConfigError
from hyperbench.data.geometry import rotate
from hyperbench.protocols.rotation import RotationProtocol, protocol_views, wrapped_spans

from .conftest import CONF

RESTRICTED34 = OmegaConf.load(CONF / "rotation" / "restricted34.yaml")


def protocol(**changes) -> RotationProtocol:
    cfg = OmegaConf.merge(RESTRICTED34, changes)
    return RotationProtocol.from_config(cfg, 10)


def test_rotation_by_90_is_rot90_counterclockwise_as_displayed():
    x = torch.rand(3, 2, 28, 28)
    torch.testing.assert_close(rotate(x, 90.0), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(x, -90.0), torch.rot90(x, -1, dims=(2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(x, 180.0), torch.rot90(x, 2, dims=(2, 3)), atol=1e-5, rtol=0)
    # counterclockwise as displayed (row 0 at the top): the top-right pixel goes to the top-left
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 0, 27] = 1
    assert rotate(img, 90.0)[0, 0, 0, 0] > 0.99


def test_one_angle_per_image_and_zero_is_identity():
    x = torch.rand(4, 1, 28, 28)
    out = rotate(x, torch.tensor([0.0, 90.0, 180.0, 270.0]))
    torch.testing.assert_close(out[0], x[0], atol=1e-5, rtol=0)
    for k in (1, 2, 3):
        torch.testing.assert_close(out[k], torch.rot90(x[k], k, dims=(1, 2)), atol=1e-5, rtol=0)


def test_sampler_keeps_restricted_digits_inside_their_range():
    p = protocol()
    assert p.digits == (0, 1, 2, 3, 4, 5, 7, 8) and p.restricted_labels() == [3, 4]
    y = torch.arange(8).repeat(25_000)  # 200,000 draws
    angles = p.sample(y, torch.Generator().manual_seed(0))
    r = (y == 3) | (y == 4)
    assert angles[r].min() >= -45 and angles[r].max() <= 45
    assert angles[r].min() < -44.9 and angles[r].max() > 44.9  # the whole range is used
    assert angles[~r].min() >= 0 and angles[~r].max() <= 360 and angles[~r].max() > 359.9
    assert abs(angles[~r].mean().item() - 180) < 1.0


def test_user_protocol_from_the_command_line_shape():
    p = protocol(restricted=[1, 7], restricted_range=[-30, 30])
    y = torch.arange(8).repeat(5000)
    angles = p.sample(y)
    digit = torch.tensor(p.digits)[y]
    r = (digit == 1) | (digit == 7)
    assert angles[r].abs().max() <= 30 and angles[~r].max() > 300


def test_select_drops_removed_digits_and_relabels_in_digit_order():
    p = protocol()
    split = Split(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    out = p.select(split)
    assert out.y.tolist() == list(range(8))
    assert out.x.flatten().tolist() == [0, 1, 2, 3, 4, 5, 7, 8]


def test_views_use_exactly_their_digits_and_ranges():
    p = protocol()
    y = torch.arange(8).repeat(500)
    split = Split(torch.zeros(len(y), 1, 4, 4), y)
    views = {name: (yy, a) for name, _, yy, a in protocol_views(split, p, torch.Generator().manual_seed(1))}
    assert list(views) == ["ptest", "p34in", "pout", "pinv"]
    assert torch.equal(views["ptest"][0], y)
    for name, (lo, hi) in {"p34in": (-45, 45), "pout": (45, 315), "pinv": (135, 225)}.items():
        labels, angles = views[name]
        assert set(labels.tolist()) == {3, 4} and len(labels) == 1000
        assert angles.min() >= lo and angles.max() <= hi and angles.max() - angles.min() > 0.95 * (hi - lo)


def test_wrapped_spans():
    assert wrapped_spans(-45, 45) == [(-45, 45)]
    assert wrapped_spans(45, 315) == [(45, 180), (-180, -45)]
    assert wrapped_spans(135, 225) == [(135, 180), (-180, -135)]
    assert wrapped_spans(0, 360) == [(-180, 180)]


BAD = [
    (dict(restricted_range=[45, -45]), "rotation.restricted_range=[45,-45] is an inverted range"),
    (dict(others_range=[10, 10]), "rotation.others_range=[10,10] is an empty range"),
    (dict(eval={"pout": [315, 45]}), "rotation.eval.pout=[315,45] is an inverted range"),
    (dict(restricted_range=[]), "rotation.restricted_range must be a pair of angles"),
    (dict(restricted_range=[-45]), "rotation.restricted_range must be a pair of angles"),
    (dict(restricted_range=["a", "b"]), "rotation.restricted_range must be a pair of angles"),
    (dict(restricted_range=[1, 2, 3]), "rotation.restricted_range must be a pair of angles"),
    (dict(restricted_range="wide"), "rotation.restricted_range must be a pair of angles"),
    (dict(restricted=[3, 6]), "rotation.restricted names digit(s) [6], which rotation.remove=[6, 9] takes out"),
    (dict(restricted=[12]), "not classes of this dataset"),
    (dict(others_range=[0, 720]), "more than a full circle"),
    (dict(restricted=[]), "rotation.restricted is empty"),
]


@pytest.mark.parametrize("changes,message", BAD)
def test_bad_protocol_is_a_clear_config_error(changes, message):
    cfg = OmegaConf.merge(RESTRICTED34, {k: v for k, v in changes.items() if k != "eval"})
    if "eval" in changes:
        cfg.eval.pout = changes["eval"]["pout"]
    if isinstance(changes.get("restricted_range"), list) and len(changes["restricted_range"]) != 2:
        cfg.restricted_range = changes["restricted_range"]
    with pytest.raises(ConfigError) as info:
        RotationProtocol.from_config(cfg, 10)
    text = str(info.value)
    assert message in text and "\n" not in text and "Nothing was run" in text


def test_missing_protocol_names_the_group():
    with pytest.raises(ConfigError, match="rotation=restricted34"):
        RotationProtocol.from_config(None)
