"""No result is ever lost or hidden: a run owns its directory (lock), a finished run is never overwritten,
damaged data is named, a full disk or a diverging loss is reported truthfully, a sweep with a failed job
exits 1, and the report lists every kind of run where it belongs. docs/reliability.md links each case here."""
import errno
import hashlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hyperbench import cli, files, jobs
from hyperbench.training import ownership
from hyperbench.data import load_data
from hyperbench.training.checkpoint import CHECKPOINT, load_checkpoint
from hyperbench.training.engine import Trainer
from hyperbench.training.objectives import Objective
from hyperbench.errors import DataError, DivergenceError
from hyperbench.report import build_report
from hyperbench.report import main as report_main
from hyperbench.tasks.classify import accuracy_eval

from .conftest import TINY, in_process, write_idx_mnist
from .test_data_datasets import data_cfg
from .test_training_engine import bundle, net, trainer_cfg


def _tree(d: Path) -> dict[str, str]:
    """Every file under d (relative path -> sha256), to prove a directory was not touched."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def _leftovers(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.startswith(".") and p.name != ".hydra"] + \
        [p.name for p in d.glob(ownership.LOCK)]


# --- run-directory ownership ---

@pytest.mark.slow
def test_second_run_into_a_running_runs_dir_refuses_naming_the_owner_and_sigterm_releases_it(fake_mnist, tmp_path):
    run = tmp_path / "run"
    exe = Path(sys.executable).with_name("hyperbench")
    env = dict(os.environ, HYPERBENCH_DATA=str(fake_mnist))
    first = subprocess.Popen([str(exe), "model=conv", *TINY, "trainer.epochs=100000", "seed=1", f"hydra.run.dir={run}"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "history.csv").exists() and time.time() < deadline:
            time.sleep(0.2)
        owner = json.loads((run / ownership.LOCK).read_text())
        assert owner["pid"] == first.pid and owner["host"] and owner["started"]
        config_before = (run / ".hydra" / "config.yaml").read_bytes()
        second = in_process("model=conv", *TINY, "seed=2", f"hydra.run.dir={run}", data_root=fake_mnist)
        assert second.returncode == 2, second.stderr
        assert f"is in use by another hyperbench job (pid {first.pid} on host {owner['host']}" in second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert (run / ".hydra" / "config.yaml").read_bytes() == config_before  # seed 1's config, untouched
        assert "seed=2" not in (run / "hyperbench.log").read_text() and "Nothing was run" not in \
            (run / "hyperbench.log").read_text()
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err
    assert not (run / ownership.LOCK).exists()  # released on SIGTERM
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["seed"] == 1 and m["epochs_completed"] >= 1


@pytest.mark.slow
def test_stale_lock_of_a_dead_process_is_taken_over_and_logged(fake_mnist, tmp_path, cfg_of, caplog, monkeypatch):
    monkeypatch.setenv("HYPERBENCH_DATA", str(fake_mnist))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / ownership.LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
    (run / ".checkpoint.tmp.abc123.pt").write_bytes(b"half a checkpoint")  # what a kill -9 mid-write leaves
    with caplog.at_level("WARNING", logger="hyperbench"):
        m = jobs.run(cfg_of("model=conv", *TINY, "trainer.epochs=1"), run)
    assert m["status"] == "ok"
    assert f"took over the stale lock {run / ownership.LOCK} of a job that is gone (pid {dead.pid}" in caplog.text
    assert _leftovers(run) == []  # lock released, the dead writer's temporary file removed


def test_a_live_lock_refuses_and_an_exception_releases_the_lock(tmp_path, cfg_of, capsys):
    run = tmp_path / "run"
    ok, _ = ownership.acquire(run)  # this test process holds it, as a running job would
    ownership._CLAIMS.clear()
    with pytest.raises(SystemExit) as exit_:
        jobs.run(cfg_of("trainer.epochs=1"), run)
    assert exit_.value.code == 2 and f"pid {os.getpid()}" in capsys.readouterr().err
    assert not (run / "metrics.json").exists()  # the refused job wrote nothing
    ownership.release(run)
    with pytest.raises(SystemExit):
        jobs.run(cfg_of("trainer.lr=-1"), run)  # refused by validation: its lock goes with it
    assert not (run / ownership.LOCK).exists() and json.loads((run / "metrics.json").read_text())["status"] == "bad_config"


# --- never overwrite a finished or resumable run ---

@pytest.mark.slow
def test_a_finished_run_is_never_overwritten_and_a_verified_resume_still_works(fake_mnist, tmp_path):
    run = tmp_path / "run"
    args = ["model=conv", *TINY, "trainer.epochs=1"]
    assert in_process(*args, f"hydra.run.dir={run}", data_root=fake_mnist).returncode == 0
    before = _tree(run)
    p = in_process(*args, "trainer.lr=-1", f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 2 and "already holds a run (metrics.json with status 'ok', checkpoint.pt, model.pt)" \
        in p.stderr and "trainer.resume=true" in p.stderr
    assert _tree(run) == before  # metrics.json, .hydra/*, history, model, checkpoint and log byte-identical

    good = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(good[: len(good) // 2])  # truncated
    before = _tree(run)
    p = in_process(*args, "trainer.resume=true", f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 2 and "cannot be read" in p.stderr and "was left as it was" in p.stderr
    after = _tree(run)
    assert {k: v for k, v in after.items() if k != "hyperbench.log"} == \
        {k: v for k, v in before.items() if k != "hyperbench.log"}  # only the log gains the refused attempt
    assert _leftovers(run) == []

    (run / CHECKPOINT).write_bytes(good)
    p = in_process(*[a for a in args if "epochs" not in a], "trainer.epochs=2", "trainer.resume=true",
                   f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["epochs_completed"] == 2 and m["resumed_after_epoch"] == 1
    assert "trainer.resume=true" in (run / ".hydra" / "overrides.yaml").read_text() and _leftovers(run) == []


def test_a_dir_holding_only_a_refused_attempt_may_be_reused(tmp_path, cfg_of):
    run = tmp_path / "run"
    with pytest.raises(SystemExit):
        jobs.run(cfg_of("trainer.lr=-1"), run)
    assert ownership.previous_run(run) is None  # a bad_config record protects nothing


# --- data integrity ---

def _fresh_mnist(tmp_path) -> Path:
    return write_idx_mnist(tmp_path / "data", n_train=300, n_test=100)


def test_truncated_idx_file_is_named_as_damaged_without_mentioning_a_download(tmp_path):
    root = _fresh_mnist(tmp_path)
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    for download in (False, True):
        with pytest.raises(DataError) as err:
            load_data(data_cfg(root, download=download), torch.device("cpu"))
        msg = str(err.value)
        assert f"{f} is damaged (5,000 bytes where its header (300 x 28 x 28) needs 235,216: truncated)" in msg
        assert "download" not in msg.split("Replace")[0] and "is not under the data root" not in msg


@pytest.mark.parametrize("split,bad", [("train", 255), ("t10k", 10)])
def test_mnist_labels_out_of_range_are_refused_on_load(tmp_path, split, bad):
    root = _fresh_mnist(tmp_path)
    f = root / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte"
    data = bytearray(f.read_bytes())
    data[8 + 3] = bad
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"labels in {f} are damaged: 1 of \d+ are outside 0-9 \(values \[{bad}\]\)"):
        load_data(data_cfg(root), torch.device("cpu"))


def test_emnist_letters_labels_and_shapes_are_checked(tmp_path):
    from hyperbench.data.images import emnist_letters

    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    labels = bytes([1, 2, 26, 0])  # 0 is not a letter (EMNIST letters are 1-26)
    (raw / "emnist-letters-test-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 4, 28, 28) + bytes(4 * 784))
    (raw / "emnist-letters-test-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 4) + labels)
    with pytest.raises(DataError, match=r"EMNIST letters test labels in .* are damaged: 1 of 4 are outside 1-26"):
        emnist_letters(str(tmp_path))
    (raw / "emnist-letters-test-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 4) + bytes([1, 2, 26, 3]))
    images, names = emnist_letters(str(tmp_path))
    assert images.shape == (4, 28, 28) and names[2] == "00002_z"


def test_failed_download_gives_the_whole_reason_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # offline: every download attempt fails at once
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as err:
        load_data(data_cfg(root, download=True), torch.device("cpu"))
    msg = str(err.value)
    assert "downloading it failed (Error downloading train-images-idx3-ubyte.gz: Tried " in msg
    assert "Connection refused" in msg or "urlopen error" in msg  # the reason after the colon
    assert list(root.iterdir()) == []  # no MNIST/raw left behind


# --- disk full ---

def test_disk_full_mid_run_is_one_paragraph_exit_2_keeping_history_and_the_last_checkpoint(
        fake_mnist, tmp_path, cfg_of, capsys, monkeypatch):
    monkeypatch.setenv("HYPERBENCH_DATA", str(fake_mnist))
    real = files.atomic_write
    state = {"checkpoints": 0, "full": False}

    def filling_disk(path, write):  # the disk fills up right after the epoch-1 checkpoint
        def w(p):
            if state["full"]:
                p.write_bytes(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
            write(p)
        out = real(path, w)
        if Path(path).name == CHECKPOINT:
            state["checkpoints"] += 1
            state["full"] = True
        return out

    monkeypatch.setattr(files, "atomic_write", filling_disk)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        jobs.run(cfg_of("model=conv", *TINY, "trainer.epochs=3"), run)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "the disk is full (No space left on device)" in err and "checkpoint.pt of epoch 1" in err
    assert "metrics.json could not be written either" in err and "trainer.resume=true" in err
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 1  # the last good checkpoint, readable
    assert (run / "history.csv").read_text().count("\n") == 2  # header + epoch 1
    assert _leftovers(run) == []  # no temporary file, lock released


# --- divergence message ---

def _diverging(after_steps):
    calls = {"n": 0}

    def loss(m, x, y):
        calls["n"] += 1
        out = F.cross_entropy(m(x), y)
        return out if calls["n"] <= after_steps else out * math.nan

    return Objective(loss=loss, evaluate=accuracy_eval)


def test_divergence_in_the_first_epoch_says_nothing_is_kept_and_suggests_only_what_can_help():
    tr = Trainer(trainer_cfg(log_every=1, grad_clip=100), torch.device("cpu"), seed=0, log=lambda s: None)
    with pytest.raises(DivergenceError) as err:
        tr.fit(net(), bundle(), _diverging(0))
    msg = str(err.value)
    assert "Nothing is kept: no epoch finished" in msg and "epoch -1" not in msg
    assert "grad_clip" not in msg  # already set (100)
    assert "lower trainer.lr (now 0.01; e.g. trainer.lr=0.001)" in msg and "trainer.amp=off" not in msg
    tr = Trainer(trainer_cfg(log_every=1, grad_clip=None, amp="bf16"), torch.device("cpu"), seed=0, log=lambda s: None)
    with pytest.raises(DivergenceError, match=r"set trainer.grad_clip .*trainer.amp=off \(reduced precision is on\)"):
        tr.fit(net(), bundle(), _diverging(0))


def test_divergence_later_names_what_is_kept(tmp_path):
    tr = Trainer(trainer_cfg(log_every=1), torch.device("cpu"), seed=0, log=lambda s: None)
    tr.run_dir = tmp_path
    with pytest.raises(DivergenceError) as err:
        tr.fit(net(), bundle(), _diverging(8))  # 8 steps per epoch: epoch 1 finishes
    assert "Kept: history.csv (epochs 1-1), model.pt of the best epoch so far (1), checkpoint.pt of epoch 1." \
        in str(err.value)


# --- small training set ---

def test_training_set_smaller_than_the_batch_warns(caplog):
    small = bundle()
    small.train = type(small.train)(small.train.x[:50], small.train.y[:50])
    with caplog.at_level("WARNING", logger="hyperbench"):
        Trainer(trainer_cfg(epochs=1, batch_size=64), torch.device("cpu"), seed=0, log=lambda s: None).fit(
            net(), small, Objective(loss=lambda m, x, y: F.cross_entropy(m(x), y), evaluate=accuracy_eval))
    assert "the training set has 50 images, fewer than trainer.batch_size=64: each epoch is one step on all 50" \
        in caplog.text


# --- report ---

def _fake(d: Path, cfg_of, task, status, **metrics):
    from omegaconf import OmegaConf

    (d / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg_of(f"task={task}", "model=conv"), d / ".hydra" / "config.yaml")
    if status is not None:
        (d / "metrics.json").write_text(json.dumps({"status": status, **metrics}))


def test_report_lists_summaries_refusals_and_failures_apart(tmp_path, cfg_of):
    _fake(tmp_path / "s", cfg_of, "summary", "summary", total_params=21210)
    _fake(tmp_path / "old_s", cfg_of, "summary", None)  # a summary from before summaries wrote metrics.json
    _fake(tmp_path / "b", cfg_of, "classify", "bad_config", error="trainer.lr must be a positive number")
    _fake(tmp_path / "c", cfg_of, "classify", "crashed", error="RuntimeError: boom")
    text = build_report([tmp_path], tmp_path / "report")
    assert "Runs read: 4 (0 ok, 2 parameter summaries, 1 refused before running, 1 failed)" in text
    assert "## Parameter summaries (task=summary, 2)" in text and "21,210 parameters" in text
    assert "## Failed runs (1)" in text and "**crashed**: RuntimeError: boom" in text
    failed = text.split("## Failed runs")[1].split("##")[0]
    assert "summary" not in failed and "bad_config" not in failed
    assert "## Refused before running: bad input (1)" in text and "**bad_config**" in text


def test_report_on_a_folder_without_runs_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_main([str(tmp_path)])
    assert exit_.value.code == 2 and "no runs (metrics.json or .hydra/config.yaml) under" in capsys.readouterr().err


@pytest.mark.slow
def test_summary_task_writes_its_own_status(tmp_path):
    p = in_process("task=summary", "model=conv", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "summary" and m["total_params"] == 21210 and m["model"] == "conv"


# --- key typos ---

def test_key_typo_names_the_close_match(tmp_path, run_cli):
    p = run_cli("trainer.epoch=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 2
    assert "Unknown key trainer.epoch; did you mean trainer.epochs?" in p.stderr and "+trainer" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["model=conv,hyper4_4", "model.z_dm=3"], "Unknown key model.z_dm; did you mean model.z_dim?"),
    (["data.valsize=3"], "Unknown key data.valsize; did you mean data.val_size?"),
    (["trainer.nonsense_key=3"], "Unknown key trainer.nonsense_key (no key of that name in the config)."),
])
def test_override_key_check_in_process(args, message):
    with pytest.raises(cli.ConfigError) as err:
        cli.check_override_keys(args)
    assert message in str(err.value)
    cli.check_override_keys(["model=hyper4_4", "model.z_dim=3", "+trainer.extra=1", "hydra.launcher.n_jobs=2"])


def test_torch_save_on_a_full_disk_is_reported_as_disk_full(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError without errno (seen on a 600 KiB tmpfs); with the
    filesystem (nearly) full it is a disk-full StorageError, else the error stays what it was."""
    from hyperbench.errors import StorageError

    def failing_save(obj, p):
        Path(p).write_bytes(b"partial zip")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 202560 vs 202452")

    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(files, "_free_bytes", lambda folder: 0)
    with pytest.raises(StorageError, match="the disk is full") as err:
        files.save_torch({"w": 1}, tmp_path / CHECKPOINT)
    assert err.value.status == "disk_full" and err.value.__context__ is None and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(files, "_free_bytes", lambda folder: 1 << 40)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        files.save_torch({"w": 1}, tmp_path / CHECKPOINT)


def test_resume_never_takes_over_a_running_job(tmp_path, cfg_of, capsys):
    from omegaconf import OmegaConf

    running = tmp_path / "running"
    (running / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg_of(), running / ".hydra" / "config.yaml")
    (running / CHECKPOINT).write_bytes(b"being written by a live job")
    ownership.acquire(running)  # this test process is that live job
    with pytest.raises(SystemExit) as exit_:
        jobs.run(cfg_of(f"trainer.resume={running}"), tmp_path / "new")
    assert exit_.value.code == 2 and f"is still running (pid {os.getpid()}" in capsys.readouterr().err
    assert not (running / "metrics.json").exists()  # not marked superseded
    ownership.release(running)
