"""Bring your own network: hypernetize any model's Conv2d/Linear layers (see docs/hypernetize.md).

    from hyperbench.hyper import hypernetize
    model = hypernetize(model, targets=["conv2", "fc1"], z_dim=5, d=5, chunk=4096, init="hyperfan_in")
"""
from .generator import CONDITIONINGS, INITS, PARAMS, KernelGenerator
from .hypernetize import (build_hypernetized, from_config, generate, generated_layers, hypernetize, layer_names,
                          layer_table,
                          parameter_counts)
from .layers import GeneratedWeight, HyperConv2d, HyperLinear

__all__ = ["CONDITIONINGS", "INITS", "PARAMS", "KernelGenerator", "GeneratedWeight", "HyperConv2d", "HyperLinear",
           "build_hypernetized", "from_config", "generate", "generated_layers", "hypernetize", "layer_names", "layer_table",
           "parameter_counts"]
