"""CIFAR-10 VGG-Block models of Vineet's CS618 report: every published conv-parameter count exactly (and the three
misprinted ones as the formula computes them), tiling, shapes, and a clear error for bad tiles."""
import pytest
import torch
import torch.nn as nn

from hyperbench.errors import ConfigError
from hyperbench.models import create_model, model_from_config
from hyperbench.hyper import layer_table
from hyperbench.hyper import HyperConv2d
from hyperbench.report.published import CIFAR_MISPRINTS, CIFAR_TABLES
from hyperbench.tasks.summary import describe

# Every count of Tables 3-5 (Vineet, CS618) that follows the formula ...
COUNTS = {
    "vgg_block1": 2320, "vgg_block1_hyper4_4": 1044, "vgg_block1_hyper4_5": 1268,
    "vgg_block1_hyper4_6": 1492, "vgg_block1_hyper6_6": 1686,
    "vgg_block2": 16208, "vgg_block2_hyper6_6": 1722, "vgg_block2_hyper8_8": 2504, "vgg_block2_hyper16_16": 6912,
    "vgg_block3": 71632, "vgg_block3_hyper8_8": 2696, "vgg_block3_hyper32_32": 22640,
}
# ... and the three printed counts that do not: (printed, computed).
MISPRINTED = {"vgg_block2_hyper4_4": (1056, 1068), "vgg_block3_hyper8_16": (7196, 5000),
              "vgg_block3_hyper16_16": (7196, 7296)}


def build(cfg_of, name):
    cfg = cfg_of(f"model={name}", "data=cifar10")
    return model_from_config(cfg.model, 10, (3, 32, 32))


@pytest.mark.parametrize("name,count", sorted(COUNTS.items()))
def test_published_conv_parameter_counts(cfg_of, name, count):
    assert build(cfg_of, name).conv_params() == count
    assert CIFAR_TABLES[int(name[9])][name][1] == count


@pytest.mark.parametrize("name,printed_computed", sorted(MISPRINTED.items()))
def test_misprinted_counts_are_computed_not_copied(cfg_of, name, printed_computed):
    printed, computed = printed_computed
    assert build(cfg_of, name).conv_params() == computed
    assert CIFAR_TABLES[int(name[9])][name][1] == printed and name in CIFAR_MISPRINTS


def test_every_table_row_has_a_config(cfg_of):
    rows = [m for block in CIFAR_TABLES.values() for m in block]
    assert len(rows) == 15 and set(rows) == set(COUNTS) | set(MISPRINTED)


def test_tiles_per_layer_and_one_shared_generator():
    m = create_model("vgg_hyper", blocks=3, z_dim=8, d=8)
    layers = {r["layer"]: r["tiles"] for r in layer_table(m)}
    assert layers == {"block1.conv2": 1, "block2.conv1": 2, "block2.conv2": 4, "block3.conv1": 8, "block3.conv2": 16}
    assert isinstance(m.block1.conv1, nn.Conv2d) and not isinstance(m.block1.conv1, HyperConv2d)
    gens = {id(c.generator[0]) for _, c in m.named_convs()[1:]}
    assert gens == {id(m.hypernet)}
    # the generator's parameters belong to the model once, not once per layer
    names = [n for n, _ in m.named_parameters() if n.endswith(("w_in", "b_in", "w_out", "b_out"))]
    assert names == ["hypernet.w_in", "hypernet.b_in", "hypernet.w_out", "hypernet.b_out"]
    assert sum(p.numel() for p in m.hypernet.parameters()) == 2448


def test_tiled_kernel_is_assembled_from_the_generated_tiles():
    m = create_model("vgg_hyper", blocks=3, z_dim=4, d=4)
    layer = m.block3.conv1  # 32 -> 64 channels: 4 out tiles x 2 in tiles
    tiles = m.hypernet(layer.z)  # [8, 16, 16, 3, 3], ordered (out tile, in tile)
    k = layer.weight
    assert k.shape == (64, 32, 3, 3)
    for t in range(8):
        o, i = divmod(t, 2)
        assert torch.equal(k[16 * o:16 * (o + 1), 16 * i:16 * (i + 1)], tiles[t])


@pytest.mark.parametrize("name", ["vgg_block1", "vgg_block2_hyper4_4", "vgg_block3", "vgg_block3_hyper8_16"])
def test_forward_shapes_and_gradient_reaches_embeddings(cfg_of, name):
    m = build(cfg_of, name)
    out = m(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 10)
    out.sum().backward()
    for _, c in m.named_convs():
        grad = c.z.grad if isinstance(c, HyperConv2d) else c.weight.grad
        assert grad is not None and grad.abs().sum() > 0


def test_generated_kernels_start_at_conv_init_scale():
    """The generator is initialised so a 16x16x3x3 tile has PyTorch's default conv std."""
    torch.manual_seed(0)
    m = create_model("vgg_hyper", blocks=3, z_dim=16, d=16)
    std = torch.cat([c.weight.flatten() for _, c in m.named_convs()[1:]]).std().item()
    assert std == pytest.approx((3 * 16 * 9) ** -0.5, rel=0.25)


def test_a_tile_that_cannot_tile_a_layer_names_the_layer():
    with pytest.raises(ConfigError, match=r"Layer 'block1.conv2' \(16->16 channels\) cannot be tiled.*12->12"):
        create_model("vgg_hyper", blocks=2, z_dim=4, d=4, tile=12)
    # a tile that divides every layer is fine: 8x8 tiles, 4x as many as 16x16 ones
    m = create_model("vgg_hyper", blocks=2, z_dim=4, d=4, tile=8)
    assert sum(r["tiles"] for r in layer_table(m)) == 4 * 7


@pytest.mark.parametrize("kw,msg", [({"blocks": 4}, "model.blocks must be 1, 2 or 3"),
                                    ({"dense_dropout": 1.0}, r"model.dense_dropout must be a probability")])
def test_impossible_vgg_options(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        create_model("vgg_conv", **kw)


def test_summary_lists_generated_layers_tiles_and_counts(cfg_of):
    text = describe(build(cfg_of, "vgg_block2_hyper16_16"), "t")
    assert "block2.conv1     32x16x3x3                   2                    32" in text
    assert "all                                          7                   112" in text
    assert "hypernetwork parameters: 6,800; embeddings: 112" in text
    assert "conv parameters (as counted in Vineet, CS618 report): 6,912" in text
