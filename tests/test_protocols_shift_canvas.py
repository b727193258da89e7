"""transform=shift68: the semantic-vision shift protocol (68x68 canvas, +-20 px, 4 and 9 within +-5, the curve
along dx = dy), in process and through the real command."""
import json

import pandas as pd
import pytest
import torch

from hyperbench.models import create_model
from hyperbench.protocols.families import transform_from_config

from .conftest import in_process


@pytest.fixture
def shift68(cfg_of):
    cfg = cfg_of("task=transform", "transform=shift68")
    return transform_from_config(cfg.transform, cfg.rotation, background=-1.0)


def test_digits_are_centred_on_the_canvas_and_shifts_lose_nothing(shift68):
    assert shift68.canvas == 68 and shift68.restricted == (4, 9)
    x = torch.full((2, 1, 28, 28), -1.0)
    x[:, :, 5:20, 10:14] = 1.0
    big = shift68.on_canvas(x)
    assert big.shape == (2, 1, 68, 68)
    torch.testing.assert_close(big[:, :, 20:48, 20:48], x)  # 20 px of background on every side
    assert (big[:, :, :20] == -1).all() and (big[:, :, 48:] == -1).all() and (big[..., :20] == -1).all()
    moved = shift68.apply(big, torch.tensor([[20.0, 20.0], [-20.0, -20.0]]))
    torch.testing.assert_close(moved[0, :, 45:60, 50:54], x[0, :, 5:20, 10:14], atol=1e-5, rtol=0)  # right, down
    torch.testing.assert_close(moved[1, :, 5:20, 10:14], x[1, :, 5:20, 10:14], atol=1e-5, rtol=0)  # left, up
    torch.testing.assert_close((moved + 1).sum((1, 2, 3)), (x + 1).sum((1, 2, 3)), atol=1e-3, rtol=0)
    assert shift68.image_shape((1, 28, 28)) == (1, 68, 68)


def test_ranges_and_the_diagonal_curve(shift68):
    y = torch.arange(10).repeat(3000)
    raw = shift68.sample(y, torch.Generator().manual_seed(0))
    r = (y == 4) | (y == 9)
    assert raw[r].abs().max() <= 5 and raw[~r].abs().max() > 19.9 and raw[~r].abs().max() <= 20
    values = shift68.curve_values(None)
    assert len(values) == 81 and values[0] == -20 and values[-1] == 20
    axis = shift68.along_axis(values)
    torch.testing.assert_close(axis[:, 0], axis[:, 1])  # dy = dx
    assert "68x68 canvas" in shift68.describe() and shift68.axis_unit == "pixels, dy = dx"


@pytest.mark.parametrize("arch", ["ae", "hypernet_deep"])
def test_models_take_the_canvas(arch):
    m = create_model({"ae": "transform_ae"}.get(arch, arch), n_params=2, image_size=68)
    out = m(torch.zeros(3, 1, 68, 68), torch.zeros(3, 2))
    assert out.shape == (3, 1, 68, 68)


@pytest.mark.parametrize("override,message", [("transform.canvas=30", "positive multiple of 4"),
                                              ("transform.canvas=20", "smaller than the 28x28 images"),
                                              ("transform.curve_axis=dy", "transform.curve_axis must be dx")])
def test_bad_canvas_settings_exit_2(override, message, fake_mnist, run_cli):
    p = run_cli("task=transform", "transform=shift68", "model=hypernet_deep", override, "data.train_size=100",
                   "data.val_size=100", data_root=fake_mnist)
    assert p.returncode == 2 and message in p.stderr, p.stderr


@pytest.mark.slow
def test_tiny_shift68_run_writes_the_diagonal_curve(fake_mnist, tmp_path):
    run = tmp_path / "run"
    p = in_process("task=transform", "transform=shift68", "model=hypernet_deep", "data.train_size=200",
                   "data.val_size=100", "trainer.batch_size=100", "trainer.epochs=2", "task.epoch_eval_images=50",
                   "task.metric_images=5", "task.curve_images=3", "task.grid_images=2", "transform.curve_step=5",
                   f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and "68x68 canvas" in m["protocol"]
    curve = pd.read_csv(run / "recon_vs_dx.csv")
    assert curve.dx.tolist() == [-20, -15, -10, -5, 0, 5, 10, 15, 20]
    h = pd.read_csv(run / "history.csv")
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
