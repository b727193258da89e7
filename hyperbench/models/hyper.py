"""Static hypernetwork of Ha, Dai & Le ("HyperNetworks", section 3): conv kernels generated from embeddings.

The generator and the generated layers live in hyperbench.hyper (hypernetize any model's layers); the
hand-written families (mnist_hyper, vgg_hyper) are instances of it. Re-exported here for existing imports.
"""
from ..hyper.generator import KernelGenerator
from ..hyper.layers import HyperConv2d, HyperLinear

__all__ = ["KernelGenerator", "HyperConv2d", "HyperLinear"]
