"""Published numbers the report prints beside ours (../shared/reference/published.md).

Seed 002 = Vineet, "Hypernetworks" (CS618 report), after Ha, Dai & Le 2016.
"""
from __future__ import annotations

import re


def row_label(model_name: str) -> str:
    """A model config name as the seed's tables print it: conv -> ConvModel, hyper5_5 -> Hyper5_5,
    vgg_block2 -> VGG-Block2 ConvModel, vgg_block2_hyper16_16 -> VGG-Block2 Hyper16_16."""
    m = re.fullmatch(r"vgg_block(\d+)(?:_(.+))?", model_name)
    if m:
        return f"VGG-Block{m.group(1)} {row_label(m.group(2) or 'conv')}"
    return "ConvModel" if model_name == "conv" else model_name[:1].upper() + model_name[1:]


# Seed 002 Table 2 (MNIST): model config name -> (best test accuracy, conv parameters).
MNIST_TABLE2: dict[str, tuple[float, int]] = {
    "conv": (0.9867, 12560),
    "hyper4_4": (0.9812, 4244),
    "hyper4_5": (0.9867, 5108),
    "hyper4_6": (0.9875, 5972),
    "hyper5_5": (0.9879, 5189),
    "hyper6_6": (0.9814, 6166),
    "hyper4_7": (0.9861, 6836),
    "hyper4_8": (0.9855, 7700),
    "hyper7_7": (0.9824, 7175),
}

# Seed 002 appendix Tables 6-7: (model, lr) -> (validation accuracy, test accuracy).
MNIST_LR_GRID: dict[tuple[str, float], tuple[float, float]] = {
    ("conv", 0.003): (0.9898, 0.9865), ("conv", 0.004): (0.9888, 0.9867), ("conv", 0.005): (0.9864, 0.9846),
    ("hyper4_4", 0.003): (0.9856, 0.9812), ("hyper4_4", 0.004): (0.9858, 0.9806), ("hyper4_4", 0.005): (0.9868, 0.9762),
    ("hyper4_5", 0.003): (0.9864, 0.9867), ("hyper4_5", 0.004): (0.9872, 0.9833), ("hyper4_5", 0.005): (0.9876, 0.9836),
    ("hyper4_6", 0.003): (0.9898, 0.9875), ("hyper4_6", 0.004): (0.9842, 0.9797), ("hyper4_6", 0.005): (0.9896, 0.9861),
    ("hyper4_7", 0.003): (0.9888, 0.9861), ("hyper4_7", 0.004): (0.9838, 0.9826), ("hyper4_7", 0.005): (0.9726, 0.9680),
    ("hyper4_8", 0.003): (0.9814, 0.9752), ("hyper4_8", 0.004): (0.9842, 0.9817), ("hyper4_8", 0.005): (0.9908, 0.9855),
    ("hyper5_5", 0.003): (0.9864, 0.9822), ("hyper5_5", 0.004): (0.9902, 0.9879), ("hyper5_5", 0.005): (0.9870, 0.9834),
    ("hyper6_6", 0.003): (0.9830, 0.9814), ("hyper6_6", 0.004): (0.9862, 0.9811), ("hyper6_6", 0.005): (0.9854, 0.9805),
    ("hyper7_7", 0.003): (0.9870, 0.9824), ("hyper7_7", 0.004): (0.9858, 0.9805), ("hyper7_7", 0.005): (0.9854, 0.9799),
}
