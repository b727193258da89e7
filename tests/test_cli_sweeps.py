"""Fault tolerance end to end: kill -9 and resume, sweeps through the joblib and submitit launchers,
TensorBoard logging, and the bad inputs around checkpoints and output directories."""
import json
import os
import socket

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hyperbench import jobs
from hyperbench.training import ownership
from hyperbench.training.checkpoint import CHECKPOINT
from hyperbench.report import build_report

from .conftest import TINY, hyperbench, in_process

UNTIMED = ("wall_time_s", "seconds_per_epoch", "resumed_after_epoch", "checkpoint_wait_s", "eval_time_s",
           "run_time_s")
# the adversarial autoencoder, tiny, learning rotation: its critic has an optimizer of its own
AAE = ["task=transform", "model=aae", "rotation=restricted49", "model.channels=[4,8]", "model.hidden=16", "model.latent=4",
       "model.critic_hidden=8", "data.val_size=100", "data.train_size=200", "trainer.batch_size=50", "trainer.epochs=2",
       "task.epoch_eval_images=50", "task.metric_images=5", "task.curve_images=2", "task.grid_images=1",
       "task.curve_step=90", "trainer.save_model=true"]


def _metrics(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in UNTIMED}


def _history(run_dir):
    return pd.read_csv(run_dir / "history.csv").drop(columns="epoch_time_s")


