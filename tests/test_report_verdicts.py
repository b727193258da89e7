"""The verdict table: each claim's rule on hand-made runs, the three verdicts, and selection by validation."""
import pandas as pd
import pytest

from hyperbench.report.published import INVARIANCE_PROTOCOL
from hyperbench.report.verdicts import (FLAT_MARGIN, Measured, ROTATE_49, still_improving, verdict,
                                        verdict_table)


def transform_run(model, r4, r3, steps, task="transform", **extra):
    return {"task": task, "model": model, "data": "mnist", "mode": "train", "steps": steps,
            "protocol": f"rotate, rotation=x: {ROTATE_49}", "curve_in_digit_4": 0.1, "curve_out_digit_4": 0.1 * r4,
            "curve_in_digit_3": 0.2, "curve_out_digit_3": 0.2 * r3, "config_key": model, **extra}


def row(table, claim_start):
    hits = table[table.claim.str.startswith(claim_start)]
    assert len(hits) == 1, list(table.claim)
    return hits.iloc[0]


def test_the_three_verdicts():
    assert verdict(Measured("", True, "", True, "")) == "reproduces"
    assert verdict(Measured("", False, "", True, "")) == "does not reproduce at this budget"
    assert verdict(Measured("", False, "", False, "")) == "contradicts"


@pytest.mark.parametrize("r4,steps,expected", [
    (1.0 * (1 + FLAT_MARGIN) - 0.01, 20_000, "reproduces"),
    (1.6, 20_000, "does not reproduce at this budget"),
    (1.6, 100_000, "contradicts"),
])
def test_deep_hypernet_flatness_against_the_control_digit(r4, steps, expected):
    table = verdict_table(pd.DataFrame([transform_run("hypernet_deep", r4, 1.0, steps)]))
    got = row(table, "The deep HyperNet")
    assert got.verdict == expected
    assert f"{steps:,} / 100,000 steps" == got["budget (ours / source)"]


def test_the_autoencoder_claim_is_the_opposite_rule():
    rises = verdict_table(pd.DataFrame([transform_run("ae", 1.8, 1.0, 5000)]))
    assert row(rises, "The autoencoder").verdict == "reproduces"
    flat = verdict_table(pd.DataFrame([transform_run("ae", 1.0, 1.0, 100_000)]))
    assert row(flat, "The autoencoder").verdict == "contradicts"


def test_only_the_protocol_the_claim_is_about_counts():
    other = transform_run("hypernet_deep", 1.0, 1.0, 20_000)
    other["protocol"] = "rotate, rotation=y: 1, 7 trained in [-30, 30], the others in [-180, 180)"
    assert verdict_table(pd.DataFrame([other])).empty


def test_invariance_rows_and_their_budget():
    runs = pd.DataFrame([{"task": "invariance", "model": "cnn", "protocol": INVARIANCE_PROTOCOL, "pout": 0.22,
                          "p34in": 0.99, "epochs_completed": 20, "best_epoch": 12, "config_key": "a"},
                         {"task": "invariance", "model": "cnn", "protocol": INVARIANCE_PROTOCOL, "pout": 0.20,
                          "p34in": 0.98, "epochs_completed": 20, "best_epoch": 15, "config_key": "a"}])
    got = row(verdict_table(runs), "cnn:")
    assert got.verdict == "reproduces" and got.ours == "Pout 0.210 ± 0.014, P34in 0.985 ± 0.007 (n=2)"  # sample std
    assert got["budget (ours / source)"] == "20 / 300 epochs"
    runs["pout"] = 0.7
    assert row(verdict_table(runs), "cnn:").verdict == "does not reproduce at this budget"


def test_mnist_claim_uses_the_validation_selected_configuration():
    def run(model, key, val, test, best=5):
        return {"task": "classify", "data": "mnist", "model": model, "config_key": key, "val_acc": val,
                "test_acc": test, "epochs_completed": 20, "best_epoch": best}
    runs = pd.DataFrame([run("conv", "c1", 0.990, 0.9870), run("hyper5_5", "h1", 0.991, 0.9800),
                         run("hyper5_5", "h2", 0.985, 0.9900)])  # h2 has the better test accuracy, worse validation
    got = row(verdict_table(runs), "On MNIST")
    assert got.ours.startswith("98.00% vs 98.70% (-0.70 points")
    assert got.verdict == "contradicts"  # converged (best epoch 5 of 20) and 0.7 points below
    runs["best_epoch"] = 20
    assert row(verdict_table(runs), "On MNIST").verdict == "does not reproduce at this budget"


def test_still_improving_means_best_epoch_in_the_last_tenth():
    assert still_improving(pd.DataFrame({"epochs_completed": [20], "best_epoch": [19]}))
    assert not still_improving(pd.DataFrame({"epochs_completed": [20], "best_epoch": [18]}))
    assert still_improving(pd.DataFrame({"epochs_completed": [3], "best_epoch": [3]}))
    assert not still_improving(pd.DataFrame({"epochs_completed": [3], "best_epoch": [2]}))


