"""The one-file-per-row model configs (conf/model/hyperA_B.yaml, vgg_blockN[_hyperA_B].yaml) against the published
tables they stand for (report/published.py): every row has its file, every such file is a row, the file builds
the network its name says, with the conv parameter count the table prints (bar the known misprints)."""
from __future__ import annotations

import pytest

from hyperbench.config import group_options
from hyperbench.models import model_from_config
from hyperbench.models.names import parse_model_name
from hyperbench.report.published import CIFAR_MISPRINTS, CIFAR_TABLES, MNIST_TABLE2

ROWS = {**{name: ("mnist", row) for name, row in MNIST_TABLE2.items()},
        **{name: ("cifar10", row) for table in CIFAR_TABLES.values() for name, row in table.items()}}
SHAPES = {"mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10)}


def test_every_row_file_is_a_published_row():
    row_files = {m for m in group_options("model") if (p := parse_model_name(m)) is not None
                 and (p.is_hyper or p.blocks is not None or m == "conv")}
    assert row_files == set(ROWS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_a_row_file_builds_the_published_network(cfg_of, name):
    data, (_, printed) = ROWS[name]
    cfg = cfg_of(f"model={name}", f"data={data}")
    parsed = parse_model_name(name)
    assert cfg.model.name == name
    assert (cfg.model.get("z_dim"), cfg.model.get("d")) == (parsed.z_dim, parsed.d)
    assert cfg.model.get("blocks") == parsed.blocks
    shape, classes = SHAPES[data]
    params = model_from_config(cfg.model, classes, shape).conv_params()
    assert (params == printed) != (name in CIFAR_MISPRINTS)
