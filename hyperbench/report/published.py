"""Published numbers the report prints beside ours, and the sources they come from.

Every published column of the report cites its source by a short key (VINEET, POTAPOV_INVARIANTS, ...);
REFERENCES spells each key out, and the report ends with that list (docs/references.md has the same sources).
"""
from __future__ import annotations

from ..models.names import parse_model_name

# Short keys the report's column headers cite, e.g. "Best Test Accuracy, published (Vineet, CS618)".
VINEET = "Vineet, CS618"
POTAPOV_INVARIANTS = "Potapov 2018a"
POTAPOV_HYPERNETS = "Potapov 2018b"
SEMANTIC_VISION = "semantic-vision"
REFERENCES: dict[str, str] = {
    VINEET: 'Vineet, "Hypernetworks", Artificial Neural Networks project report (CS618), after D. Ha, A. Dai and '
            'Q. V. Le, "HyperNetworks", ICLR 2017 (arXiv:1609.09106). Tables 1-7 and Figure 2.',
    POTAPOV_INVARIANTS: 'A. Potapov, "Can Deep Networks Learn Invariants?", SingularityNET AI research blog (Medium), '
                        'May 2018. "Recognition" (Ptest, Pout, Pinv; P34in from its semantic-vision code) and "Generation".',
    POTAPOV_HYPERNETS: 'A. Potapov, "Just Deep is too Flat", SingularityNET AI research blog (Medium), August 2018, '
                       'and Potapov et al., "HyperNets and their application to learning spatial transformations", '
                       'arXiv:1807.09226, 2018. Learning and compensating rotations.',
    SEMANTIC_VISION: "SingularityNET, semantic-vision, https://github.com/singnet/semantic-vision, experiments/invariance: "
                     "the code and README results of those articles (the baseline autoencoders' losses by angle).",
}


def published_column(label: str, key: str) -> str:
    """The header of a published column: the measured column's label and the source's short key."""
    return f"{label}, published ({key})"


def references_markdown() -> str:
    return "## References\n\n" + "\n".join(f"- **{key}**: {text}" for key, text in REFERENCES.items())


def row_label(model_name: str) -> str:
    """A model config name as the published tables print it: conv -> ConvModel, hyper5_5 -> Hyper5_5,
    vgg_block2 -> VGG-Block2 ConvModel, vgg_block2_hyper16_16 -> VGG-Block2 Hyper16_16."""
    name = parse_model_name(model_name)
    if name is not None and name.blocks is not None:
        return f"VGG-Block{name.blocks} {row_label(name.network)}"
    return "ConvModel" if model_name == "conv" else model_name[:1].upper() + model_name[1:]


# Table 2 of Vineet's CS618 report (MNIST): model config name -> (best test accuracy, conv parameters).
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

# Appendix Tables 6-7 of Vineet's CS618 report: (model, lr) -> (validation accuracy, test accuracy).
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

# Tables 3-5 of Vineet's CS618 report (CIFAR-10, VGG-Block1/2/3): model config name -> (best test accuracy, conv
# parameters as printed). Conv parameters exclude the first conv layer.
CIFAR_TABLES: dict[int, dict[str, tuple[float, int]]] = {
    1: {"vgg_block1": (0.7105, 2320), "vgg_block1_hyper4_4": (0.6487, 1044),
        "vgg_block1_hyper6_6": (0.6382, 1686), "vgg_block1_hyper4_5": (0.6311, 1268),
        "vgg_block1_hyper4_6": (0.5806, 1492)},
    2: {"vgg_block2": (0.7476, 16208), "vgg_block2_hyper4_4": (0.5882, 1056),
        "vgg_block2_hyper6_6": (0.5666, 1722), "vgg_block2_hyper8_8": (0.5977, 2504),
        "vgg_block2_hyper16_16": (0.6702, 6912)},
    3: {"vgg_block3": (0.7506, 71632), "vgg_block3_hyper8_8": (0.4779, 2696),
        "vgg_block3_hyper8_16": (0.5666, 7196), "vgg_block3_hyper16_16": (0.5666, 7196),
        "vgg_block3_hyper32_32": (0.5798, 22640)},
}
# Printed counts that disagree with the formula every other row follows (hypernetwork + one
# embedding per 16x16 tile): they compute to 1,068, 5,000 and 7,296 (docs/references.md).
CIFAR_MISPRINTS = frozenset({"vgg_block2_hyper4_4", "vgg_block3_hyper8_16", "vgg_block3_hyper16_16"})

# Potapov, "Can Deep Networks Learn Invariants?": "Recognition" (docs/references.md): model config name -> (Ptest, P34in, Pout, Pinv).
# The article's "best CNN" is the one with batch norm and dropout; it gives no numbers for the deeper CNN.
INVARIANCE_PROTOCOL = ("6, 9 removed; 3, 4 trained in [-45, 45], the others in [0, 360); "
                       "p34in [-45, 45], pout [45, 315], pinv [135, 225]")  # RotationProtocol.describe() of restricted34
# Model config name -> (Ptest, P34in, Pout, Pinv) of the published row: cnn = "CNN (2 conv + 2 dense)",
# cnn_bn_dropout = "best CNN with batch norm + dropout", capsnet = "CapsNet, dynamic routing",
# capsnet_em = "CapsNet, EM routing" (Pinv 0.090; 0.089 in the repo README).
INVARIANCE: dict[str, tuple[float, float, float, float]] = {
    "cnn": (0.989, 0.991, 0.212, 0.003),
    "cnn_bn_dropout": (0.993, 0.996, 0.257, 0.041),
    "capsnet": (0.991, 0.996, 0.249, 0.009),
    "capsnet_em": (0.976, 0.989, 0.218, 0.090),
}
# Published rows hyperbench does not build (printed under the table for reference): none left.
INVARIANCE_OTHERS: dict[str, tuple[float, float, float, float]] = {}

# Potapov's SingularityNET articles, "Generation" (docs/references.md): the baseline autoencoder's reconstruction MSE on rotated test
# digits (semantic-vision repo README), digit -> loss at 0, +-45, +-90 and 180 degrees (strings where a range is given).
TRANSFORM_AE: dict[int, tuple[str, str, str, str]] = {
    4: ("0.064", "0.047", "0.13", "0.138"),
    9: ("0.056", "0.040", "0.089-0.095", "0.099"),
    3: ("0.077", "0.054", "0.075", "0.076"),
}

# von Oswald, Henning, Grewe & Sacramento, "Continual learning with hypernetworks" (ICLR 2020), task-incremental
# scenario (task identity given at test time): average test accuracy after the last task, in percent, per
# benchmark and method. The table could not be read this session (only the paper's abstract and the authors' code,
# chrhenning/hypercl, were reachable; its README gives no numbers), so every entry is None = "not found"; the
# report prints that instead of a number. Fill in from the paper's table with its mean and std when verified.
CONTINUAL_SOURCE = ('von Oswald, Henning, Grewe & Sacramento, "Continual learning with hypernetworks" (ICLR 2020), '
                    'task-incremental table (split MNIST, permuted MNIST-10)')
CONTINUAL_METHODS = ("finetune", "ewc", "si", "hnet", "joint")
CONTINUAL: dict[tuple[str, str], tuple[float, float] | None] = {
    (data, method): None for data in ("split_mnist", "permuted_mnist") for method in CONTINUAL_METHODS}
