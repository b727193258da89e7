"""The shared engine on synthetic data: it learns, selects by validation, is deterministic,
stops on a diverging loss and decays the lr per step."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from hyperbench.data import DataBundle, Split
from hyperbench.training.engine import Trainer, make_optimizer, make_schedule
from hyperbench.training.objectives import Objective
from hyperbench.errors import ConfigError, DivergenceError
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


# --- checkpoints and resume (in process) ---

from hyperbench.training.checkpoint import CHECKPOINT, load_checkpoint  # noqa: E402
from hyperbench.errors import CheckpointError, ConfigError  # noqa: E402


def _strip(history):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


def _fit(run_dir, loss=None, model=None, **cfg):
    torch.manual_seed(7)  # the model's init
    m = model if model is not None else net()
    tr = Trainer(trainer_cfg(**cfg), torch.device("cpu"), seed=3, log=lambda s: None)
    tr.run_dir = run_dir
    obj = OBJ if loss is None else Objective(loss=loss, evaluate=accuracy_eval)
    return tr, tr.fit(m, bundle(), obj)


def _interrupting_loss(after_steps):
    calls = {"n": 0}

    def loss(m, x, y):
        calls["n"] += 1
        if calls["n"] > after_steps:
            raise KeyboardInterrupt
        return F.cross_entropy(m(x), y)

    return loss


def test_resumed_fit_equals_uninterrupted_fit(tmp_path):
    _, full = _fit(tmp_path / "a", epochs=3)
    with pytest.raises(KeyboardInterrupt):  # 8 steps per epoch: stopped in epoch 3
        _fit(tmp_path / "b", loss=_interrupting_loss(19), epochs=3)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 2
    _, resumed = _fit(tmp_path / "b", resume=True, epochs=3)
    assert resumed.resumed_from_epoch == 2 and _strip(resumed.history) == _strip(full.history)
    assert resumed.best == full.best and resumed.best_epoch == full.best_epoch
    assert all(torch.equal(resumed.best_state[k], full.best_state[k]) for k in full.best_state)


def test_resuming_a_finished_run_with_more_epochs_extends_it(tmp_path):
    """trainer.epochs may change on resume: 2 epochs, then resumed to 3, equals 3 epochs from the start."""
    _, full = _fit(tmp_path / "a", epochs=3)
    _fit(tmp_path / "b", epochs=2)
    _, extended = _fit(tmp_path / "b", resume=True, epochs=3)
    assert extended.resumed_from_epoch == 2 and _strip(extended.history) == _strip(full.history)
    assert all(torch.equal(extended.best_state[k], full.best_state[k]) for k in full.best_state)


def test_checkpoint_interval_and_final_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, loss=_interrupting_loss(8 * 3 + 1), checkpoint_every=2)  # epochs 1-3 done
    assert load_checkpoint(tmp_path / CHECKPOINT)["epoch"] == 2
    _fit(tmp_path / "b", checkpoint_every=2, epochs=3)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 3  # the last epoch is always saved


def test_diverging_loss_never_overwrites_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss(m, x, y):
        calls["n"] += 1
        out = F.cross_entropy(m(x), y)
        return out if calls["n"] <= 16 else out * math.nan

    with pytest.raises(DivergenceError, match=r"checkpoint.pt of epoch 2"):
        _fit(tmp_path, loss=loss, log_every=1)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_resume_refuses_a_checkpoint_of_another_model_or_recipe(tmp_path):
    _fit(tmp_path, epochs=1)
    wider = nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        _fit(tmp_path, model=wider, epochs=1, resume=True)
    with pytest.raises(ConfigError, match=r"trainer.lr=0.01 there, 0.02 here"):
        _fit(tmp_path, epochs=1, lr=0.02, resume=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, damage):
    _fit(tmp_path, epochs=1)
    f = tmp_path / CHECKPOINT
    if damage == "garbage":
        f.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    else:
        torch.save({"weights": torch.zeros(3)}, f)
    with pytest.raises(CheckpointError, match="damaged or not a hyperbench checkpoint|not a hyperbench-checkpoint"):
        _fit(tmp_path, epochs=2, resume=True)


def test_bf16_autocast_on_cpu_still_learns_and_keeps_fp32_weights():
    res = Trainer(trainer_cfg(amp="bf16"), torch.device("cpu"), seed=0, log=lambda s: None).fit(net(), bundle(), OBJ)
    assert res.best["val_acc"] > 0.9
    assert all(v.dtype == torch.float32 for v in res.best_state.values())


def test_amp_auto_is_off_on_cpu_and_fp16_needs_cuda():
    from hyperbench.training.engine import amp_dtype
    from hyperbench.errors import ConfigError

    assert amp_dtype("auto", torch.device("cpu")) is None and amp_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ConfigError, match="trainer.amp=fp16 needs a CUDA device"):
        amp_dtype("fp16", torch.device("cpu"))


def test_classifier_loss_uses_the_models_own_losses_when_it_has_them():
    """Capsule networks bring training_loss (margin + reconstruction) and score_loss; others get cross-entropy."""
    from hyperbench.tasks.classify import classifier_loss, score_loss

    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    plain = nn.Linear(3, 3)
    assert torch.allclose(classifier_loss(plain, x, y), F.cross_entropy(plain(x), y))
    assert torch.allclose(score_loss(plain, plain(x), y), F.cross_entropy(plain(x), y, reduction="sum"))

    class Own(nn.Linear):
        def training_loss(self, x, y):
            return torch.tensor(7.0)

        def score_loss(self, scores, y):
            return scores.sum() * 0 + 3.0

    own = Own(3, 3)
    assert classifier_loss(own, x, y).item() == 7.0
    out = accuracy_eval(own, Split(x, y), batch_size=3)
    assert out["loss"] == (3.0 + 3.0) / 4  # two batches of score_loss 3, averaged over 4 images


def test_tensorflow_rmsprop_takes_tiny_first_steps_where_torch_takes_ten_times_the_lr():
    """trainer.optimizer=rmsprop_tf: TensorFlow 1's accumulator starts at 1 (decay 0.9), so the first step is
    lr * g / sqrt(0.9 + 0.1 g^2); torch's starts at 0, so its first step is lr * g / (0.1 |g|) = 10 lr sign(g)."""
    from hyperbench.training.engine import make_optimizer
    from omegaconf import OmegaConf
    g = torch.tensor([1e-4, -2e-3, 0.5])
    steps = {}
    for name in ("rmsprop", "rmsprop_tf"):
        w = torch.nn.Parameter(torch.zeros(3))
        opt = make_optimizer([w], OmegaConf.create({"optimizer": name, "lr": 1e-3, "momentum": 0.0,
                                                    "weight_decay": 0.0}))
        w.grad = g.clone()
        opt.step()
        steps[name] = -w.detach()
    torch.testing.assert_close(steps["rmsprop"], 1e-3 * g / (0.1 * g.abs() + 1e-8), rtol=1e-5, atol=0)
    torch.testing.assert_close(steps["rmsprop_tf"], 1e-3 * g / (torch.sqrt(0.9 + 0.1 * g ** 2) + 1e-10),
                               rtol=1e-5, atol=0)
    assert steps["rmsprop_tf"].abs()[0] < 1e-6 < 9e-3 < steps["rmsprop"].abs()[0]


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_the_fused_optimizer_takes_the_same_steps_up_to_float_rounding(name):
    """trainer.fused=true (torch's fused kernel) against the default single-tensor loop: ten steps on the same
    parameters and gradients end within float rounding of each other."""
    torch.manual_seed(0)
    start = [torch.randn(300, 64), torch.randn(300)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(10)]
    ends = {}
    for fused in (False, True):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = make_optimizer(params, OmegaConf.create({"optimizer": name, "lr": 1e-2, "momentum": 0.9,
                                                       "weight_decay": 1e-4, "fused": fused}))
        assert opt.defaults.get("fused") is (True if fused else None)
        for g in grads:
            for p, gp in zip(params, g):
                p.grad = gp.clone()
            opt.step()
        ends[fused] = [p.detach() for p in params]
    for a, b in zip(ends[False], ends[True]):
        assert not torch.equal(a, start[0] if a.dim() == 2 else start[1])
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_is_refused_for_an_optimizer_without_a_fused_kernel():
    with pytest.raises(ConfigError, match="fused kernel for adam and sgd, not for trainer.optimizer=rmsprop"):
        make_optimizer([torch.nn.Parameter(torch.zeros(2))], OmegaConf.create(
            {"optimizer": "rmsprop", "lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "fused": True}))
