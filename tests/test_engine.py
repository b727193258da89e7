"""The shared engine on synthetic data: it learns, selects by validation, is deterministic,
stops on a diverging loss and decays the lr per step."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from hyperbench.data import DataBundle, Split
from hyperbench.engine import Objective, Trainer, make_optimizer, make_schedule
from hyperbench.errors import DivergenceError
from hyperbench.tasks.classify import accuracy_eval

from .conftest import CONF

# The trainer group as composed with data=mnist (its batch/lr/decay come from data.recipe).
_COMPOSED = OmegaConf.create({"data": OmegaConf.load(CONF / "data" / "mnist.yaml"),
                              "trainer": OmegaConf.load(CONF / "trainer" / "default.yaml")})
TRAINER = OmegaConf.create(OmegaConf.to_container(_COMPOSED.trainer, resolve=True))


def blobs(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    centers = torch.eye(4, 16) * 4
    return Split((centers[y] + torch.randn(n, 16, generator=g)).view(n, 1, 4, 4), y)


def bundle() -> DataBundle:
    return DataBundle("blobs", blobs(512, 0), blobs(256, 1), blobs(256, 2), 4)


def net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def trainer_cfg(**kw):
    cfg = OmegaConf.merge(TRAINER, {"epochs": 4, "batch_size": 64, "lr": 0.01, "progress": False,
                                    "channels_last": False})
    return OmegaConf.merge(cfg, kw)


OBJ = Objective(loss=lambda m, x, y: F.cross_entropy(m(x), y), evaluate=accuracy_eval)


def test_engine_learns_and_keeps_the_best_validation_epoch():
    torch.manual_seed(0)
    res = Trainer(trainer_cfg(), torch.device("cpu"), seed=0, log=lambda s: None).fit(net(), bundle(), OBJ)
    assert len(res.history) == 4
    assert res.best["test_acc"] > 0.95
    best_row = max(res.history, key=lambda r: r["val_acc"])
    assert res.best_epoch == best_row["epoch"] and res.best["test_acc"] == best_row["test_acc"]
    assert set(res.best_state) == {"1.weight", "1.bias", "3.weight", "3.bias"}


def test_same_seed_same_history():
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the model's init
        m = net()
        runs.append(Trainer(trainer_cfg(), torch.device("cpu"), seed=5, log=lambda s: None).fit(m, bundle(), OBJ))
    strip = [[{k: v for k, v in r.items() if k != "epoch_time_s"} for r in res.history] for res in runs]
    assert strip[0] == strip[1]


def test_nan_loss_stops_with_divergence_error_and_keeps_partial_history():
    calls = {"n": 0}

    def loss(m, x, y):
        calls["n"] += 1
        out = F.cross_entropy(m(x), y)
        return out if calls["n"] <= 16 else out * math.nan  # 8 steps/epoch: epochs 1-2 fine

    tr = Trainer(trainer_cfg(log_every=1), torch.device("cpu"), seed=0, log=lambda s: None)
    with pytest.raises(DivergenceError, match="epoch 3, step 1"):
        tr.fit(net(), bundle(), Objective(loss=loss, evaluate=accuracy_eval))
    assert tr.result.status == "diverged" and len(tr.result.history) == 2 and tr.result.best_state is not None


def test_lr_decays_every_step_down_to_the_floor():
    cfg = trainer_cfg(lr=0.005, lr_decay=0.5, min_lr=0.001)
    opt = make_optimizer(net().parameters(), cfg)
    sched = make_schedule(opt, cfg)
    lrs = []
    for _ in range(5):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.005, 0.0025, 0.00125, 0.001, 0.001])


def test_accuracy_eval_counts_exactly():
    class Fixed(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3]

    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]).view(4, 1, 1, 3)
    y = torch.tensor([0, 1, 0, 2])  # two right
    out = accuracy_eval(Fixed(), Split(x, y), batch_size=3)
    assert out["acc"] == 0.5
    assert out["loss"] == pytest.approx(F.cross_entropy(x.view(4, 3), y).item())


def test_progress_bar_is_drawn_when_asked(capsys):
    Trainer(trainer_cfg(progress=True, epochs=1, log_every=1), torch.device("cpu"), seed=0,
            log=lambda s: None).fit(net(), bundle(), OBJ)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "/8 [" in err and "loss=" in err  # tqdm may skip redraws: no 8/8
