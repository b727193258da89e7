"""hyperbench.hyper: hypernetize any model's layers; the published HyperA_B rows as instances; inits against
their formulas; MIP; task/param/input conditioning; the hypernet/embedding config groups; bad input."""
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperbench.errors import ConfigError
from hyperbench.hyper import (HyperConv2d, HyperLinear, KernelGenerator, generate, hypernetize, layer_names,
                              layer_table, parameter_counts)
from hyperbench.models import create_model, model_from_config
from hyperbench.tasks.summary import describe

from .conftest import TINY, in_process
from .test_models_registry import TABLE2


def cnn(**kw):
    return create_model("cnn", num_classes=10, channels=(16, 32), hidden=64, **kw)


def build(cfg_of, *overrides, shape=(1, 28, 28), classes=10):
    cfg = cfg_of(*overrides)
    return model_from_config(cfg.model, classes, shape, cfg.get("hypernet"))


# -- the API on a model no source hypernetized ------------------------------------------------------------

def test_hypernetize_conv_and_linear_from_one_generator_in_flat_chunks():
    torch.manual_seed(0)
    m = hypernetize(cnn(), targets=["conv2.conv", "fc1"], z_dim=3, d=4, chunk=512)
    assert isinstance(m.conv2.conv, HyperConv2d) and isinstance(m.fc1, HyperLinear)
    assert m.conv2.conv.weight.shape == (32, 16, 4, 4) and m.fc1.weight.shape == (64, 32 * 7 * 7)
    assert m.conv2.conv.num_tiles == 32 * 16 * 16 // 512 and m.fc1.num_tiles == 64 * 1568 // 512
    # one generator, registered once: z (3) -> d (4) -> chunk (512)
    assert [n for n, _ in m.named_parameters() if n.startswith("hypernet.")] == [
        "hypernet.w_in", "hypernet.b_in", "hypernet.w_out", "hypernet.b_out"]
    c = parameter_counts(m)
    assert c["generator"] == 4 * 3 + 4 + 4 * 512 + 512
    assert c["embeddings"] == 3 * (16 + 196)
    # untargeted layers and the generated layers' biases stay ordinary parameters
    ordinary = (16 * 16 + 16) + 32 + 64 + (64 * 10 + 10)
    assert c["ordinary"] == ordinary and c["total"] == c["generator"] + c["embeddings"] + ordinary
    assert c["original"] == sum(p.numel() for p in cnn().parameters())
    loss = F.cross_entropy(m(torch.randn(4, 1, 28, 28)), torch.randint(0, 10, (4,)))
    loss.backward()
    for p in (m.conv2.conv.z, m.fc1.z, m.hypernet.w_in, m.hypernet.w_out, m.conv1.conv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_state_dict_round_trip_and_channels_last():
    torch.manual_seed(0)
    a = hypernetize(cnn(), targets=["conv2.conv"], z_dim=4, d=4, tile=16)
    b = hypernetize(cnn(), targets=["conv2.conv"], z_dim=4, d=4, tile=16)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(a(x), b(x))
    b.to(memory_format=torch.channels_last)
    torch.testing.assert_close(a(x), b(x.contiguous(memory_format=torch.channels_last)), rtol=1e-4, atol=1e-5)


# -- the published rows are instances of the API ------------------------------------------------------------

@pytest.mark.parametrize("name,count", [(k, v) for k, v in TABLE2.items() if k != "conv"])
def test_embedding_group_on_conv_reproduces_table2(cfg_of, name, count):
    a, b = name[len("hyper"):].split("_")
    m = build(cfg_of, "model=conv", "hypernet=static", f"embedding=z{a}_d{b}")
    assert m.conv_params() == count


def test_conv_static_z5_d5_is_hyper5_5_parameter_for_parameter(cfg_of):
    torch.manual_seed(7)
    old = build(cfg_of, "model=hyper5_5")
    torch.manual_seed(7)
    new = build(cfg_of, "model=conv", "hypernet=static", "embedding=z5_d5")
    assert list(old.state_dict()) == list(new.state_dict())
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k


def test_vgg_targets_by_config(cfg_of):
    m = build(cfg_of, "model=vgg_block2", "data=cifar10", "hypernet=static",
              "hypernet.targets=[block1.conv2,block2.conv1]", "hypernet.z_dim=8", "hypernet.d=8",
              shape=(3, 32, 32))
    assert [r["layer"] for r in layer_table(m)] == ["block1.conv2", "block2.conv1"]
    assert isinstance(m.block2.conv2, nn.Conv2d)
    # generator 2448 + embeddings (1 + 2) x 8 + the ordinary block2.conv2 (weight and bias)
    assert m.conv_params() == 2448 + 24 + 32 * 32 * 9 + 32
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# -- initialisations: the generated weights' variance against each formula ---------------------------------

def _generated_variance(init, fan_layer_in=64, out=64, k=3, z=8, d=8, seeds=6, **kw):
    """Mean over seeds of Var(W) of a (out x fan_layer_in x k x k) conv generated from 16x16 tiles."""
    vs, g = [], None
    for s in range(seeds):
        torch.manual_seed(s)
        m = nn.Sequential(nn.Conv2d(1, 16, k), nn.Conv2d(16, 16, k), nn.Conv2d(fan_layer_in, out, k))
        hypernetize(m, targets=["1", "2"], z_dim=z, d=d, tile=16, init=init, **kw)
        vs.append([m[1].weight.detach().var().item(), m[2].weight.detach().var().item()])
        g = m.hypernet
    return torch.tensor(vs).mean(0).tolist(), g


def test_init_variance_is_the_default_conv_variance_of_a_tile():
    (v1, v2), g = _generated_variance("variance")
    expected = 1 / (3 * 16 * 9)
    assert g.expected_variance() == pytest.approx(expected)
    assert v1 == pytest.approx(expected, rel=0.3) and v2 == pytest.approx(expected, rel=0.3)


def test_init_ha_is_tiny_and_matches_its_formula():
    (v1, v2), g = _generated_variance("ha", seeds=10)
    trunc = 1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(math.sqrt(2))  # truncated at 2 std
    w = 1e-4 * trunc
    expected = 8 * w * 8 * w * (trunc + 1e-4)  # d Var(W_out) N_z Var(W_in) E[z^2]
    assert g.expected_variance() == pytest.approx(expected)
    assert v1 == pytest.approx(expected, rel=0.35) and v2 == pytest.approx(expected, rel=0.35)
    assert math.sqrt(v2) < 1e-3  # generated kernels start tiny


@pytest.mark.parametrize("init,fans", [("hyperfan_in", (16 * 9, 64 * 9)), ("hyperfan_out", (16 * 9, 64 * 9))])
def test_hyperfan_gives_each_layer_one_over_its_fan(init, fans):
    (v1, v2), g = _generated_variance(init, fan_layer_in=64, out=64)
    assert v1 == pytest.approx(1 / fans[0], rel=0.3) and v2 == pytest.approx(1 / fans[1], rel=0.3)
    assert g.expected_variance(fans[1]) == pytest.approx(1 / fans[1])


# -- MIP -----------------------------------------------------------------------------------------------------

def test_mip_adds_generated_delta_to_the_layers_own_weights_and_is_magnitude_invariant():
    torch.manual_seed(0)
    base = cnn()
    theta0 = base.conv2.conv.weight.detach().clone()
    m = hypernetize(base, targets=["conv2.conv"], z_dim=4, d=4, tile=16, param="mip")
    layer = m.conv2.conv
    torch.testing.assert_close(layer.theta0.detach(), theta0)
    g = m.hypernet
    delta = layer.weight - layer.theta0
    zin = g.inputs(layer.z)
    torch.testing.assert_close(zin.norm(dim=1), torch.full((zin.shape[0],), 2.0))  # norm sqrt(N_z)
    with torch.no_grad():
        layer.z.mul_(37.0)  # the generator input's magnitude does not change the weights
    torch.testing.assert_close(layer.weight - layer.theta0, delta)
    assert parameter_counts(m)["theta0"] == theta0.numel()


# -- conditioning --------------------------------------------------------------------------------------------

def test_task_conditioning_generates_per_task_weights():
    torch.manual_seed(0)
    m = hypernetize(cnn(), targets=["conv2.conv", "fc1"], z_dim=4, d=4, chunk=1024, conditioning="task",
                    cond_dim=3, num_tasks=2)
    w0, w1 = generate(m, 0), generate(m, 1)
    assert set(w0) == {"conv2.conv", "fc1"} and w0["fc1"].shape == (64, 1568)
    assert not torch.allclose(w0["conv2.conv"], w1["conv2.conv"])
    x = torch.randn(2, 1, 28, 28)
    m.hypernet.set_condition(1)
    torch.testing.assert_close(m.fc1.weight, w1["fc1"])
    y1 = m(x)
    m.hypernet.set_condition(0)
    assert not torch.allclose(m(x), y1)
    assert parameter_counts(m)["generator"] == 4 * 7 + 4 + 4 * 1024 + 1024 + 2 * 3  # + the task table


def test_param_conditioning_with_mip_encodes_cos_sin():
    g = KernelGenerator(2, 3, in_size=4, out_size=4, ksize=1, conditioning="param", cond_dim=2, param="mip")
    assert g.n_in == 2 + 4
    torch.testing.assert_close(g.condition_vector([0.0, 1.0]), torch.tensor([1.0, math.cos(math.pi / 2), 0.0, 1.0]))


def test_input_conditioning_is_per_example_and_batched():
    torch.manual_seed(0)
    m = hypernetize(cnn(), targets=["conv2.conv", "fc1"], z_dim=4, d=4, chunk=1024, conditioning="input",
                    cond_dim=3)
    m.eval()
    x = torch.randn(5, 1, 28, 28)
    batch = m(x)
    alone = torch.cat([m(x[i:i + 1]) for i in range(5)])  # the reference: one example at a time
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)
    codes = torch.randn(2, 3)
    w = generate(m, codes)
    assert w["conv2.conv"].shape == (2, 32, 16, 4, 4) and w["fc1"].shape == (2, 64, 1568)


