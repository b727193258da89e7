"""task=compensate through the real command on the synthetic MNIST: a tiny run of the deep HyperNet and of the
autoencoder writes every file, transfer evaluation of a run, the report, and bad inputs (exit 2, one paragraph)."""
import json

import numpy as np
import pandas as pd
import pytest

from .conftest import in_process
from .test_cli_transform import PNG, TINY, assert_learned_and_recorded


@pytest.fixture(scope="module")
def trained(fake_mnist, tmp_path_factory):
    sweep = tmp_path_factory.mktemp("compensate")
    p = in_process("-m", "experiment=curves_compensate", *TINY, "task.six_nine_images=4", "task.six_nine_step=30",
                   f"hydra.sweep.dir={sweep}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    for job in ("0_hypernet_deep", "1_ae"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok", p.stderr
    return sweep


@pytest.mark.slow  # the trained fixture runs the command
@pytest.mark.parametrize("job,params", [("0_hypernet_deep", 3_040_675), ("1_ae", 13_138_315)])
def test_tiny_run_writes_every_file(trained, job, params):
    run = trained / job
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["task"] == "compensate" and m["total_params"] == params
    assert "4, 9 trained in [-45, 45], the others in [-180, 180)" in m["protocol"]
    assert_learned_and_recorded(m, pd.read_csv(run / "history.csv"))
    assert m["six_nine_images_6"] == m["six_nine_images_9"] == 4
    curve = pd.read_csv(run / "recon_vs_angle.csv")
    assert list(curve.columns) == ["angle", "digit_4", "digit_9", "digit_3"] and len(curve) == 200
    six_nine = pd.read_csv(run / "six_nine.csv")
    assert list(six_nine.columns) == ["angle", "normalised_6", "input_6", "normalised_9", "input_9"]
    # the metrics are the figure's own numbers: every angle, and the inside / outside [-45, 45] split
    both = six_nine[["normalised_6", "normalised_9"]]
    assert m["six_nine_confused"] == pytest.approx(both.values.mean())
    assert m["six_nine_confused_in"] == pytest.approx(both[six_nine.angle.between(-45, 45)].values.mean())
    assert m["confused_9_out"] == pytest.approx(six_nine.normalised_9[~six_nine.angle.between(-45, 45)].mean())
    assert six_nine.angle.tolist() == list(range(-180, 180, 30))  # the full circle
    for png in ("recon_vs_angle.png", "grid_digit4.png", "grid_digit6.png", "grid_digit9.png", "six_nine.png",
                "curves.png"):
        data = (run / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, png
    assert (run / "model.pt").stat().st_size > 1_000_000 and len(pd.read_csv(run / "history.csv")) == 2


@pytest.mark.slow
def test_transfer_and_the_report(trained, fake_mnist, tmp_path):
    images = tmp_path / "mine.npy"
    np.save(images, (np.random.default_rng(0).random((5, 28, 28)) > 0.8).astype(np.uint8) * 255)
    out = trained / "transfer"
    p = in_process("task=compensate", f"eval.run={trained / '0_hypernet_deep'}", f"eval.images={images}",
                   f"hydra.run.dir={out}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "transfer" and m["task"] == "compensate" and m["model"] == "hypernet_deep"
    curve = pd.read_csv(out / "recon_vs_angle.csv")
    assert m["n_images"] == 5 and m["curve_mean"] == pytest.approx(curve.images.mean()) and m["curve_mean"] > 0
    assert list(pd.read_csv(out / "recon_vs_angle.csv").columns) == ["angle", "images"]
    assert (out / "grid_images.png").read_bytes().startswith(PNG)

    r = in_process(str(trained), command="hyperbench-report")
    assert r.returncode == 0, r.stderr
    assert "## Rotation compensation without a known angle (Potapov 2018b)" in r.stdout
    assert "## Compensation transfer to mine.npy" in r.stdout and "## Learning to rotate" not in r.stdout
    table = pd.read_csv(trained / "report" / "table_compensate.csv")
    assert table.model.tolist() == ["hypernet_deep", "ae"] and "6/9 confused: all" in table
    for png in ("compensate_digit4.png", "compensate_transfer_mine.npy.png"):
        assert (trained / "report" / png).read_bytes().startswith(PNG)


@pytest.mark.slow  # the trained fixture runs the command
def test_bad_input_exits_2_with_one_paragraph(trained, tmp_path, run_cli):
    transform_run = tmp_path / "transform_run"
    (transform_run / ".hydra").mkdir(parents=True)
    (transform_run / ".hydra" / "config.yaml").write_text("task:\n  name: transform\n")
    (transform_run / "model.pt").write_bytes(b"x")
    for args, message in (
            (["model=hyper5_5"], "task=compensate needs a model whose control can be the image itself: "
                                 "model=hypernet_deep, hypernet_shallow, ae or aae; model=hyper5_5 (arch mnist_hyper) "
                                 "cannot take one"),
            ([f"eval.run={transform_run}", "eval.images=symbols"], "is a task=transform run; a task=compensate "
                                                                   "run is needed"),
            ([f"eval.run={trained / '1_ae'}"], "Transfer evaluation needs both eval.run=<a task=compensate run"),
            (["task.six_nine_step=7"], "task.six_nine_step must be a positive number of degrees that divides 360")):
        p = run_cli("task=compensate", *args, f"hydra.run.dir={tmp_path / 'out'}", data_root=trained / "nodata")
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
