"""The data layer: torchvision files -> tensors on the device, fixed split, caps, clear errors."""
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from hyperbench.data import load_data
from hyperbench.errors import DataError

from .conftest import CONF


def data_cfg(root, **kw):
    cfg = OmegaConf.load(CONF / "data" / "mnist.yaml")
    cfg.root = str(root)
    return OmegaConf.merge(cfg, {"download": False, "val_size": 100, **kw})


def test_splits_sizes_scale_and_disjointness(fake_mnist):
    d = load_data(data_cfg(fake_mnist), torch.device("cpu"))
    assert (len(d.train), len(d.val), len(d.test)) == (500, 100, 200)
    assert d.shape == (1, 28, 28) and d.num_classes == 10
    assert d.train.x.dtype == torch.float32 and d.train.x.min() >= 0 and d.train.x.max() == 1
    flat_train = {tuple(r) for r in d.train.x.flatten(1)[:, ::7].tolist()}
    assert not any(tuple(r) in flat_train for r in d.val.x.flatten(1)[:, ::7].tolist())


def test_split_is_fixed_by_split_seed_and_caps_apply(fake_mnist):
    a = load_data(data_cfg(fake_mnist, train_size=50, test_size=20), torch.device("cpu"))
    b = load_data(data_cfg(fake_mnist, train_size=50, test_size=20), torch.device("cpu"))
    assert (len(a.train), len(a.test)) == (50, 20)
    torch.testing.assert_close(a.val.x, b.val.x)
    c = load_data(data_cfg(fake_mnist, split_seed=1), torch.device("cpu"))
    assert not torch.equal(a.val.y, c.val.y)


def test_scale_maps_pixels_to_the_requested_range(fake_mnist):
    d = load_data(data_cfg(fake_mnist, scale=[-1.0, 1.0]), torch.device("cpu"))
    assert d.train.x.min() >= -1 and d.train.x.max() == 1


def test_missing_dataset_says_where_and_what_to_do(tmp_path):
    with pytest.raises(DataError, match="HYPERBENCH_DATA") as err:
        load_data(data_cfg(tmp_path), torch.device("cpu"))
    assert str(tmp_path) in str(err.value)


@pytest.mark.skipif(not (Path(os.environ.get("HYPERBENCH_DATA", "/nonexistent")) / "MNIST" / "raw").is_dir(),
                    reason="real MNIST not under HYPERBENCH_DATA")
def test_real_mnist_split_is_the_published_split():
    cfg = data_cfg(os.environ["HYPERBENCH_DATA"], val_size=5000)
    d = load_data(cfg, torch.device("cpu"))
    assert (len(d.train), len(d.val), len(d.test)) == (55000, 5000, 10000)
    assert torch.bincount(d.val.y, minlength=10).min() > 400  # a random split: every digit present
    assert d.test.y[:5].tolist() == [7, 2, 1, 0, 4]  # the official test order