# -- summary -------------------------------------------------------------------------------------------------

def test_summary_lists_generated_layers_chunks_and_counts():
    torch.manual_seed(0)
    m = hypernetize(cnn(), targets=["conv2.conv", "fc1"], z_dim=3, d=4, chunk=512)
    text = describe(m, "t")
    assert "conv2.conv       32x16x4x4                   16                    48" in text
    assert "fc1              64x1568                    196                   588" in text
    assert "all                                         212                   636" in text
    c = parameter_counts(m)
    assert (f"parameters: generator {c['generator']:,} + embeddings 636 + ordinary layers {c['ordinary']:,} = "
            f"{c['total']:,}; the original model: {c['original']:,}") in text


# -- bad input -----------------------------------------------------------------------------------------------

def test_target_that_is_not_a_layer_lists_the_layers():
    with pytest.raises(ConfigError, match=r"'conv9' is not a layer.*conv1\.conv, conv2\.conv, fc1, fc2"):
        hypernetize(cnn(), targets=["conv9"])
    assert layer_names(cnn()) == ["conv1.conv", "conv2.conv", "fc1", "fc2"]


def test_layer_type_not_generatable():
    with pytest.raises(ConfigError, match=r"'conv2' is a ConvBlock; the generator makes the weight of a Conv2d"):
        hypernetize(cnn(), targets=["conv2"])
    with pytest.raises(ConfigError, match=r"'conv2.bn' is a BatchNorm2d"):
        hypernetize(cnn(batch_norm=True), targets=["conv2.bn"])


