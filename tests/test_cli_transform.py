"""task=transform through the real command on the synthetic MNIST: a tiny training run writes every file,
transfer evaluation of that run on user images, bad inputs (exit 2, one paragraph), and the report."""
import json

import numpy as np
import pandas as pd
import pytest

from .conftest import in_process

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["data.val_size=100", "data.train_size=200", "trainer.batch_size=100", "trainer.epochs=2",
        "task.epoch_eval_images=50", "task.metric_images=5", "task.curve_images=3", "task.grid_images=2"]


@pytest.fixture(scope="module")
def trained(fake_mnist, tmp_path_factory):
    """Finished rotate (under restricted49) and shift runs of the deep HyperNet (the fastest model), one sweep."""
    sweep = tmp_path_factory.mktemp("transform")
    p = in_process("-m", "task=transform", "transform=rotate,shift", "model=hypernet_deep", "data=mnist",
                   "rotation=restricted49", *TINY, "++transform.curve_step=1", f"hydra.sweep.dir={sweep}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    for job in ("0_hypernet_deep", "1_hypernet_deep"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok", p.stderr
    return sweep, sweep / "0_hypernet_deep"


@pytest.mark.slow  # the trained fixture runs the command
def test_tiny_rotate_run_writes_every_file(trained):
    _, run = trained
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["task"] == "transform" and m["model"] == "hypernet_deep"
    assert m["restricted"] == [4, 9] and m["n_params"] == 2 and m["total_params"] == 3_003_913
    assert "4, 9 trained in [-45, 45], the others in [-180, 180)" in m["protocol"]
    hist = pd.read_csv(run / "history.csv")
    assert_learned_and_recorded(m, hist)
    assert "digit_3_out" not in m  # 3 is trained on the whole circle
    curve = pd.read_csv(run / "recon_vs_angle.csv")
    inside = curve.angle.between(-45, 45)
    assert m["curve_in_digit_4"] == pytest.approx(curve.digit_4[inside].mean())
    assert m["curve_out_digit_3"] == pytest.approx(curve.digit_3[~inside].mean())
    assert list(curve.columns) == ["angle", "digit_4", "digit_9", "digit_3"]
    assert len(curve) == 200 and curve.angle.iloc[0] == -180 and curve.angle.iloc[-1] == pytest.approx(178.2)
    for png in ("recon_vs_angle.png", "grid_digit4.png", "grid_digit9.png", "curves.png"):
        data = (run / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, png
    assert (run / "model.pt").stat().st_size > 1_000_000 and len(hist) == 2


def assert_learned_and_recorded(m: dict, hist: pd.DataFrame) -> None:
    """The training loss fell over the two epochs (a model that learns nothing, or outputs NaN, fails), the
    headline val/test losses are the history's at the best epoch, and every final loss is a positive finite MSE."""
    assert hist.train_loss[1] < hist.train_loss[0]
    best = m["best_epoch"] - 1
    assert m["val_loss"] == hist.val_loss[best] == hist.val_loss.min() and m["test_loss"] == hist.test_loss[best]
    for key in ("loss_in", "loss_out", "digit_4_in", "digit_4_out", "curve_in_digit_4", "curve_out_digit_4"):
        assert 0 < m[key] < float("inf"), key


@pytest.mark.slow
def test_transfer_to_user_images_and_the_report(trained, fake_mnist, tmp_path):
    sweep, run = trained
    images = tmp_path / "mine.npy"
    rng = np.random.default_rng(0)
    np.save(images, (rng.random((5, 28, 28)) > 0.8).astype(np.uint8) * 255)
    out = sweep / "transfer"
    p = in_process("task=transform", f"eval.run={run}", f"eval.images={images}", "task.curve_step=30",
                   f"hydra.run.dir={out}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "transfer" and m["n_images"] == 5 and m["model"] == "hypernet_deep"
    curve = pd.read_csv(out / "recon_vs_angle.csv")
    assert m["eval_run"] == str(run) and m["curve_mean"] == pytest.approx(curve.images.mean()) and m["curve_mean"] > 0
    assert list(curve.columns) == ["angle", "images"] and len(curve) == 200  # the trained run's curve step
    for png in ("recon_vs_angle.png", "grid_images.png"):
        assert (out / png).read_bytes().startswith(PNG)
    assert not (out / "model.pt").exists()  # nothing trained

    # the shift run: its own curve, loss versus dx at dy = 0
    assert json.loads((sweep / "1_hypernet_deep" / "metrics.json").read_text())["transform"] == "shift"
    dx = pd.read_csv(sweep / "1_hypernet_deep" / "recon_vs_dx.csv")
    assert list(dx.columns) == ["dx", "digit_4", "digit_9", "digit_3"] and dx.dx.tolist() == list(range(-6, 7))

    r = in_process(str(sweep), command="hyperbench-report")
    assert r.returncode == 0, r.stderr
    assert "## Learning to rotate: autoencoders vs HyperNets" in r.stdout
    assert "## Learning to shift" in r.stdout and "## Transfer to mine.npy" in r.stdout
    table = pd.read_csv(sweep / "report" / "table_transform_rotate.csv")
    assert table.model.tolist() == ["autoencoder, published (semantic-vision)", "hypernet_deep"] * 3
    assert table["180°"][0] == 0.138 and table["-90° / +90°"][2] == "0.089-0.095"
    for png in ("transform_rotate_digit4.png", "transform_shift_digit4.png", "transfer_mine.npy.png"):
        assert (sweep / "report" / png).read_bytes().startswith(PNG)


@pytest.mark.slow  # the trained fixture runs the command
def test_wrong_user_images_exit_2_with_one_paragraph(trained, tmp_path, run_cli):
    _, run = trained
    bad = tmp_path / "big.npy"
    np.save(bad, np.zeros((3, 32, 32), np.uint8))
    for args, message in (([f"eval.run={run}", f"eval.images={bad}"], "holds images of 32 x 32 pixels"),
                          ([f"eval.images={bad}"], "Transfer evaluation needs both eval.run="),
                          (["transform=spin"], "Unknown transform 'spin'. Available transform configs: affine, "
                                               "rotate, shift")):
        p = run_cli("task=transform", *args, f"hydra.run.dir={tmp_path / 'out'}", data_root=tmp_path / "nodata")
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
