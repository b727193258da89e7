"""CIFAR-10: loading a copy that fails torchvision's md5 check, the 45,000/5,000/10,000 split, a
short end-to-end VGG run through the CLI, and the report's Tables 3-5 with misprints marked."""
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hyperbench.data import load_data
from hyperbench.errors import DataError
from hyperbench.report import build_report

from .conftest import TINY, in_process

PNG = b"\x89PNG"


def write_cifar10(root: Path, n_per_batch: int = 120, n_test: int = 200, seed: int = 0) -> Path:
    """cifar-10-batches-py in torchvision's layout, learnable (class k = a bright square at a
    k-dependent place), and NOT md5-identical to the official files, like ../shared/data's copy."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)

    def batch(n):
        labels = rng.integers(0, 10, n)
        img = rng.integers(0, 80, (n, 3, 32, 32)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 2 + 8 * (k // 4), 2 + 8 * (k % 4)
            img[i, k % 3, r:r + 8, c:c + 8] = 255
        return {"data": img.reshape(n, 3072), "labels": labels.tolist()}

    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch(n_per_batch)))
    (d / "test_batch").write_bytes(pickle.dumps(batch(n_test)))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}))
    return root


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"))


def data_cfg(root, **kw):
    base = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "cifar10.yaml")
    return OmegaConf.merge(base, {"root": str(root), "download": False, **kw})


def test_md5_mismatch_is_accepted_and_pixels_are_kept(fake_cifar):
    data = load_data(data_cfg(fake_cifar, val_size=100), torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (500, 100, 200)
    assert data.train.x.shape[1:] == (3, 32, 32) and data.num_classes == 10
    raw = pickle.loads((fake_cifar / "cifar-10-batches-py" / "test_batch").read_bytes())
    first = torch.from_numpy(raw["data"][0].reshape(3, 32, 32)).float() / 255
    assert torch.equal(data.test.x[0], first) and data.test.y[0].item() == raw["labels"][0]


def test_check_md5_true_refuses_the_copy_with_a_clear_error(fake_cifar):
    # the files are there: the message says so (not "not under the data root") and names the way out
    with pytest.raises(DataError, match="CIFAR10: its files under .* are there but torchvision refuses them .*"
                                        "data.check_md5=false accepts it"):
        load_data(data_cfg(fake_cifar, check_md5=True), torch.device("cpu"))


@pytest.mark.skipif(not (Path(os.environ.get("HYPERBENCH_DATA", "/nonexistent")) / "cifar-10-batches-py").is_dir(),
                    reason="real CIFAR-10 not under HYPERBENCH_DATA")
def test_real_cifar10_is_the_published_split():
    data = load_data(data_cfg(os.environ["HYPERBENCH_DATA"]), torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (45000, 5000, 10000)
    counts = torch.bincount(torch.cat([data.train.y, data.val.y]), minlength=10)
    assert counts.tolist() == [5000] * 10
    mean = torch.cat([data.train.x, data.val.x]).mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-4)


@pytest.mark.slow
def test_vgg_hyper_run_end_to_end_writes_its_files(fake_cifar, tmp_path):
    p = in_process("model=vgg_block2_hyper4_4", "data=cifar10", *TINY, "trainer.batch_size=50",
                   f"hydra.run.dir={tmp_path}", data_root=fake_cifar)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "ok" and m["conv_params"] == 1068 and m["train_size"] == 500
    assert m["batch_size"] == 50 and m["epochs_completed"] == 2
    for f in ("curves.png", "filters.png"):
        assert (tmp_path / f).read_bytes().startswith(PNG)
    assert (tmp_path / "model.pt").exists() and len(pd.read_csv(tmp_path / "history.csv")) == 2


def test_cifar_recipe_is_the_published_one(cfg_of):
    cfg = cfg_of("data=cifar10", "model=vgg_block1")
    assert cfg.trainer.batch_size == 128 and cfg.data.augment.pad == 2 and cfg.data.val_size == 5000
    assert cfg_of("data=mnist").trainer.batch_size == 1000
    assert cfg_of("data=cifar10", "trainer.batch_size=64").trainer.batch_size == 64


def test_report_prints_tables_3_and_4_with_misprints_marked(tmp_path, cfg_of):
    runs = [("vgg_block1", 0.71, 2320), ("vgg_block1_hyper4_4", 0.60, 1044),
            ("vgg_block2", 0.72, 16208), ("vgg_block2_hyper4_4", 0.55, 1068)]
    for n, (model, acc, count) in enumerate(runs):
        d = tmp_path / f"{n}_{model}"
        (d / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg_of(f"model={model}", "data=cifar10"), d / ".hydra" / "config.yaml")
        (d / "metrics.json").write_text(json.dumps({
            "status": "ok", "val_acc": acc, "test_acc": acc - 0.01, "conv_params": count, "epochs": 20,
            "epochs_completed": 20, "seconds_per_epoch": 15.0}))
    text = build_report([tmp_path], tmp_path / "report")
    t3 = pd.read_csv(tmp_path / "report" / "table3_cifar_block1.csv")
    t4 = pd.read_csv(tmp_path / "report" / "table4_cifar_block2.csv")
    assert list(t3.Model) == ["ConvModel", "Hyper4_4"] and list(t4.Model) == ["ConvModel", "Hyper4_4"]
    assert list(t3["Best Test Accuracy, published (Vineet, CS618)"]) == ["71.05%", "64.87%"]
    assert list(t3["Count check"]) == ["match", "match"]
    assert t4["Count check"][1].startswith("DIFFERS: published 1,056, model has 1,068 (the printed count breaks")
    assert "VGG-Block2: Table 4 of Vineet, CS618" in text and "table2_mnist" not in " ".join(os.listdir(tmp_path / "report"))


@pytest.mark.parametrize("value,hint", [
    ("vgg_block2_hyper9_3", "model=vgg_hyper model.blocks=2 model.z_dim=9 model.d=3"),
    ("vgg_block4_hyper4_4", "VGG-BlockN exists for N = 1, 2, 3"),
    ("vgg_block1_hyper0_4", "needs a positive embedding size A and hidden size B (got A=0, B=4)"),
])
def test_unknown_vgg_hyper_names_get_the_generic_override(value, hint):
    from hyperbench.cli import check_group_choices
    from hyperbench.errors import ConfigError

    with pytest.raises(ConfigError, match=f"Unknown model '{value}'.*{hint.replace('(', '.').replace(')', '.')}"):
        check_group_choices([f"model={value}", "data=cifar10"])