def test_chunk_that_cannot_tile_names_layer_and_shapes():
    with pytest.raises(ConfigError, match=r"Layer 'fc1' \(Linear, weight 64x1568 = 100,352 numbers\) cannot be cut "
                                          r"into flat chunks of 1,000"):
        hypernetize(cnn(), targets=["fc1"], chunk=1000)
    with pytest.raises(ConfigError, match=r"Layer 'conv2.conv' \(16->32 channels\) cannot be tiled.*12->12"):
        hypernetize(cnn(), targets=["conv2.conv"], tile=12)
    with pytest.raises(ConfigError, match=r"Layer 'fc1' \(Linear, weight 64x1568\) has a 1x1 kernel.*4x4"):
        hypernetize(cnn(), targets=["conv2.conv", "fc1"], tile=16)


@pytest.mark.parametrize("kw,msg", [({"init": "xavier"}, "hypernet.init must be one of ha, variance, hyperfan_in"),
                                    ({"param": "residual"}, "hypernet.param must be one of plain, mip"),
                                    ({"conditioning": "tasks"}, "hypernet.conditioning must be one of"),
                                    ({"z_dim": 0}, "hypernet.z_dim must be a positive integer")])
def test_unknown_init_param_and_bad_sizes(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        hypernetize(cnn(), targets=["fc1"], **kw)


def test_a_hypernetized_model_is_not_hypernetized_again(cfg_of):
    with pytest.raises(ConfigError, match=r"model hyper5_5 is hypernetized already.*model=conv hypernet=static"):
        build(cfg_of, "model=hyper5_5", "hypernet=static")


def test_embedding_without_a_hypernet_is_refused(cfg_of):
    with pytest.raises(ConfigError, match=r"hypernet.d, hypernet.z_dim set.*add hypernet=static"):
        build(cfg_of, "model=conv", "embedding=z5_d5")


def test_cli_bad_hypernet_input_exits_2(fake_mnist, run_cli):
    r = run_cli("model=conv", "hypernet=static", "hypernet.targets=[conv3]", *TINY, data_root=fake_mnist)
    assert r.returncode == 2 and "'conv3' is not a layer of model conv" in r.stderr and "conv1, conv2, fc" in r.stderr
    r = run_cli("model=conv", "hypernet=static", "hypernet.init=glorot", *TINY, data_root=fake_mnist)
    assert r.returncode == 2 and "hypernet.init must be one of" in r.stderr


@pytest.mark.slow
def test_cli_run_of_a_hypernetized_model(fake_mnist, tmp_path):
    r = in_process("model=conv", "hypernet=static", "embedding=z4_d4", *TINY, f"hydra.run.dir={tmp_path}",
                   data_root=fake_mnist)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "ok" and m["conv_params"] == TABLE2["hyper4_4"]
    assert m["hypernet"].startswith("hypernet=static z_dim=4 d=4")


def test_generated_layers_trace_as_one_graph_for_torch_compile():
    torch.manual_seed(0)
    m = hypernetize(cnn(), targets=["conv2.conv", "fc1"], z_dim=3, d=4, chunk=512, conditioning="input", cond_dim=2)
    x = torch.randn(3, 1, 28, 28)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)  # no graph break, no C++ compiler needed
    torch.testing.assert_close(compiled(x), m(x), rtol=1e-4, atol=1e-5)
