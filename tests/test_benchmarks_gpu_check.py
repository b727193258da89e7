"""benchmarks/gpu_check.py (`make gpu-check`) before it meets a GPU: the clean exit without one, and its whole
logic (cases through the engine, fp32 / bf16 / compiled modes, agreement, the markdown summary) on the CPU."""
import subprocess
import sys

import pandas as pd
import pytest
import torch

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: make gpu-check runs for real")
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path / "gc")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("gpu-check: no CUDA GPU is visible to this PyTorch")
    assert not (tmp_path / "gc").exists()


def test_unknown_case_is_exit_2(capsys):
    import gpu_check

    assert gpu_check.main(["--device", "cpu", "--cases", "resnet"]) == 2
    assert "unknown case or mode resnet" in capsys.readouterr().err


@pytest.mark.slow  # ten short trainings end to end
def test_its_logic_on_the_cpu(tmp_path):
    import gpu_check

    out = tmp_path / "gc"
    gpu_check.main(["--device", "cpu", "--steps", "2", "--batch", "8", "--eval-images", "40",
                    "--cases", "conv,capsnet_em,aae,compensate_ae", "--modes", "fp32,bf16", "--out", str(out)])
    rows = pd.read_csv(out / "gpu_check.csv")
    assert len(rows) == 8 and set(rows.status) == {"ok"} and (rows.steps == 2).all() and (rows.batch == 8).all()
    by = rows.set_index(["case", "mode"])
    assert by.loc[("conv", "bf16"), "precision"] == "bf16" and by.loc[("conv", "fp32"), "precision"] == "fp32"
    # capsnet_em runs in fp32 whatever the autocast: its bf16 run is its fp32 run, number for number
    assert by.loc[("capsnet_em", "bf16"), "precision"] == "fp32"
    assert by.loc[("capsnet_em", "bf16"), "value"] == by.loc[("capsnet_em", "fp32"), "value"]
    assert by.loc[("aae", "fp32"), "metric"] == "val_loss" and by.loc[("conv", "fp32"), "metric"] == "val_acc"
    assert rows.vs_fp32.notna().sum() == 4 and (rows.images_per_s > 0).all()
    text = (out / "gpu_check.md").read_text()
    assert text.startswith("# gpu-check on CPU") and "| capsnet_em | invariance | bf16 | fp32 |" in text
    # compile mode: bf16 + torch.compile of what is trained (dynamo traces with the eager backend here)
    gpu_check.main(["--device", "cpu", "--steps", "2", "--batch", "8", "--eval-images", "40", "--compile-backend",
                    "eager", "--cases", "aae", "--modes", "fp32,compile", "--out", str(out)])
    row = pd.read_csv(out / "gpu_check.csv").set_index("mode").loc["compile"]
    assert row.status == "ok" and row.compiled == "forward,training_loss" and row.precision == "bf16"


def test_the_newer_families_run_through_it(tmp_path):
    pytest.importorskip("e2cnn")
    import gpu_check

    out = tmp_path / "gc"
    gpu_check.main(["--device", "cpu", "--steps", "2", "--batch", "8", "--eval-images", "40",
                    "--cases", "steerable_cnn,conv_hypernet_mip", "--modes", "fp32", "--out", str(out)])
    rows = pd.read_csv(out / "gpu_check.csv")
    assert list(rows.case) == ["steerable_cnn", "conv_hypernet_mip"] and set(rows.status) == {"ok"}, rows.to_dict()