def test_cifar_claims_per_block():
    def run(model, acc):
        return {"task": "classify", "data": "cifar10", "model": model, "config_key": model, "val_acc": acc,
                "test_acc": acc, "epochs_completed": 100, "best_epoch": 60}
    table = verdict_table(pd.DataFrame([run("vgg_block1", 0.70), run("vgg_block1_hyper4_4", 0.66)]))
    assert row(table, "On CIFAR-10 VGG-Block1").verdict == "reproduces"
    assert row(table, "The VGG-Block1 ConvModel").verdict == "reproduces"  # 70.00 within 2 points of 71.05
    assert not table.claim.str.contains("Block2").any()  # no Block2 runs, no Block2 claims
    # ahead by less than the margin: no verdict of "beats"; converged (best epoch 60 of 100), so it contradicts
    table = verdict_table(pd.DataFrame([run("vgg_block1", 0.678), run("vgg_block1_hyper4_4", 0.6772)]))
    got = row(table, "On CIFAR-10 VGG-Block1")
    assert got.verdict == "contradicts" and got.ours.startswith("ConvModel +0.08 points over vgg_block1_hyper4_4")


def test_symbol_transfer_reads_the_trained_run(tmp_path):
    import json
    (tmp_path / "metrics.json").write_text(json.dumps({"loss_in": 0.05, "steps": 20_000}))
    transfer = {"task": "transform", "model": "hypernet_deep", "mode": "transfer", "eval_images": "symbols",
                "eval_run": str(tmp_path), "curve_in_images": 0.08, "curve_out_images": 0.085, "curve_mean": 0.084,
                "config_key": "t"}
    got = row(verdict_table(pd.DataFrame([transfer])), "HyperNets transfer")
    assert got.verdict == "reproduces" and "1.68x the digits'" in got.ours  # 0.084 / 0.05
    transfer["curve_mean"] = 0.2  # 4x the digits' loss: not transferred
    assert row(verdict_table(pd.DataFrame([transfer])), "HyperNets transfer").verdict == \
        "does not reproduce at this budget"


def test_six_nine_is_judged_against_the_rotated_inputs():
    run = {"task": "compensate", "model": "hypernet_deep", "steps": 1560, "six_nine_confused_out": 0.23,
           "six_nine_input_confused_out": 0.59, "six_nine_confused": 0.18, "config_key": "c"}
    assert row(verdict_table(pd.DataFrame([run])), "It distinguishes").verdict == "reproduces"
    run["six_nine_confused_out"] = 0.6
    assert row(verdict_table(pd.DataFrame([run])), "It distinguishes").verdict == "does not reproduce at this budget"


@pytest.mark.parametrize("overrides,label", [
    (["model=conv", "hypernet=static", "embedding=z5_d5"], "hyper5_5"),  # the same network as the table row
    (["model=vgg_block2", "data=cifar10", "hypernet=static", "embedding=z16_d16"], "vgg_block2_hyper16_16"),
    (["model=conv", "hypernet=static", "hypernet.init=ha"], "conv+static z4_d4 init=ha"),
    (["model=cnn", "hypernet=static", "hypernet.targets=[fc1]"], "cnn+static z4_d4"),
    (["model=conv"], "conv"),
])
def test_a_hypernetized_run_is_reported_as_the_network_it_builds(cfg_of, overrides, label):
    from hyperbench.report.common import run_model_label
    assert run_model_label(cfg_of(*overrides)) == label


def test_runs_from_before_a_config_group_existed_pool_and_resume_with_new_ones(cfg_of):
    from omegaconf import OmegaConf

    from hyperbench.report.common import config_key
    from hyperbench.training.resume import config_diff
    now = cfg_of("model=hyper5_5")
    assert now.hypernet.name == "none"
    old = OmegaConf.create(OmegaConf.to_container(now))
    del old["hypernet"]  # a run written before the hypernet group existed
    assert config_key(old) == config_key(now) and config_diff(old, now) == []
    assert config_diff(old, cfg_of("model=hyper5_5", "hypernet=static")) != []  # a real difference still counts


@pytest.mark.parametrize("overrides,key,other", [
    (["model=hyper5_5"], "trainer.fused", True),
    (["task=transform", "model=hypernet_deep"], "model.mixing", "linear"),
    (["task=transform", "model=ae"], "model.init", "glorot"),
])
def test_runs_from_before_a_setting_existed_pool_and_resume_at_its_old_behaviour(cfg_of, overrides, key, other):
    """A setting added later (config.ADDED_LATER) at the value that reproduces the earlier code equals its
    absence; any other value is a real difference."""
    from omegaconf import OmegaConf

    from hyperbench.report.common import config_key
    from hyperbench.training.resume import config_diff
    now = cfg_of(*overrides)
    group, name = key.split(".")
    old = OmegaConf.create(OmegaConf.to_container(now))
    del old[group][name]  # a run recorded before the setting existed
    assert config_key(old) == config_key(now) and config_diff(old, now) == []
    changed = cfg_of(*overrides, f"{key}={str(other).lower()}")
    assert config_key(old) != config_key(changed)
    assert config_diff(old, changed) == [f"{key}=None there, {other!r} here"]
