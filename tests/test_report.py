"""hyperbench-report on a fabricated sweep directory: layout, published values, selection by
validation, mean ± std over seeds, and failed jobs listed."""
import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from hyperbench.report import build_report, load_runs

from .conftest import compose_config

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


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The fabricated sweep and its report (text), built once for the tests that only read them."""
    root = tmp_path_factory.mktemp("sweep")
    make_sweep(root, compose_config)
    return root, build_report([root], root / "report")


def test_table2_layout_published_values_and_selection_by_validation(sweep):
    tmp_path, text = sweep
    t = pd.read_csv(tmp_path / "report" / "table2_mnist.csv")
    assert list(t.Model) == ["ConvModel", "Hyper4_4", "Hyper4_5", "Hyper4_6", "Hyper5_5", "Hyper6_6",
                             "Hyper4_7", "Hyper4_8", "Hyper7_7"]
    assert list(t.columns[:6]) == ["Model", "Best Test Accuracy", "Best Test Accuracy, published (Vineet, CS618)",
                                   "Conv Parameters", "Conv Parameters, published (Vineet, CS618)", "Count check"]
    assert list(t["Conv Parameters, published (Vineet, CS618)"]) == [f"{c:,}" for c in COUNTS]
    assert (t["Count check"] == "match").all()
    assert t["Best Test Accuracy, published (Vineet, CS618)"][4] == "98.79%"
    assert (t.lr == 0.003).all()  # chosen by validation accuracy, not by the better test accuracy at 0.005
    assert t["Best Test Accuracy"][1] == "98.50%"
    assert t["Best Test Accuracy"][0] == "98.50 ± 0.20% (n=3)"  # 98.5, 98.3, 98.7
    assert "| ConvModel |" in text and "published (Vineet, CS618)" in text


def test_lr_grid_table_and_failed_runs(sweep):
    tmp_path, text = sweep
    grid = pd.read_csv(tmp_path / "report" / "lr_grid_mnist.csv")
    assert len(grid) == 18
    row = grid[(grid.Model == "Hyper5_5") & (grid.lr == 0.005)].iloc[0]
    assert row["Test, published (Vineet, CS618)"] == "98.34%" and row["Val, published (Vineet, CS618)"] == "98.70%"
    assert "Failed runs (2)" in text
    assert "**diverged**: The training loss became nan" in text and "**no_metrics**" in text
    runs = load_runs([tmp_path])
    assert len(runs) == 22 and (runs.status == "ok").sum() == 20


def test_count_mismatch_is_flagged(tmp_path, cfg_of):
    fake_run(tmp_path / "0_conv", cfg_of, "conv", 0.004, 0, 0.99, 0.98, counts=12544)
    build_report([tmp_path], tmp_path / "report")
    t = pd.read_csv(tmp_path / "report" / "table2_mnist.csv")
    assert t["Count check"][0] == "DIFFERS: published 12,560, model has 12,544"


def test_report_cites_its_sources_and_ends_with_the_references(sweep):
    from hyperbench.report.published import REFERENCES

    _, text = sweep
    refs = text[text.index("## References"):]
    assert text.rstrip().endswith(refs.rstrip()) and refs.count("\n- **") == len(REFERENCES)
    assert '**Vineet, CS618**: Vineet, "Hypernetworks"' in refs and "arXiv:1609.09106" in refs
    assert "## MNIST: Table 2 of Vineet, CS618" in text
    assert "seed 00" not in text.lower()


def test_seeds_table_shows_only_the_settings_that_tell_configurations_apart(sweep):
    from hyperbench.report.seeds import MAX_CONFIG_CHARS

    tmp_path, _ = sweep
    seeds = pd.read_csv(tmp_path / "report" / "seeds.csv", keep_default_na=False)
    conv = seeds[seeds.model == "conv"]
    assert sorted(conv.config) == ["trainer.lr=0.003", "trainer.lr=0.005"] and list(conv.seeds) == ["0,1,2", "0"]
    assert not seeds.config.str.contains("None").any()
    assert seeds.config.str.len().max() <= MAX_CONFIG_CHARS


def fake_transform_run(d, cfg_of, model, steps):
    """A finished task=transform rotate run: config, metrics and its loss-versus-angle curve."""
    import numpy as np

    cfg = cfg_of("task=transform", f"model={model}")
    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    (d / "metrics.json").write_text(json.dumps({
        "status": "ok", "mode": "train", "transform": "rotate", "steps": steps, "batch_size": 128,
        "total_params": 1000, "val_loss": 0.1, "test_loss": 0.1, "curve_in_digit_4": 0.1, "curve_out_digit_4": 0.2}))
    angles = np.round(np.arange(-180, 180, 1.8), 1)
    pd.DataFrame({"angle": angles, "digit_4": 0.1 + 0.001 * np.abs(angles), "digit_9": 0.1,
                  "digit_3": 0.1}).to_csv(d / "recon_vs_angle.csv", index=False)


def test_report_html_embeds_figures_bounds_the_config_column_and_warns_when_budgets_differ(tmp_path, cfg_of):
    import re

    fake_transform_run(tmp_path / "0_ae", cfg_of, "ae", 100)
    fake_transform_run(tmp_path / "1_hypernet_deep", cfg_of, "hypernet_deep", 12480)
    text = build_report([tmp_path], tmp_path / "report")
    assert "Same budget" not in text
    assert ("**Warning: the compared rows were trained on different budgets** (ae: 100 steps of 128; "
            "hypernet_deep: 12,480 steps of 128)") in text
    table = pd.read_csv(tmp_path / "report" / "table_transform_rotate.csv", keep_default_na=False)
    assert list(table[table.model == "hypernet_deep"].budget) == ["12,480 steps of 128"] * 3
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<b>Warning: the compared rows were trained on different budgets</b>" in page
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # self-contained
    assert re.search(r"div\.long\{max-width:28em", page)  # long cells sit in a box of bounded width
    from hyperbench.report.html import to_html

    long = " ".join(f"task.key{i}={i}" for i in range(12))  # a seeds-table config of 140 characters
    assert '<td>4</td><td><div class="long">task.key0=0' in to_html(f"| digit | config |\n|---|---|\n| 4 | {long} |", tmp_path)
    assert "<h2>References</h2>" in page

    # equal budgets: one sentence naming the common budget, no warning
    for d in ("0_ae", "1_hypernet_deep"):
        m = json.loads((tmp_path / d / "metrics.json").read_text())
        (tmp_path / d / "metrics.json").write_text(json.dumps({**m, "steps": 312}))
    text = build_report([tmp_path], tmp_path / "report2")
    assert "Every model here trained 312 steps of 128" in text and "Warning" not in text


def test_a_hypernetized_conv_run_is_its_table_row_whatever_its_metrics_call_the_model(tmp_path, cfg_of):
    """The engine's metrics.json names model.name ("conv") for `model=conv hypernet=static embedding=z5_d5`: the
    report still reads it as Hyper5_5 (the network it builds), and a non-published init apart from both."""
    for name, extra, val in (("plain", [], 0.990), ("h55", ["hypernet.init=variance"], 0.992),
                             ("h55ha", ["hypernet.init=ha"], 0.995)):
        d = tmp_path / name
        overrides = ["model=conv"] + (["hypernet=static", "embedding=z5_d5", *extra] if name != "plain" else [])
        (d / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg_of(*overrides), d / ".hydra" / "config.yaml")
        (d / "metrics.json").write_text(json.dumps({
            "status": "ok", "model": "conv", "val_acc": val, "test_acc": val - 0.001, "epochs": 20,
            "epochs_completed": 20, "seconds_per_epoch": 7.5, "wall_time_s": 150.0,
            "conv_params": 12560 if name == "plain" else 5189}))
    runs = load_runs([tmp_path]).set_index("run_dir")
    assert [runs.model[str(tmp_path / n)] for n in ("plain", "h55", "h55ha")] == \
        ["conv", "hyper5_5", "conv+static z5_d5 init=ha"]
    # an evaluation of a trained run (eval.run=...) is reported as the model its metrics name
    d = tmp_path.parent / "transfer"
    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg_of("task=transform"), d / ".hydra" / "config.yaml")
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "model": "hypernet_deep", "mode": "transfer"}))
    assert load_runs([d]).model[0] == "hypernet_deep"
    build_report([tmp_path], tmp_path / "report")
    t = pd.read_csv(tmp_path / "report" / "table2_mnist.csv").set_index("Model")
    assert t.loc["ConvModel", "Best Test Accuracy"] == "98.90%" and t.loc["ConvModel", "Count check"] == "match"
    assert t.loc["Hyper5_5", "Best Test Accuracy"] == "99.10%" and t.loc["Hyper5_5", "Count check"] == "match"
