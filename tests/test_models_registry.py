"""Models of Vineet's CS618 report: exact parameter counts, hypernetwork shapes, tiling, gradients, init scale."""
import math

import pytest
import torch
import torch.nn.functional as F

from hyperbench.errors import ConfigError
from hyperbench.models import MODELS, create_model
from hyperbench.hyper import HyperConv2d, KernelGenerator

# Table 2 of Vineet's CS618 report: "Conv Parameters".
TABLE2 = {"conv": 12560, "hyper4_4": 4244, "hyper4_5": 5108, "hyper4_6": 5972, "hyper5_5": 5189,
          "hyper6_6": 6166, "hyper4_7": 6836, "hyper4_8": 7700, "hyper7_7": 7175}


def build(name: str):
    if name == "conv":
        return create_model("mnist_conv")
    a, b = map(int, name[len("hyper"):].split("_"))
    return create_model("mnist_hyper", z_dim=a, d=b)


@pytest.mark.parametrize("name,count", TABLE2.items())
def test_conv_params_equal_published_table2(name, count):
    assert build(name).conv_params() == count


def test_convmodel_has_21210_parameters():
    m = build("conv")
    assert sum(p.numel() for p in m.parameters()) == 21210


@pytest.mark.parametrize("a,b", [(1, 1), (3, 9), (10, 2), (16, 16)])
def test_conv_params_follow_the_formula(a, b):
    n_in = n_out = 16
    f = 7
    formula = n_in * b * a + n_in * b + f * f * n_out * b + f * f * n_out + a
    m = create_model("mnist_hyper", z_dim=a, d=b)
    assert m.conv_params() == formula
    # the hypernetwork model = conv1 + generator + embedding + conv2 bias + dense
    assert sum(p.numel() for p in m.parameters()) == 800 + formula + 16 + 7850


def test_hypernetwork_generates_conv2_kernel_shape_and_logits():
    m = build("hyper5_5")
    assert m.conv2.weight.shape == (16, 16, 7, 7)
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert not any(n.startswith("conv2.weight") for n, _ in m.named_parameters())


def test_gradient_reaches_embedding_and_generator():
    m = build("hyper4_4")
    loss = F.cross_entropy(m(torch.randn(8, 1, 28, 28)), torch.randint(0, 10, (8,)))
    loss.backward()
    for p in (m.conv2.z, m.hypernet.w_in, m.hypernet.w_out, m.hypernet.b_out):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_generator_equations():
    """K_i = W_out (W_i z + B_i) + B_out, slice i of the kernel being input channel i."""
    g = KernelGenerator(z_dim=3, d=4, in_size=16, out_size=16, ksize=7)
    for p in g.parameters():
        torch.nn.init.normal_(p)
    z = torch.randn(1, 3)
    k = g(z)[0]  # [out, in, f, f]
    for i in (0, 7, 15):
        a_i = g.w_in[i] @ z[0] + g.b_in[i]
        k_i = (a_i @ g.w_out + g.b_out).view(16, 7, 7)  # [out, f, f]
        torch.testing.assert_close(k[:, i], k_i)


def test_large_kernel_is_tiled_from_basic_kernels_with_own_embeddings():
    g = KernelGenerator(z_dim=4, d=4, in_size=16, out_size=16, ksize=3)
    layer = HyperConv2d(g, in_channels=32, out_channels=48, padding=1)
    assert layer.num_tiles == 6 and layer.z.shape == (6, 4)
    w = layer.weight
    assert w.shape == (48, 32, 3, 3)
    tiles = g(layer.z)
    for to in range(3):
        for ti in range(2):
            torch.testing.assert_close(w[16 * to:16 * (to + 1), 16 * ti:16 * (ti + 1)], tiles[to * 2 + ti])
    assert layer(torch.randn(2, 32, 8, 8)).shape == (2, 48, 8, 8)


def test_untileable_layer_names_the_layer():
    g = KernelGenerator(z_dim=4, d=4, in_size=16, out_size=16, ksize=3)
    with pytest.raises(ConfigError, match="block2.conv1"):
        HyperConv2d(g, in_channels=24, out_channels=32, name="block2.conv1")


def test_generated_kernel_starts_at_default_conv_scale():
    target = 1 / math.sqrt(3 * 16 * 49)  # std of PyTorch's default Conv2d init for conv2
    stds = []
    for seed in range(20):
        torch.manual_seed(seed)
        stds.append(build("hyper5_5").conv2.weight.std().item())
    assert 0.7 * target < sum(stds) / len(stds) < 1.3 * target


@pytest.mark.parametrize("z,d", [(0, 5), (5, 0), (-1, 3)])
def test_non_positive_sizes_are_refused(z, d):
    with pytest.raises(ConfigError, match="positive integer"):
        create_model("mnist_hyper", z_dim=z, d=d)


def test_unknown_architecture_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="mnist_conv"):
        create_model("resnet9000")
    assert {"mnist_conv", "mnist_hyper"} <= set(MODELS)


def test_unknown_model_option_is_refused():
    with pytest.raises(ConfigError, match="no option"):
        create_model("mnist_conv", width=3)
