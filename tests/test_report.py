"""hyperbench-report on a fabricated sweep directory: layout, published values, selection by
validation, mean ± std over seeds, and failed jobs listed."""
import json

import pandas as pd
from omegaconf import OmegaConf

from hyperbench.report import build_report, load_runs

ROWS = ["conv", "hyper4_4", "hyper4_5", "hyper4_6", "hyper5_5", "hyper6_6", "hyper4_7", "hyper4_8", "hyper7_7"]
COUNTS = [12560, 4244, 5108, 5972, 5189, 6166, 6836, 7700, 7175]


def fake_run(d, cfg_of, model, lr, seed, val, test, status="ok", counts=None):
    cfg = cfg_of(f"model={model}", f"trainer.lr={lr}", f"seed={seed}")
    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    m = {"status": status}
    if status == "ok":
        m.update(val_acc=val, test_acc=test, conv_params=counts, epochs=20, epochs_completed=20,
                 seconds_per_epoch=7.5, wall_time_s=150.0)
    else:
        m["error"] = "The training loss became nan at epoch 3, step 7"
    (d / "metrics.json").write_text(json.dumps(m))


def make_sweep(root, cfg_of):
    n = 0
    for model, count in zip(ROWS, COUNTS):
        for lr, val, test in ((0.003, 0.990, 0.985), (0.005, 0.985, 0.991)):  # best val != best test
            fake_run(root / f"{n}_{model}", cfg_of, model, lr, 0, val, test, counts=count)
            n += 1
    for seed, test in ((1, 0.983), (2, 0.987)):  # conv lr 0.003 has three seeds
        fake_run(root / f"{n}_conv", cfg_of, "conv", 0.003, seed, 0.990, test, counts=12560)
        n += 1
    fake_run(root / f"{n}_hyper", cfg_of, "hyper", 0.004, 0, 0, 0, status="diverged")
    (root / f"{n + 1}_hyper4_4" / ".hydra").mkdir(parents=True)  # a job killed before writing anything
    OmegaConf.save(cfg_of("model=hyper4_4"), root / f"{n + 1}_hyper4_4" / ".hydra" / "config.yaml")


def test_table2_layout_published_values_and_selection_by_validation(tmp_path, cfg_of):
    make_sweep(tmp_path, cfg_of)
    text = build_report([tmp_path], tmp_path / "report")
    t = pd.read_csv(tmp_path / "report" / "table2_mnist.csv")
    assert list(t.Model) == ["ConvModel", "Hyper4_4", "Hyper4_5", "Hyper4_6", "Hyper5_5", "Hyper6_6",
                             "Hyper4_7", "Hyper4_8", "Hyper7_7"]
    assert list(t.columns[:6]) == ["Model", "Best Test Accuracy", "Best Test Accuracy (seed 002)",
                                   "Conv Parameters", "Conv Parameters (seed 002)", "Count check"]
    assert list(t["Conv Parameters (seed 002)"]) == [f"{c:,}" for c in COUNTS]
    assert (t["Count check"] == "match").all()
    assert t["Best Test Accuracy (seed 002)"][4] == "98.79%"
    assert (t.lr == 0.003).all()  # chosen by validation accuracy, not by the better test accuracy at 0.005
    assert t["Best Test Accuracy"][1] == "98.50%"
    assert t["Best Test Accuracy"][0] == "98.50 ± 0.20% (n=3)"  # 98.5, 98.3, 98.7
    assert "| ConvModel |" in text and "(seed 002)" in text


def test_lr_grid_table_and_failed_runs(tmp_path, cfg_of):
    make_sweep(tmp_path, cfg_of)
    text = build_report([tmp_path], tmp_path / "report")
    grid = pd.read_csv(tmp_path / "report" / "lr_grid_mnist.csv")
    assert len(grid) == 18
    row = grid[(grid.Model == "Hyper5_5") & (grid.lr == 0.005)].iloc[0]
    assert row["Test (seed 002)"] == "98.34%" and row["Val (seed 002)"] == "98.70%"
    assert "Failed runs (2)" in text
    assert "**diverged**: The training loss became nan" in text and "**no_metrics**" in text
    runs = load_runs([tmp_path])
    assert len(runs) == 22 and (runs.status == "ok").sum() == 20


def test_count_mismatch_is_flagged(tmp_path, cfg_of):
    fake_run(tmp_path / "0_conv", cfg_of, "conv", 0.004, 0, 0.99, 0.98, counts=12544)
    build_report([tmp_path], tmp_path / "report")
    t = pd.read_csv(tmp_path / "report" / "table2_mnist.csv")
    assert t["Count check"][0] == "DIFFERS: seed prints 12,560, model has 12,544"
