"""hypernetize(model, targets=[...]): the chosen Conv2d/Linear layers' weights come from ONE shared generator
(Ha, Dai & Le, "HyperNetworks", static hypernetwork) fed by learned embeddings, one per tile or chunk.

The targets are swapped for HyperConv2d / HyperLinear modules in place (state_dict keys: `<layer>.z`,
`<layer>.bias`, `hypernet.w_in`, ...); every other layer stays an ordinary parameter. The generator is
registered once, as `model.hypernet`.

Two entry points give the same structure:
  hypernetize(model, ...)          an existing model: generator and embeddings are drawn after the model's layers.
  build_hypernetized(build, ...)   a builder (the config route): generator and embeddings are drawn first,
                                   then the model's own layers, the replaced layers' own initialisation
                                   skipped. This is the random-number order of the hand-written HyperA_B
                                   (Vineet, CS618 report on static hypernetworks), so `model=hyper5_5` and
                                   `model=conv hypernet=static embedding=z5_d5` give the same numbers.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
import torch.nn as nn

from ..errors import ConfigError
from .generator import CONDITIONINGS, INITS, PARAMS, KernelGenerator, check_choice
from .layers import GeneratedWeight, HyperConv2d, HyperLinear

OPTION_KEYS = ("targets", "z_dim", "d", "tile", "chunk", "init", "param", "conditioning", "cond_dim", "num_tasks")


def _positive(key: str, value, allow_none: bool = False, allow_zero: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        what = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"hypernet.{key} must be {what} integer{' or null' if allow_none else ''}, got {value!r}.")
    return value


def check_options(targets=None, z_dim: int = 4, d: int = 4, tile: int = 16, chunk: int | None = None,
                  init: str = "variance", param: str = "plain", conditioning: str = "static",
                  cond_dim: int = 0, num_tasks: int = 0) -> dict:
    """The options, checked (ConfigError naming the key): before any model is built."""
    if isinstance(targets, str):
        targets = None if targets in ("auto", "") else [targets]
    if targets is not None:
        targets = [str(t) for t in targets]
        if not targets:
            raise ConfigError("hypernet.targets is empty: name at least one layer, or null for every conv layer "
                              "but the first.")
    return dict(targets=targets, z_dim=_positive("z_dim", z_dim), d=_positive("d", d), tile=_positive("tile", tile),
                chunk=_positive("chunk", chunk, allow_none=True), init=check_choice("init", init, INITS),
                param=check_choice("param", param, PARAMS),
                conditioning=check_choice("conditioning", conditioning, CONDITIONINGS),
                cond_dim=_positive("cond_dim", cond_dim, allow_zero=True),
                num_tasks=_positive("num_tasks", num_tasks, allow_zero=True))


def layer_names(model: nn.Module) -> list[str]:
    """Names of the layers a generator can make weights for (Conv2d with groups=1, Linear)."""
    return [n for n, m in model.named_modules() if _generatable(m)]


def _generatable(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros"
    return isinstance(m, nn.Linear)


def _fans(m: nn.Module) -> tuple[int, int]:
    if isinstance(m, nn.Conv2d):
        r = m.kernel_size[0] * m.kernel_size[1]
        return m.in_channels * r, m.out_channels * r
    return m.in_features, m.out_features


def resolve_targets(model: nn.Module, targets: list[str] | None, label: str = "the model") -> list[tuple[str, nn.Module]]:
    """[(name, layer)] for the targets; None = every Conv2d but the first (the one that sees the image),
    the layers the published static hypernetworks generate."""
    if getattr(model, "hypernet", None) is not None or any(isinstance(m, GeneratedWeight) for m in model.modules()):
        raise ConfigError(f"{label} is hypernetized already (model=hyperA_B and model=vgg_blockN_hyperA_B are "
                          f"model=conv / model=vgg_blockN with hypernet=static): hypernetize the plain model, e.g. "
                          f"model=conv hypernet=static embedding=z5_d5.")
    names = layer_names(model)
    listing = ", ".join(names) or "none"
    if targets is None:
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        targets = convs[1:]
        if not targets:
            raise ConfigError(f"{label} has no conv layer after its first, so hypernet.targets cannot default to "
                              f"them; name the layers to generate, e.g. hypernet.targets=[{names[-1] if names else 'fc'}]. "
                              f"Its generatable layers: {listing}.")
    modules = dict(model.named_modules())
    out, seen = [], set()
    for name in targets:
        if name in seen:
            raise ConfigError(f"hypernet.targets names '{name}' twice.")
        seen.add(name)
        m = modules.get(name) if name else None
        if m is None:
            raise ConfigError(f"hypernet.targets: '{name}' is not a layer of {label}. Its layers whose weights a "
                              f"generator can make (Conv2d, Linear): {listing}.")
        if not _generatable(m):
            why = ("a grouped or non-zero-padded Conv2d" if isinstance(m, nn.Conv2d) else f"a {type(m).__name__}")
            raise ConfigError(f"hypernet.targets: '{name}' is {why}; the generator makes the weight of a Conv2d "
                              f"(groups=1, zero padding) or a Linear layer only. Layers of {label} it can make: "
                              f"{listing}.")
        out.append((name, m))
    return out


def make_generator(specs: list[tuple[str, nn.Module]], opts: dict) -> KernelGenerator:
    """The one shared generator: channel tiles (tile x tile x f x f, f = the first target's kernel) or, with
    chunk=C, flat chunks of C numbers."""
    fans = [_fans(m)[1 if opts["init"] == "hyperfan_out" else 0] for _, m in specs]
    sizes = [m.weight.numel() for _, m in specs]
    big = fans[sizes.index(max(sizes))]  # the fan of the largest target
    common = dict(init=opts["init"], param=opts["param"], conditioning=opts["conditioning"],
                  cond_dim=opts["cond_dim"], num_tasks=opts["num_tasks"])
    if opts["chunk"]:
        return KernelGenerator(opts["z_dim"], opts["d"], in_size=1, out_size=opts["chunk"], ksize=1,
                               fan_ref=big, flat=True, **common)
    first = specs[0][1]
    k = first.kernel_size[0] if isinstance(first, nn.Conv2d) else 1
    ref = big if opts["init"].startswith("hyperfan") else None  # None: the tile's fan-in (init=variance)
    return KernelGenerator(opts["z_dim"], opts["d"], in_size=opts["tile"], out_size=opts["tile"], ksize=k,
                           fan_ref=ref, **common)


def make_layer(g: KernelGenerator, name: str, m: nn.Module) -> GeneratedWeight:
    fan = _fans(m)[1 if g.init == "hyperfan_out" else 0]
    if isinstance(m, nn.Conv2d):
        layer = HyperConv2d(g, m.in_channels, m.out_channels, padding=m.padding, bias=m.bias is not None,
                            name=name, kernel_size=m.kernel_size, stride=m.stride, dilation=m.dilation, fan=fan)
    else:
        layer = HyperLinear(g, m.in_features, m.out_features, bias=m.bias is not None, name=name, fan=fan)
    return layer


def _attach(model: nn.Module, g: KernelGenerator, layers: list[tuple[str, GeneratedWeight]]) -> nn.Module:
    if getattr(model, "hypernet", None) is not None:
        raise ConfigError("This model already has a hypernetwork (model.hypernet); hypernetize a model once, with "
                          "all its targets in one call.")
    for name, layer in layers:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        if g.param == "mip":  # theta = theta_0 + g(z): theta_0 and the bias are the layer's own, still learned
            layer.theta0 = nn.Parameter(old.weight.detach().clone())
            if old.bias is not None:
                layer.bias = nn.Parameter(old.bias.detach().clone())
        setattr(parent, child, layer)
    model.hypernet = g
    return model


def hypernetize(model: nn.Module, targets: Iterable[str] | None = None, **options) -> nn.Module:
    """Replace `targets`' weights (default: every conv layer but the first) by weights generated from one
    shared generator; returns `model`, changed in place. Options: z_dim, d, tile, chunk, init, param,
    conditioning, cond_dim, num_tasks (see docs/hypernetize.md)."""
    opts = check_options(targets=None if targets is None else list(targets), **options)
    specs = resolve_targets(model, opts["targets"], f"model {type(model).__name__}")
    g = make_generator(specs, opts)
    layers = [(name, make_layer(g, name, m)) for name, m in specs]
    device = next(model.parameters()).device
    return _attach(model, g, layers).to(device)


@contextlib.contextmanager
def _init_calls(skip: set[int] | None = None):
    """Record (and with `skip`, suppress by call index) Conv/Linear reset_parameters calls while a model is built."""
    classes = (nn.modules.conv._ConvNd, nn.Linear)
    originals = {c: c.__dict__["reset_parameters"] for c in classes}
    calls: list[nn.Module] = []

    def wrap(original):
        def reset_parameters(self):
            calls.append(self)
            if skip is not None and len(calls) - 1 in skip:
                with torch.no_grad():
                    self.weight.zero_()
                    if self.bias is not None:
                        self.bias.zero_()
                return
            original(self)
        return reset_parameters

    try:
        for c in classes:
            c.reset_parameters = wrap(originals[c])
        yield calls
    finally:
        for c in classes:
            c.reset_parameters = originals[c]


def build_hypernetized(build: Callable[[], nn.Module], targets: Iterable[str] | None = None, label: str = "the model",
                       **options) -> nn.Module:
    """build() hypernetized (see the module docstring for the random-number order)."""
    opts = check_options(targets=None if targets is None else list(targets), **options)
    with torch.random.fork_rng(devices=[]), _init_calls() as calls:
        probe = build()
    specs = resolve_targets(probe, opts["targets"], label)
    g = make_generator(specs, opts)
    layers = [(name, make_layer(g, name, m)) for name, m in specs]
    index = {id(m): i for i, m in enumerate(calls)}
    skip = set() if opts["param"] == "mip" else {index[id(m)] for _, m in specs if id(m) in index}
    with _init_calls(skip):
        model = build()
    return _attach(model, g, layers)


def generated_layers(model: nn.Module) -> list[tuple[str, GeneratedWeight]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, GeneratedWeight)]


def layer_table(model: nn.Module) -> list[dict]:
    """Per generated layer: name, type, weight shape, tiles/chunks (= embeddings), embedding parameters."""
    rows = []
    for name, m in generated_layers(model):
        g = m.generator[0]
        shape = m.shape if m.kind == "Conv2d" else m.shape[:2]
        rows.append({"layer": name, "type": m.kind, "kernel": tuple(shape), "tiles": m.num_tiles,
                     "piece": (f"{g.out_size:,}" if g.flat else f"{g.out_size}x{g.in_size}x{g.ksize}x{g.ksize}"),
                     "flat": g.flat, "embedding_params": m.z.numel()})
    return rows


def generate(model: nn.Module, cond=None) -> dict[str, torch.Tensor]:
    """All target weights for condition `cond` (a task index for conditioning=task, a vector for param, a batch
    of codes [N, cond_dim] for input; None: the current/static one): {layer name: weight}."""
    g = model.hypernet
    out = {}
    for name, layer in generated_layers(model):
        c = g.condition_vector(cond) if g.conditioning in ("task", "param") else (
            layer._static_condition() if cond is None else torch.as_tensor(cond))
        w = layer.generated(c)
        out[name] = w[..., 0, 0] if isinstance(layer, HyperLinear) else w
    return out


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """generator, embeddings, conditioning encoders, MIP theta_0, ordinary (all else), total, and the original
    model's count (the generated weights' own size in place of everything the hypernetwork added)."""
    layers = [m for _, m in generated_layers(model)]
    g = getattr(model, "hypernet", None)
    gen = sum(p.numel() for p in g.parameters()) if isinstance(g, KernelGenerator) else 0
    emb = sum(m.z.numel() for m in layers)
    enc = sum(p.numel() for m in layers if m.encoder is not None for p in m.encoder.parameters())
    theta0 = sum(m.theta0.numel() for m in layers if m.theta0 is not None)
    total = sum(p.numel() for p in model.parameters())
    original = total - gen - emb - enc - theta0 + sum(m.shape[0] * m.shape[1] * m.shape[2] * m.shape[3] for m in layers)
    return {"generator": gen, "embeddings": emb, "encoders": enc, "theta0": theta0,
            "ordinary": total - gen - emb - enc - theta0, "total": total, "original": original}


def from_config(hcfg, build: Callable[[], nn.Module], label: str) -> nn.Module:
    """The config route: `hypernet` group entry (name none/static/task/input + OPTION_KEYS) -> the model."""
    from omegaconf import OmegaConf

    opts = OmegaConf.to_container(hcfg, resolve=True) if not isinstance(hcfg, dict) else dict(hcfg)
    name = opts.pop("name", "static")
    unknown = sorted(set(opts) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"hypernet takes no key(s) {', '.join(unknown)}; its keys: {', '.join(OPTION_KEYS)}.")
    if name == "none":
        if opts:
            raise ConfigError(f"{', '.join(f'hypernet.{k}' for k in sorted(opts))} set (e.g. by embedding=...), but no "
                              f"layer is hypernetized (hypernet=none): add hypernet=static (or task, input).")
        return build()
    return build_hypernetized(build, label=label, **opts)
