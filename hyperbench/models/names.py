"""The one parser of the model names the published tables use: conv (ConvModel), hyperA_B (HyperA_B: embedding
size A, hidden size B), vgg_blockN and vgg_blockN_<network> (the CIFAR-10 VGG-BlockN ConvModel or HyperA_B)."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelName:
    blocks: int | None  # N of vgg_blockN; None for the MNIST network
    network: str        # the name without vgg_blockN_: conv, hyperA_B (or another tail for a VGG name)
    z_dim: int | None   # A of HyperA_B; None for a ConvModel
    d: int | None       # B of HyperA_B

    @property
    def is_hyper(self) -> bool:
        return self.z_dim is not None


def parse_model_name(name) -> ModelName | None:
    """vgg_block2_hyper16_16 -> ModelName(2, 'hyper16_16', 16, 16); conv -> ModelName(None, 'conv', None, None);
    None for a name outside these families (cnn, capsnet, the generic hyper, ...). Numbers may be negative or
    zero here: the caller says what is wrong with them."""
    name = str(name)
    block = re.fullmatch(r"vgg_block(-?\d+)(?:_(.+))?", name)
    blocks, network = (int(block.group(1)), block.group(2) or "conv") if block else (None, name)
    hyper = re.fullmatch(r"hyper(-?\d+)_(-?\d+)", network)
    if hyper:
        return ModelName(blocks, network, int(hyper.group(1)), int(hyper.group(2)))
    if network == "conv" or blocks is not None:
        return ModelName(blocks, network, None, None)
    return None
