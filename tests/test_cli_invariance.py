"""task=invariance end to end through the real command on the synthetic MNIST, its bad-input errors,
and the report's invariance table and figure."""
import json

import pandas as pd
import pytest

from .conftest import TINY, in_process

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = [*TINY, "model.channels=[8,16]", "model.hidden=32", "task.eval_repeats=2", "task.curve_images=40"]


@pytest.mark.slow
def test_tiny_runs_write_metrics_curve_and_figure_and_the_report_reads_them(fake_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    p = in_process("task=invariance", "model=cnn", "data=mnist", "rotation=restricted34", *SMALL,
                   f"hydra.run.dir={sweep / '0_cnn'}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    # a user's own protocol from the command line: restrict 1 and 7 to [-30, 30]
    p = in_process("task=invariance", "model=hyper_cnn", "rotation.restricted=[1,7]",
                   "rotation.restricted_range=[-30,30]", *SMALL, "trainer.epochs=1", "task.curve_step=30",
                   f"hydra.run.dir={sweep / '1_hyper_cnn'}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    for run, model, restricted, angles in ((sweep / "0_cnn", "cnn", [3, 4], 72),
                                           (sweep / "1_hyper_cnn", "hyper_cnn", [1, 7], 12)):
        m = json.loads((run / "metrics.json").read_text())
        assert m["status"] == "ok" and m["model"] == model and m["task"] == "invariance"
        hist = pd.read_csv(run / "history.csv")
        assert m["test_acc"] == hist.test_acc[m["best_epoch"] - 1] and m["val_acc"] == hist.val_acc.max()
        if model == "cnn":  # 2 epochs: above chance (1/8) where it was trained; a model that learned nothing fails
            assert m["ptest"] > 0.25 and m["p34in"] > 0.25 and m["test_acc"] > 0.25, m
        assert m["digits"] == [0, 1, 2, 3, 4, 5, 7, 8] and m["restricted"] == restricted and m["eval_repeats"] == 2
        curve = pd.read_csv(run / "acc_vs_angle.csv")
        assert len(curve) == angles and curve.angle.iloc[0] == -180 and curve.angle.iloc[-1] == 180 - 360 / angles
        assert {"restricted", "others", "digit_3", "digit_8"} <= set(curve.columns) and "digit_6" not in curve
        for png in ("acc_vs_angle.png", "curves.png"):
            data = (run / png).read_bytes()
            assert data.startswith(PNG) and len(data) > 5000
    assert "1, 7 trained in [-30, 30]" in m["protocol"]
    r = in_process(str(sweep), command="hyperbench-report")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(sweep / "report" / "table_invariance.csv")
    assert list(table.Model) == ["cnn", "hyper_cnn"]
    assert list(table.columns[:8]) == ["Model", "protocol", "Ptest", "Ptest, published (Potapov 2018a)", "P34in",
                                       "P34in, published (Potapov 2018a)", "Pout", "Pout, published (Potapov 2018a)"]
    # published values only beside runs of the published protocol (restricted34) itself
    assert table["Pinv, published (Potapov 2018a)"][0] == 0.003 and table["Pout, published (Potapov 2018a)"][0] == 0.212
    assert pd.isna(table["Pinv, published (Potapov 2018a)"][1])
    assert (sweep / "report" / "invariance_acc_vs_angle.png").read_bytes().startswith(PNG)
    assert "## Invariance of recognition under rotation (Potapov 2018a)" in r.stdout


INVARIANCE_ERRORS = [
    (["rotation.restricted_range=[45,-45]"], "rotation.restricted_range=[45,-45] is an inverted range"),
    (["rotation.others_range=[0,0]"], "rotation.others_range=[0,0] is an empty range"),
    (["rotation.restricted=[3,9]"], "rotation.restricted names digit(s) [9], which rotation.remove=[6,9]"
                                    .replace("[6,9]", "[6, 9]")),
    (["rotation.restricted_range=wide"], "rotation.restricted_range must be a pair of angles"),
]


@pytest.mark.parametrize("args,message", INVARIANCE_ERRORS)
def test_bad_protocol_gives_one_paragraph_and_exit_2_before_training(args, message, tmp_path, run_cli):
    run = tmp_path / "run"
    # no data root: the protocol is checked before any data is read or any training starts
    p = run_cli("task=invariance", "model=cnn", *args, "trainer.epochs=1", f"hydra.run.dir={run}",
                   data_root=tmp_path / "nodata")
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    if (run / "metrics.json").exists():
        assert json.loads((run / "metrics.json").read_text())["status"] == "bad_config"
        assert not (run / "history.csv").exists()


def test_unknown_rotation_protocol_lists_the_known_ones():
    from hyperbench.cli import check_group_choices
    from hyperbench.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown rotation 'nosuch'. Available rotation configs: restricted34, restricted49"):
        check_group_choices(["task=invariance", "rotation=nosuch"])
    check_group_choices(["rotation=null", "rotation=restricted34"])
    # the protocols' former names point to the new ones
    with pytest.raises(ConfigError, match="rotation=seed001 was renamed: use rotation=restricted34"):
        check_group_choices(["task=invariance", "rotation=seed001"])
    with pytest.raises(ConfigError, match="rotation=seed000 was renamed: use rotation=restricted49"):
        check_group_choices(["task=transform", "rotation=seed000"])