@pytest.mark.slow
@pytest.mark.parametrize("args", [["model=hyper4_4", *TINY], AAE], ids=["hyper4_4", "aae"])  # 2 epochs
def test_kill_9_after_epoch_1_then_resume_true_ends_like_an_uninterrupted_run(fake_mnist, tmp_path, monkeypatch, args):
    monkeypatch.setenv("HYPERBENCH_OUTPUTS", str(tmp_path / "outputs"))
    whole = tmp_path / "whole"
    assert in_process(*args, f"hydra.run.dir={whole}", data_root=fake_mnist).returncode == 0
    killed = hyperbench(*args, data_root=fake_mnist, kill_after_epoch=1)  # -> outputs/runs/<time>_...
    assert killed.returncode == -9  # SIGKILL right after the epoch-1 checkpoint
    p = in_process(*args, "trainer.resume=true", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    old, new = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert "resuming" in (new / "hyperbench.log").read_text()
    assert _metrics(new) == _metrics(whole) and json.loads((new / "metrics.json").read_text())["resumed_after_epoch"] == 1
    pd.testing.assert_frame_equal(_history(new), _history(whole))  # every loss and accuracy, exactly
    a, b = torch.load(whole / "model.pt"), torch.load(new / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    superseded = json.loads((old / "metrics.json").read_text())
    assert superseded["status"] == "superseded" and superseded["resumed_in"] == str(new)
    text = build_report([tmp_path / "outputs"], tmp_path / "report")
    assert "1 superseded by their resumed run" in text and "Failed runs" not in text


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_sweep_through_a_launcher_runs_every_job_and_reports_seeds_and_the_failure(fake_mnist, tmp_path, launcher):
    """Every job owns its directory (one job's is locked by a live process: that job is refused and writes
    nothing there), every other job runs, the report is written, and the sweep exits 1 saying so last."""
    sweep = tmp_path / "sweep"
    extra = {"basic": [], "joblib": ["hydra.launcher.n_jobs=2"], "submitit_local": ["hydra.launcher.timeout_min=10"]}
    (sweep / "3_conv").mkdir(parents=True)
    lock = sweep / "3_conv" / ownership.LOCK
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive
    p = hyperbench("-m", f"hydra/launcher={launcher}", *extra[launcher], "model=conv", *TINY, "trainer.epochs=1",
                   "seed=0,1,-1,3", f"hydra.sweep.dir={sweep}", data_root=fake_mnist)
    assert p.returncode == 1, p.stderr  # cli.EXIT_SWEEP_FAILED
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("hyperbench: 2 of 4 jobs did not finish ok (2_conv bad_config; 3_conv refused)")
    assert last.endswith("exit status 1.")
    status = {d.name: json.loads((d / "metrics.json").read_text())["status"] for d in sweep.glob("*_conv")
              if (d / "metrics.json").exists()}
    assert status == {"0_conv": "ok", "1_conv": "ok", "2_conv": "bad_config"}
    assert sorted(p.name for p in (sweep / "3_conv").iterdir()) == [ownership.LOCK]  # the refused job wrote nothing
    for d in ("0_conv", "1_conv"):
        assert (sweep / d / CHECKPOINT).exists() and "epoch 1/1" in (sweep / d / "hyperbench.log").read_text()
        assert not (sweep / d / ownership.LOCK).exists()  # each job released its own lock
    build_report([sweep], sweep / "report")  # reads only the run directories
    seeds = pd.read_csv(sweep / "report" / "seeds.csv")
    assert len(seeds) == 1 and seeds.seeds[0] == "0,1" and "(n=2)" in seeds.test_acc[0]
    assert "(n=2)" in pd.read_csv(sweep / "report" / "table2_mnist.csv")["Best Test Accuracy"][0]
    report = (sweep / "report" / "report.md").read_text()
    assert "Refused before running: bad input (1)" in report and "seed must be a non-negative integer" in report
    assert (sweep / "report" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_tensorboard_logger_writes_each_epoch_once(tmp_path, cfg_of):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hyperbench.training.loggers import make_logger

    lg = make_logger(cfg_of("logger=tensorboard"), tmp_path)
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_acc": 0.5 + e / 10, "lr": 0.01} for e in (1, 2, 3)]
    lg.log(rows[:2])
    lg.log(rows)  # a history is passed whole every epoch; only new rows are written
    lg.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "val/acc", "lr"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("val/acc")] == [1, 2, 3]


# --- bad inputs around resume and output directories ---

def _run_in_process(cfg, run_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        jobs.run(cfg, run_dir)
    err = capsys.readouterr().err
    return exit_.value.code, err, json.loads((run_dir / "metrics.json").read_text())


def _old_run(tmp_path, cfg_of, checkpoint=b"", lr=0.005):
    old = tmp_path / "old"
    (old / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg_of(f"trainer.lr={lr}"), old / ".hydra" / "config.yaml")
    if checkpoint is not None:
        (old / CHECKPOINT).write_bytes(checkpoint)
    return old


@pytest.mark.parametrize("case,message", [
    ("missing dir", "is not a run directory (no such directory)"),
    ("no checkpoint", "holds no checkpoint.pt"),
    ("corrupted checkpoint", "cannot be read (UnpicklingError: "),
    ("other config", "was run with another config (trainer.lr=0.003 there, 0.005 here)"),
])
def test_bad_resume_target_fails_before_training_with_exit_2(tmp_path, cfg_of, capsys, case, message):
    if case == "missing dir":
        target = tmp_path / "nowhere"
    else:
        target = _old_run(tmp_path, cfg_of, checkpoint=None if case == "no checkpoint" else b"garbage, not a checkpoint",
                          lr=0.003 if case == "other config" else 0.005)
    code, err, m = _run_in_process(cfg_of(f"trainer.resume={target}"), tmp_path / "new", capsys)
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert m["status"] in ("bad_config", "bad_checkpoint") and "history" not in m


@pytest.mark.parametrize("args,message", [
    (["trainer.lrr=1"], "Unknown key trainer.lrr; did you mean trainer.lr?"),
    (["hydra/launcher=nosuch"], "Could not find 'hydra/launcher/nosuch'"),
    (["logger=wandb"], "Unknown logger 'wandb'. Available logger configs: csv, tensorboard."),
])
def test_hydra_level_bad_input_exits_2(tmp_path, args, message, run_cli):
    p = run_cli(*args, "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["file in the way", "read-only folder"])
def test_unwritable_output_dir_exits_2(tmp_path, where, run_cli):
    import os

    if where == "file in the way":
        blocked = tmp_path / "file"
        blocked.write_text("a file where the output folder should go")
        why = "is a file, not a folder"
    else:
        if os.geteuid() == 0:
            pytest.skip("root may write into a read-only folder")
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o555)
        why = "is not writable"
    p = run_cli("trainer.epochs=1", f"hydra.run.dir={blocked / 'run'}")
    assert p.returncode == 2 and f"Cannot create the output directory {blocked / 'run'}: {blocked} {why}" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
