"""task=transform pieces in process: the transformation families, the four models (shapes, parameter counts,
the shallow HyperNet's convex combinations, the adversarial autoencoder's two updates) and the image loaders."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from hyperbench.errors import DataError
from hyperbench.data.images import load_images, load_npy, load_png_folder, render_symbols
from hyperbench.models import create_model
from hyperbench.data.geometry import rotate
from hyperbench.protocols.families import transform_from_config

from .conftest import CONF

RESTRICTED49 = OmegaConf.load(CONF / "rotation" / "restricted49.yaml")


def family(name: str):
    return transform_from_config(OmegaConf.load(CONF / "transform" / f"{name}.yaml"), RESTRICTED49, background=-1.0)


def digits_like(n: int = 4, size: int = 28) -> torch.Tensor:
    """Images in [-1, 1] with background -1 and a few bright strokes."""
    x = torch.full((n, 1, size, size), -1.0)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        r, c = torch.randint(4, size - 10, (2,), generator=g).tolist()
        x[i, 0, r:r + 8, c:c + 2] = 1.0
        x[i, 0, r + 3, c:c + 6] = 1.0
    return x


# ------------------------------------------------------------------------------------------------- families

def test_restricted_digits_keep_their_range_in_sampled_training_pairs():
    rot = family("rotate")
    assert rot.restricted == (4, 9) and rot.n_params == 2
    y = torch.arange(10).repeat(4000)
    x = torch.rand(len(y), 1, 8, 8) * 2 - 1
    inp, (target, cond) = rot.pairs(x, y, torch.Generator().manual_seed(0))
    assert inp is x and cond.shape == (len(y), 2)
    torch.testing.assert_close(cond.norm(dim=1), torch.ones(len(y)))  # (cos a, sin a)
    angle = torch.rad2deg(torch.atan2(cond[:, 1], cond[:, 0]))
    r = (y == 4) | (y == 9)
    assert angle[r].abs().max() <= 45 + 1e-3 and angle[r].abs().max() > 44
    assert angle[~r].min() < -175 and angle[~r].max() > 175  # the others use the whole circle
    # the target is the input rotated by exactly that angle, background kept at -1
    torch.testing.assert_close(target[:50], rotate(x[:50] + 1, angle[:50]) - 1, atol=1e-4, rtol=0)

    shift = family("shift")
    raw = shift.sample(y, torch.Generator().manual_seed(1))
    assert raw[r].abs().max() <= 2 and raw[~r].abs().max() > 5.9
    assert shift.inside_restricted(raw[r]).all() and not shift.inside_restricted(raw[~r]).all()


def test_shift_moves_pixels_and_affine_reduces_to_rotation():
    x = digits_like(3)
    shift = family("shift")
    moved = shift.apply(x, torch.tensor([[3.0, -2.0]] * 3))
    expected = torch.full_like(x, -1.0)
    expected[:, :, :-2, 3:] = x[:, :, 2:, :-3]  # right by 3, up by 2; the uncovered border is background
    torch.testing.assert_close(moved, expected, atol=1e-5, rtol=0)

    affine = family("affine")
    assert affine.n_params == 6
    angles = torch.tensor([30.0, -90.0, 135.0])
    raw = torch.stack([angles, torch.zeros(3), torch.zeros(3), torch.ones(3), torch.ones(3), torch.zeros(3),
                       torch.zeros(3)], 1)
    torch.testing.assert_close(affine.apply(x, raw), rotate(x + 1, angles) - 1, atol=1e-4, rtol=0)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    torch.testing.assert_close(affine.encode(raw[:1]), torch.tensor([[c, -s, 0.0, s, c, 0.0]]), atol=1e-6, rtol=0)
    # the restricted digits' angle stays in [-45, 45]; shear, scale and shift in the published ranges
    y = torch.arange(10).repeat(500)
    raw = affine.sample(y, torch.Generator().manual_seed(0))
    r = (y == 4) | (y == 9)
    assert raw[r, 0].abs().max() <= 45 and raw[~r, 0].abs().max() > 170
    assert raw[:, 1:3].min() >= 0.1 and raw[:, 1:3].max() <= 0.5 and raw[:, 3:5].min() >= 0.9
    assert raw[:, 5:].abs().max() <= 5


def test_curve_points_cover_the_circle_in_1_8_degree_steps():
    values = family("rotate").curve_values(1.8)
    assert len(values) == 200 and values[0] == -180 and abs(values[-1].item() - 178.2) < 1e-4
    inside = family("rotate").inside_restricted(values[:, None])
    assert inside.sum() == 51  # -45, -43.2, ..., 45
    assert family("shift").curve_values(None).tolist()[:2] == [-6.0, -5.75]


# --------------------------------------------------------------------------------------------------- models

PARAMS = {"transform_ae": 13_140_363, "transform_aae": 13_209_228, "hypernet_shallow": 39_952_832,
          "hypernet_deep": 3_003_913}


@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_models_map_image_and_parameters_to_an_image(arch):
    torch.manual_seed(0)
    model = create_model(arch, n_params=2).eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]
    x = digits_like(3)
    cond = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    with torch.no_grad():
        out = model(x, cond)
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
        # one condition row applies to the whole batch
        torch.testing.assert_close(model(x, cond[1:2]), model(x, cond[1:2].expand(3, -1)), atol=1e-5, rtol=1e-5)
    # six affine coefficients in: the same model with another parameter vector
    assert create_model(arch, n_params=6)(x, torch.zeros(3, 6)).shape == x.shape


def test_shallow_hypernet_outputs_convex_combinations_of_input_pixels():
    torch.manual_seed(0)
    model = create_model("hypernet_shallow", n_params=2)
    with torch.no_grad():
        model.mix.head.bias.normal_(0, 3)  # far from uniform
        w = model.mix.weights(torch.randn(5, 2))
    assert w.shape == (5, 784, 784) and (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(5, 784))  # each output pixel: weights over inputs sum to 1
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        out = model(x, torch.randn(5, 2)).flatten(1)
    flat = x.flatten(1)
    assert (out <= flat.max(1, keepdim=True).values + 1e-5).all() and (out >= flat.min(1, keepdim=True).values - 1e-5).all()


def _plain_mixing(mix, x, cond):
    """The straightforward shallow HyperNet: logits [N, n_in, n_out], softmax over the inputs, einsum."""
    h = mix.control(cond)
    w = torch.softmax((h @ mix.head.weight.t() + mix.head.bias).view(-1, mix.n, mix.n), dim=1)
    return torch.einsum("ni,nij->nj", x, w)


def test_fused_shallow_hypernet_matches_the_plain_softmax_layer_and_its_gradients():
    torch.manual_seed(0)
    model = create_model("hypernet_shallow", n_params=2, image_size=12)
    with torch.no_grad():
        model.mix.head.weight.normal_(0, 0.5)  # far from uniform
        model.mix.head.bias.normal_(0, 1)
    mix, params = model.mix, list(model.parameters())
    for step in range(2):  # the second step reuses the first one's buffer
        x = torch.rand(6, 144, requires_grad=True)
        cond, g = torch.randn(6, 2), torch.randn(6, 144)
        assert mix.use_fused(x, mix.control(cond))
        fused = mix(x, cond)
        got = torch.autograd.grad(fused, [x, *params], g)
        plain = _plain_mixing(mix, x, cond)
        want = torch.autograd.grad(plain, [x, *params], g)
        torch.testing.assert_close(fused, plain, atol=1e-6, rtol=1e-5)
        for a, b in zip(got, want):  # sums over n*n*N terms in another order: float32 rounding
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # two graphs alive at once: the second forward does not take the first one's buffer
    x1, x2, cond = torch.rand(4, 144), torch.rand(4, 144), torch.randn(4, 2)
    y1, y2 = mix(x1, cond), mix(x2, cond)
    g1 = torch.autograd.grad(y1.sum(), mix.head.weight)[0]
    torch.testing.assert_close(g1, torch.autograd.grad(_plain_mixing(mix, x1, cond).sum(), mix.head.weight)[0],
                               atol=1e-6, rtol=1e-5)
    torch.autograd.grad(y2.sum(), mix.head.weight)
    with torch.inference_mode():  # evaluation between training steps: its buffer is not reused by training
        mix(x1, cond)
    torch.testing.assert_close(torch.autograd.grad(mix(x1, cond).sum(), mix.head.weight)[0], g1, atol=1e-6, rtol=1e-5)
    y = mix(x1, cond).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_identity_shallow_hypernet_returns_the_input_at_angle_zero():
    # constructed: the control network's output layer puts all weight on the diagonal
    model = create_model("hypernet_shallow", n_params=2)
    with torch.no_grad():
        model.mix.head.weight.zero_()
        model.mix.head.bias.copy_(40 * torch.eye(784).flatten())
    x = digits_like(4)
    zero = torch.tensor([[1.0, 0.0]])  # (cos 0, sin 0)
    torch.testing.assert_close(model(x, zero), x, atol=1e-5, rtol=0)
    # trained: a small one learns the identity at angle 0 from random images
    torch.manual_seed(0)
    small = create_model("hypernet_shallow", n_params=2, image_size=8, control_hidden=8)
    opt = torch.optim.Adam(small.parameters(), lr=0.05)
    for _ in range(30):
        xb = torch.rand(64, 1, 8, 8) * 2 - 1
        loss = F.mse_loss(small(xb, zero.expand(64, -1)), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        err = (small(x, zero) - x).abs().max().item()
    assert err < 0.05, err


def test_adversarial_autoencoder_updates_critic_and_autoencoder_separately():
    torch.manual_seed(0)
    model = create_model("transform_aae", n_params=2, channels=[8, 16], hidden=32, critic_hidden=16, adv_weight=1.0)
    x, cond = digits_like(8), torch.randn(8, 2)
    critic_before = [p.detach().clone() for p in model.critic.parameters()]
    loss = model.training_loss(x, cond, x)
    # the critic took its own step ...
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, model.critic.parameters()))
    assert all(p.grad is None for p in model.critic.parameters())
    # ... and the returned loss trains the autoencoder (encoder included, through the adversarial term) only
    loss.backward()
    assert all(p.grad is None for p in model.critic.parameters())
    assert model.encoder.fc[-1].weight.grad.abs().sum() > 0
    assert set(model.last) == {"critic_loss", "rec", "adv"}
    # the critic learns to tell codes from the uniform prior: after a few steps it scores the prior higher
    for _ in range(30):
        model.critic_step(model.encode(x).detach() * 0 + 3.0)  # codes far outside [-1, 1]
    with torch.no_grad():
        assert model.critic(model.prior(64, x)).mean() > model.critic(torch.full((64, 10), 3.0)).mean()


# --------------------------------------------------------------------------------------------------- images

def test_user_images_from_png_folders_and_npy_arrays(tmp_path):
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    arr = (np.random.default_rng(0).random((3, 28, 28)) * 255).astype(np.uint8)
    for i, a in enumerate(arr):
        Image.fromarray(a).save(folder / f"img{i}.png")
    Image.fromarray(arr[0]).convert("RGB").save(folder / "rgb.png")  # colour images are made grey
    images, names = load_png_folder(folder)
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8 and names == ["img0", "img1", "img2", "rgb"]
    np.testing.assert_array_equal(images[:3], arr)

    np.save(tmp_path / "u8.npy", arr)
    np.save(tmp_path / "f.npy", arr[:, None].astype(np.float32) / 255)  # N x 1 x 28 x 28 floats in [0, 1]
    np.testing.assert_array_equal(load_npy(tmp_path / "u8.npy"), arr)
    np.testing.assert_array_equal(load_images(str(tmp_path / "f.npy"), "")[0], arr)


@pytest.mark.parametrize("bad,message", [
    ("png32", "is 32 x 32 pixels; the trained models take 28 x 28"),
    ("npy32", "holds images of 32 x 32 pixels; the trained models take 28 x 28"),
    ("npyrange", "holds floats outside [0, 1]"),
    ("empty", "has no .png files"),
    ("missing", "is neither a folder of PNGs, an .npy file"),
])
def test_user_images_of_the_wrong_size_or_kind_are_refused(tmp_path, bad, message):
    from PIL import Image

    path = tmp_path / bad
    if bad == "png32":
        path.mkdir()
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(path / "a.png")
    elif bad == "npy32":
        path = tmp_path / "a.npy"
        np.save(path, np.zeros((2, 32, 32), np.uint8))
    elif bad == "npyrange":
        path = tmp_path / "a.npy"
        np.save(path, np.full((2, 28, 28), 2.0))
    elif bad == "empty":
        path.mkdir()
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_images(str(path), "")


def test_rendered_symbols_are_mnist_like():
    images, names = render_symbols("A&?7")
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8 and len(set(names)) == 4
    for img in images:
        rows, cols = np.nonzero(img > 64)
        assert img.max() > 200 and rows.min() >= 3 and rows.max() <= 24 and cols.min() >= 3 and cols.max() <= 24
        assert 10 <= rows.mean() <= 18 and 10 <= cols.mean() <= 18  # centred
        assert img[0].max() == 0 and img[:, 0].max() == 0  # dark background


def test_a_folder_without_a_finished_run_is_refused(tmp_path):
    from hyperbench.errors import ConfigError
    from hyperbench.tasks.transform import load_trained

    with pytest.raises(ConfigError, match="is not a finished task=transform run: it needs .hydra/config.yaml"):
        load_trained(tmp_path)


def test_emnist_letters_missing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="EMNIST is not under the data root"):
        load_images("emnist_letters", str(tmp_path))


@pytest.mark.parametrize("arch", ["transform_ae", "transform_aae"])
def test_glorot_init_is_the_tensorflow_default_and_keeps_the_parameter_count(arch):
    """model.init=glorot: every weight Glorot-uniform (|w| <= sqrt(6 / (fan_in + fan_out))), every bias zero;
    the default (torch) keeps PyTorch's non-zero biases. Same parameter count either way."""
    torch.manual_seed(0)
    plain, glorot = create_model(arch), create_model(arch, init="glorot")
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in glorot.parameters())
    layers = [m for m in glorot.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(layers) == (11 if arch == "transform_aae" else 8)
    for m in layers:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound
        assert m.weight.abs().max() > 0.9 * bound  # drawn over the whole interval, not a narrower one
        assert torch.count_nonzero(m.bias) == 0
    last = plain.decoder.deconvs[2]
    assert torch.count_nonzero(last.bias) == 1
    # PyTorch's default for the 64 -> 1 transposed convolution is about 3x wider than Glorot's
    assert plain.decoder.deconvs[2].weight.std() > 3 * glorot.decoder.deconvs[2].weight.std()


def test_an_unknown_init_is_refused():
    from hyperbench.errors import ConfigError
    with pytest.raises(ConfigError, match="model.init='xavier' is not one of torch, glorot"):
        create_model("transform_ae", init="xavier")


@pytest.mark.parametrize("mixing, extra", [("softmax", 0), ("linear", 0), ("scaled", 200 * 200)])
def test_deep_hypernet_mixing_variants(mixing, extra):
    """model.mixing: softmax = convex combinations (the published model, 3,003,913 parameters); linear = the
    generated matrix itself; scaled = a learned 200x200 V times the softmax (40,000 more parameters)."""
    torch.manual_seed(0)
    model = create_model("hypernet_deep", mixing=mixing)
    assert sum(p.numel() for p in model.parameters()) == 3_003_913 + extra
    h, cond = torch.randn(3, 200), torch.randn(3, 2)
    logits = model.mix.head(model.mix.control(cond)).view(3, 200, 200)
    expected = {"softmax": torch.softmax(logits, 1), "linear": logits,
                "scaled": torch.softmax(logits, 1)}[mixing]
    with torch.no_grad():
        if mixing == "scaled":
            model.mix.scale.mul_(2.0)
            expected = 2.0 * expected
        out = model.mix(h, cond)
    torch.testing.assert_close(out, torch.einsum("ni,nij->nj", h, expected), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="model.mixing='relu' is not one of softmax, linear, scaled"):
        create_model("hypernet_deep", mixing="relu")
