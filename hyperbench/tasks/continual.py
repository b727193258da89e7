"""task=continual: tasks one after another on the one engine; after each, every task so far is evaluated.

    hyperbench task=continual data=split_mnist cl=hnet
    hyperbench task=continual data=permuted_mnist cl=ewc trainer.epochs=2

Task-incremental (the task identity is given at test time and picks the head / the generated weights); the
other scenarios (domain- and class-incremental) are not supported. Each task is one Trainer.fit (fresh optimizer,
trainer.epochs epochs, seeded by seed and task index) in <run>/tasks/<t>/ (its history.csv and, while it runs,
its checkpoint.pt); the model after the last epoch of a task goes on to the next. cl=joint is one fit on all
tasks (<run>/tasks/joint/).

Writes acc_matrix.csv and acc_matrix.png (rows: after task i; columns: task j; test accuracy), metrics.json
(avg_acc, bwt, forgetting, the matrix, parameter counts), history.csv (every task's epochs, in sequence),
curves.png (per-task learning curves) and model.pt (the final weights).

Resume: <run>/checkpoint.pt holds the sequence state after every task (tasks done, the matrix rows, the method's
Fisher / SI importances / hypernetwork targets, the model, the histories), in the engine's checkpoint format, so
trainer.resume finds it like any run's. A run killed inside task t resumes from the sequence state and from
<run>/tasks/t/checkpoint.pt (the engine's, mid-task; cl=si restarts task t, its path integral is not in it).
Every fit reseeds itself, so the resumed accuracy matrix equals the uninterrupted one (on CPU).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ..continual.benchmarks import Benchmark, check_benchmark, load_benchmark
from ..continual.methods import Method, make_method
from ..continual.metrics import summary
from ..data import Split
from ..training.checkpoint import CHECKPOINT, CHECKPOINT_FORMAT, load_checkpoint
from ..training.engine import Trainer, resolve_device
from ..training.objectives import Objective
from ..errors import CheckpointError
from ..files import save_figure, save_torch, write_text
from ..models.multihead_mlp import MultiHeadMLP, TaskHypernet
from .common import fit_recorded, log, param_count, run_header, write_history, finish

IN_FEATURES = 28 * 28


def build_model(cfg: DictConfig, bench: Benchmark):
    hidden = list(cfg.model.hidden)
    if cfg.cl.name == "hnet":
        c = cfg.cl
        return TaskHypernet(IN_FEATURES, hidden, bench.classes, bench.n_tasks, list(c.hidden), int(c.task_emb_dim),
                            int(c.get("chunk_emb_dim") or 0), c.get("chunk_size"), str(c.activation))
    return MultiHeadMLP(IN_FEATURES, hidden, bench.n_tasks, bench.classes)


def continual_objective(bench: Benchmark, method: Method) -> Objective:
    def loss(model, x, y):
        task, label = bench.decode(y)
        if method.sequential:
            task = method.task  # one task per fit: generate / pick its weights once
        logits = model(bench.prepare(x, task), task)
        ce = F.cross_entropy(logits.float(), label)
        pen = method.penalty(model)
        return ce if pen is None else ce + pen

    def evaluate(model, split: Split, batch_size: int) -> dict[str, float]:
        total, correct = torch.zeros((), device=split.y.device), torch.zeros((), device=split.y.device)
        for i in range(0, len(split), batch_size):
            task, label = bench.decode(split.y[i:i + batch_size])
            logits = model(bench.prepare(split.x[i:i + batch_size], task), task).float()
            total += F.cross_entropy(logits, label, reduction="sum")
            correct += (logits.argmax(1) == label).sum()
        n = max(1, len(split))
        return {"loss": total.item() / n, "acc": correct.item() / n}

    return Objective(loss=loss, evaluate=evaluate, monitor="acc")


@torch.no_grad()
def task_accuracy(model, bench: Benchmark, t: int, batch_size: int) -> float:
    """Test accuracy on task t, its own head / generated weights."""
    model.eval()
    split = bench.tasks[t].test
    correct = torch.zeros((), device=split.y.device, dtype=torch.long)  # summed on the device, read once
    for i in range(0, len(split), batch_size):
        _, label = bench.decode(split.y[i:i + batch_size])
        logits = model(bench.prepare(split.x[i:i + batch_size], t), t)
        correct += (logits.argmax(1) == label).sum()
    return correct.item() / max(1, len(split))


def _sequence_state(model, method, done: int, rows: list, histories: list, wall: float, cfg) -> dict:
    from omegaconf import OmegaConf

    flat = [r for h in histories for r in h]
    return {"format": CHECKPOINT_FORMAT, "epoch": len(flat), "model": model.state_dict(), "optimizer": {},
            "schedule": {}, "rng": {}, "history": flat,
            "continual": {"tasks_done": done, "acc_rows": rows, "method": method.state_dict(),
                          "histories": histories, "wall_time_s": wall, "method_name": str(cfg.cl.name),
                          "data": str(cfg.data.name)},
            "trainer": OmegaConf.to_container(cfg.trainer, resolve=True)}


def _load_sequence(path: Path, cfg) -> dict | None:
    if cfg.trainer.get("resume") in (None, False) or not path.exists():
        return None
    state = load_checkpoint(path)
    seq = state.get("continual")
    if seq is None or seq.get("method_name") != str(cfg.cl.name) or seq.get("data") != str(cfg.data.name):
        raise CheckpointError(f"The checkpoint {path} is not a task=continual run of cl={cfg.cl.name} on "
                              f"data={cfg.data.name}; resume that run's own directory, or start afresh with "
                              f"trainer.resume=false.")
    return state


def run(cfg: DictConfig, run_dir: Path) -> dict:
    n_tasks, classes = check_benchmark(cfg.data)
    method = make_method(cfg.get("cl"))  # settings checked before any data is read
    device = resolve_device(cfg.trainer.device)
    bench = load_benchmark(cfg.data, int(cfg.seed), device)
    model = build_model(cfg, bench).to(device)
    header = {**run_header(cfg, device), "cl": str(cfg.cl.name)}
    target = sum(w.numel() for w in (model.generate(0) if isinstance(model, TaskHypernet) else model.weights(0)))
    counts = {"total_params": param_count(model), "target_params_per_task": target,
              **({"hnet_params": model.hnet_params(), "chunks": model.n_chunks}
                 if isinstance(model, TaskHypernet) else {}),
              "tasks": n_tasks, "classes_per_task": classes, "epochs_per_task": int(cfg.trainer.epochs),
              "train_size_per_task": [len(b.train) for b in bench.tasks],
              "lr": float(cfg.trainer.lr), "batch_size": int(cfg.trainer.batch_size)}
    stages = list(range(n_tasks)) if method.sequential else ["joint"]
    ckpt = run_dir / CHECKPOINT
    state = _load_sequence(ckpt, cfg)
    rows, histories, done, wall_before = [], [], 0, 0.0
    if state is not None:
        seq = state["continual"]
        model.load_state_dict(state["model"])
        method.load_state_dict(seq["method"])
        rows, histories, done = list(seq["acc_rows"]), list(seq["histories"]), int(seq["tasks_done"])
        wall_before = float(seq["wall_time_s"])
        log.info(f"resuming the task sequence in {run_dir} after {done} of {len(stages)} stage(s)")
    else:
        save_torch(_sequence_state(model, method, 0, rows, histories, 0.0, cfg), ckpt)
    log.info(f"continual {bench.name}: {n_tasks} tasks x {classes} classes, cl={cfg.cl.name}, "
             f"params={counts['total_params']} device={device} -> {run_dir}")
    objective = continual_objective(bench, method)
    bs = int(cfg.trainer.eval_batch_size)
    t0 = time.perf_counter()
    for i, stage in enumerate(stages):
        if i < done:
            continue
        t = stage if method.sequential else n_tasks - 1
        task_dir = run_dir / "tasks" / str(stage)
        if method.restart_task_on_resume:
            (task_dir / CHECKPOINT).unlink(missing_ok=True)
        method.before_task(model, t)
        data = bench.tasks[t] if method.sequential else bench.joint()
        trainer = Trainer(cfg.trainer, device, int(cfg.seed) * 1000 + i, log=log.info)
        fit = fit_recorded(trainer, model, data, objective, cfg, task_dir, {**header, **counts})
        method.after_task(model, t, data.train, bench)
        row = [task_accuracy(model, bench, j, bs) if j <= t else float("nan") for j in range(n_tasks)]
        rows.append(row)
        histories.append([{"stage": str(stage), **r} for r in fit.history])
        log.info(f"after task {stage}: " + " ".join(f"{100 * a:.2f}" for a in row[:t + 1]))
        wall = wall_before + time.perf_counter() - t0
        save_torch(_sequence_state(model, method, i + 1, rows, histories, wall, cfg), ckpt)
        (task_dir / CHECKPOINT).unlink(missing_ok=True)
    return _finish(cfg, run_dir, model, bench, method, stages, rows, histories,
                   wall_before + time.perf_counter() - t0, {**header, **counts})


def _finish(cfg, run_dir: Path, model, bench, method, stages, rows, histories, wall, facts) -> dict:
    from ..viz.cl_plots import accuracy_heatmap, learning_curves

    labels = [f"after task {s}" if method.sequential else "joint" for s in stages]
    acc = pd.DataFrame(rows, index=labels, columns=[f"task {j}" for j in range(bench.n_tasks)])
    write_text(run_dir / "acc_matrix.csv", acc.to_csv(index_label="trained"))
    metrics = {"status": "ok", **facts, **summary(acc.to_numpy())}  # a joint run's one row: no bwt/forgetting
    plain = [[None if math.isnan(a) else float(a) for a in row] for row in rows]
    metrics.update({"final_acc_per_task": plain[-1], "acc_matrix": plain,
                    "wall_time_s": round(wall, 2)})
    flat = [dict(r) for h in histories for r in h]
    for k, r in enumerate(flat):
        r["global_epoch"] = k + 1
    history = pd.DataFrame(flat)
    write_history(run_dir, flat)
    finish(cfg, run_dir, metrics, model.state_dict())
    title = (f"cl={cfg.cl.name} on {bench.name}\naverage accuracy {100 * metrics['avg_acc']:.2f}%"
             + (f", BWT {100 * metrics['bwt']:+.2f}" if metrics.get("bwt") is not None else ""))
    save_figure(accuracy_heatmap(acc, title), run_dir / "acc_matrix.png")
    if not history.empty:
        save_figure(learning_curves(history, title), run_dir / "curves.png")
    log.info(f"average accuracy {100 * metrics['avg_acc']:.2f}% bwt {metrics.get('bwt')} "
             f"forgetting {metrics.get('forgetting')} in {wall:.0f}s")
    return metrics
