"""task=continual: metrics on hand-made matrices, the models' exact sizes, the benchmarks, the methods' state,
bad input (exit 2), and kill -9 in the middle of a task sequence then resume = the same accuracy matrix."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hyperbench.continual.benchmarks import check_benchmark, load_benchmark
from hyperbench.continual.methods import HNet, check_method, empirical_fisher
from hyperbench.continual.metrics import average_accuracy, backward_transfer, forgetting, summary
from hyperbench.errors import ConfigError
from hyperbench.models import create_model
from hyperbench.models.multihead_mlp import MultiHeadMLP, TaskHypernet, mlp_forward, target_shapes
from tests.conftest import TINY, hyperbench, in_process

NAN = float("nan")


def test_metrics_of_a_hand_made_matrix():
    r = [[0.90, NAN, NAN],
         [0.80, 0.95, NAN],
         [0.70, 0.90, 0.99]]
    assert average_accuracy(r) == pytest.approx((0.70 + 0.90 + 0.99) / 3)
    assert backward_transfer(r) == pytest.approx(((0.70 - 0.90) + (0.90 - 0.95)) / 2)
    assert forgetting(r) == pytest.approx(((0.90 - 0.70) + (0.95 - 0.90)) / 2)
    assert summary(r)["avg_acc_after_task"] == pytest.approx([0.90, 0.875, (0.70 + 0.90 + 0.99) / 3])


def test_forgetting_uses_the_best_earlier_accuracy_and_differs_from_bwt():
    r = [[0.90, NAN, NAN],
         [0.95, 0.80, NAN],  # task 0 improved after task 1 (positive transfer), then dropped
         [0.85, 0.90, 0.99]]
    assert backward_transfer(r) == pytest.approx(((0.85 - 0.90) + (0.90 - 0.80)) / 2)  # +0.025
    assert forgetting(r) == pytest.approx(((0.95 - 0.85) + (0.80 - 0.90)) / 2)  # 0.0
    one = summary([[0.97]])  # one task, or a joint run's single row
    assert one["avg_acc"] == pytest.approx(0.97) and one["bwt"] is None and one["forgetting"] is None


def test_hypernetwork_sizes_chunks_and_generated_weights():
    torch.manual_seed(0)
    h = TaskHypernet(784, [100, 100], 2, 5, [100, 75, 50], 64, 12, 2000)
    assert h.n_target == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 2 + 2 == 88802
    assert h.n_chunks == math.ceil(88802 / 2000) == 45
    hnet = (64 + 12) * 100 + 100 + 100 * 75 + 75 + 75 * 50 + 50 + 50 * 2000 + 2000 + 45 * 12
    assert h.hnet_params() == hnet and sum(p.numel() for p in h.parameters()) == hnet + 5 * 64
    ws = h.generate(3)
    assert [tuple(w.shape) for w in ws] == target_shapes(784, [100, 100], 2)
    x = torch.rand(7, 784)
    assert torch.equal(h(x, 3), mlp_forward(x, ws))
    assert torch.allclose(h(x, torch.tensor([3] * 7)), h(x, 3))
    assert not torch.allclose(h(x, 1), h(x, 3))  # another task embedding, other weights
    # initial generated weights within a factor 2 of nn.Linear's scale (std 1/sqrt(3 fan_in)), for any task
    for t in (0, 3):
        for w, fan_in in zip(h.generate(t)[::2], (784, 100, 100)):
            assert 0.5 < w.std().item() * math.sqrt(3 * fan_in) < 2.0
    whole = TaskHypernet(784, [20], 10, 2, [8], 4, 3, None)  # no chunking: one chunk, no chunk embeddings
    assert whole.n_chunks == 1 and whole.chunk_emb is None and whole.out.out_features == 784 * 20 + 20 + 20 * 10 + 10


def test_multihead_mlp_sizes_and_per_sample_heads():
    torch.manual_seed(0)
    m = MultiHeadMLP(784, [100, 100], 5, 2)
    assert sum(p.numel() for p in m.parameters()) == 784 * 100 + 100 + 100 * 100 + 100 + 5 * (100 * 2 + 2) == 89610
    x, task = torch.rand(6, 784), torch.tensor([0, 1, 2, 3, 4, 1])
    mixed = m(x, task)
    for i, t in enumerate(task.tolist()):
        assert torch.allclose(mixed[i], m(x[i:i + 1], t)[0], atol=1e-6)
    plain = create_model("cl_mlp", num_classes=10, in_channels=1, image_size=28)  # task=classify model=cl_mlp
    assert plain(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_benchmarks_split_digits_and_permute_from_the_seed(cfg_of, fake_mnist, monkeypatch):
    monkeypatch.setenv("HYPERBENCH_DATA", str(fake_mnist))
    cfg = cfg_of("task=continual", "data=split_mnist", "data.val_size=100", "data.train_size=30")
    b = load_benchmark(cfg.data, 0, torch.device("cpu"))
    assert b.n_tasks == 5 and b.classes == 2 and b.perms is None
    for t, bundle in enumerate(b.tasks):
        assert set(bundle.test.y.tolist()) <= {2 * t, 2 * t + 1} and len(bundle.train) <= 30
        task, label = b.decode(bundle.train.y)
        assert (task == t).all() and set(label.tolist()) <= {0, 1}
    cfg = cfg_of("task=continual", "data=permuted_mnist", "data.tasks=4", "data.val_size=100")
    p0, p0_again, p1 = (load_benchmark(cfg.data, s, torch.device("cpu")) for s in (0, 0, 1))
    assert torch.equal(p0.perms[0], torch.arange(784)) and torch.equal(p0.perms, p0_again.perms)
    assert not torch.equal(p0.perms[1:], p1.perms[1:])
    x = p0.tasks[2].test.x[:5]
    assert torch.equal(p0.prepare(x, 2), x[:, p0.perms[2]])
    assert torch.equal(p0.prepare(x, torch.full((5,), 2)), x[:, p0.perms[2]])
    assert len(p0.joint().train) == 4 * len(p0.tasks[0].train)


def test_task_counts_and_method_settings_are_checked(cfg_of):
    assert check_benchmark(cfg_of("task=continual", "data=split_mnist").data) == (5, 2)
    with pytest.raises(ConfigError, match="has 5 tasks"):
        check_benchmark(cfg_of("task=continual", "data=split_mnist", "data.tasks=6").data)
    with pytest.raises(ConfigError, match="needs a continual-learning benchmark"):
        check_benchmark(cfg_of("task=continual", "data=mnist").data)
    with pytest.raises(ConfigError, match="cl.beta must be a non-negative"):
        check_method(cfg_of("task=continual", "cl=hnet", "cl.beta=-0.1").cl)
    with pytest.raises(ConfigError, match="cl=si needs the setting cl.c"):
        check_method(cfg_of("task=continual", "cl=si", "cl.c=null").cl)
    assert check_method(cfg_of("task=continual", "data=permuted_mnist", "cl=ewc").cl) == "ewc"


def test_hnet_regulariser_is_zero_at_its_targets_and_grows_when_they_move():
    torch.manual_seed(0)
    model = TaskHypernet(10, [6], 2, 3, [8], 4, 3, 20)
    method = HNet(OmegaConf.create({"beta": 0.5}))
    method.after_task(model, 0, None, None)  # targets: what it generates for task 0 now
    method.before_task(model, 1)
    assert method.penalty(model).item() == 0.0
    with torch.no_grad():
        model.out.bias.add_(0.1)  # every generated weight moves by 0.1
    assert method.penalty(model).item() == pytest.approx(0.5 / 1 * model.n_target * 0.01, rel=1e-4)
    model.task_emb.grad = None
    method.penalty(model).backward()
    assert model.task_emb.grad is None or model.task_emb.grad.abs().sum() == 0  # earlier embeddings held fixed


def test_empirical_fisher_is_the_mean_squared_per_sample_gradient():
    torch.manual_seed(0)
    model = MultiHeadMLP(5, [4], 2, 3)

    class Bench:
        classes = 3

        def decode(self, y):
            return y // 3, y % 3

        def prepare(self, x, t):
            return x

    from hyperbench.data import Split

    x, y = torch.rand(6, 5), torch.tensor([3, 4, 5, 3, 4, 5])  # task 1, labels 0..2
    fisher = empirical_fisher(model, 1, Split(x, y), Bench(), samples=6, batch=4)
    manual = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(6):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1], 1), y[i:i + 1] % 3).backward()
        for k, p in model.named_parameters():
            manual[k] += p.grad.pow(2) / 6
    for k in manual:
        assert torch.allclose(fisher[k], manual[k], atol=1e-7), k
    assert fisher["head_w"][0].abs().sum() == 0  # task 0's head plays no part in task 1


@pytest.mark.parametrize("overrides, words", [
    (["data=split_mnist", "data.tasks=6"], "data=split_mnist has 5 tasks"),
    (["cl=hnet", "cl.beta=-1"], "cl.beta must be a non-negative number"),
    (["cl=ewc", "cl.lambda=null"], "cl=ewc needs the setting cl.lambda"),
])
def test_bad_continual_input_exits_2_with_one_paragraph(tmp_path, fake_mnist, overrides, words, run_cli):
    res = run_cli("task=continual", *overrides, *TINY, f"hydra.run.dir={tmp_path / 'run'}", data_root=fake_mnist)
    assert res.returncode == 2, res.stderr[-2000:]
    assert words in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "bad_config"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing trained


CL_TINY = ["data=permuted_mnist", "data.tasks=3", "data.val_size=100", "data.train_size=300", "trainer.epochs=2",
           "trainer.batch_size=100", "trainer.eval_batch_size=500", "cl.fisher_samples=50"]


# si: the interrupted task restarts (its path integral is not in the engine's checkpoint)
@pytest.mark.slow
@pytest.mark.parametrize("method", ["hnet", "si"])
def test_kill_9_inside_the_sequence_then_resume_gives_the_same_accuracy_matrix(tmp_path, fake_mnist, method,
                                                                              monkeypatch):
    args = ["task=continual", f"cl={method}", *CL_TINY]
    if method != "ewc":
        args.remove("cl.fisher_samples=50")
    whole = in_process(*args, f"hydra.run.dir={tmp_path / 'whole'}", data_root=fake_mnist)
    assert whole.returncode == 0, whole.stderr[-3000:]
    # SIGKILL after epoch 1 of task 1 (task 0 done)
    killed = hyperbench(*args, f"hydra.run.dir={tmp_path / 'cut'}", data_root=fake_mnist, kill_after_epoch=1,
                        kill_stage="1")
    assert killed.returncode == -9
    assert not (tmp_path / "cut" / "acc_matrix.csv").exists()
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert state["continual"]["tasks_done"] == 1 and len(state["continual"]["acc_rows"]) == 1
    if method == "hnet":
        assert len(state["continual"]["method"]["targets"]) == 1  # the stored regulariser target of task 0
    else:
        assert state["continual"]["method"]["importance"]  # Fisher / SI importances
    assert (tmp_path / "cut" / "tasks" / "1" / "checkpoint.pt").exists()  # the engine's, mid-task 1
    resumed = in_process(*args, "trainer.resume=true", f"hydra.run.dir={tmp_path / 'cut'}", data_root=fake_mnist)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = pd.read_csv(tmp_path / "whole" / "acc_matrix.csv", index_col=0)
    b = pd.read_csv(tmp_path / "cut" / "acc_matrix.csv", index_col=0)
    assert a.shape == (3, 3)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["tasks"] == 3
    hist = pd.read_csv(tmp_path / "cut" / "history.csv")
    assert list(hist.stage) == [0, 0, 1, 1, 2, 2] and list(hist.global_epoch) == [1, 2, 3, 4, 5, 6]
    for f in ("acc_matrix.png", "curves.png", "model.pt"):
        assert (tmp_path / "cut" / f).exists()
