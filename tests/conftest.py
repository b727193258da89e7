"""Shared fixtures: a small synthetic MNIST in torchvision's on-disk format, Hydra composition,
and a helper that runs the real `hyperbench` command in a subprocess."""
from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"  # the configs as files (the CLI finds them as the package hyperbench.conf)


def write_idx_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """MNIST-format idx files whose classes are learnable: class k is a bright 7x7 block at a
    position given by k, plus noise. Returns the data root (holding MNIST/raw/)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 3 + 7 * (k // 4), 3 + 7 * (k % 4)
            images[i, r:r + 7, c:c + 7] = 255
        with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return root


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory) -> Path:
    return write_idx_mnist(tmp_path_factory.mktemp("data"))


def compose_config(*overrides: str):
    """The composed config, as `hyperbench <overrides>` would see it."""
    with initialize_config_module(config_module="hyperbench.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def cfg_of():
    """cfg_of(*overrides) -> compose_config(*overrides)."""
    return compose_config


# HTTP(S) pointed at a closed local port: any download attempt fails at once, as on a machine without network.
OFFLINE = {var: "http://127.0.0.1:9" for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
# Small, fast settings for runs on the synthetic dataset.
TINY = ["data.val_size=100", "trainer.batch_size=100", "trainer.eval_batch_size=500", "trainer.epochs=2"]


def hyperbench(*args: str, data_root: Path | None = None, offline: bool = True, cwd: Path | None = None,
               command: str = "hyperbench", kill_after_epoch: int | None = None,
               kill_stage: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI. offline=True points HTTP(S) at a closed local port, so any download
    attempt fails at once, as on a machine without network. kill_after_epoch=N: run it through
    tests/kill_after_epoch.py, which SIGKILLs the process once epoch N's checkpoint is on disk (only in the
    training whose run directory is named kill_stage, if given)."""
    env = dict(os.environ)
    if data_root is not None:
        env["HYPERBENCH_DATA"] = str(data_root)
    if offline:
        env.update(OFFLINE, no_proxy="", NO_PROXY="")
    cmd = [str(Path(sys.executable).with_name(command))]
    if kill_after_epoch is not None:
        cmd = [sys.executable, str(ROOT / "tests" / "kill_after_epoch.py"), str(kill_after_epoch),
               *(["--stage", kill_stage] if kill_stage is not None else []), "--"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=600)


def in_process(*args: str, data_root: Path | None = None,
               command: str = "hyperbench") -> subprocess.CompletedProcess:
    """The `hyperbench` (or `hyperbench-report`) command run in this process: cli.main (report.main) with these
    arguments, its output captured, the process's environment, argv, logging and the CLI's job state restored
    after it. Offline as hyperbench(...) is. For the runs that need no process of their own (a kill, a signal or
    a fresh interpreter's determinism do): no interpreter start-up, which is most of a tiny run's time."""
    import contextlib
    import io

    from hyperbench import cli, jobs, report

    loggers = [logging.root, *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    saved_logging = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    env = {**OFFLINE, **({"HYPERBENCH_DATA": str(data_root)} if data_root is not None else {})}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_argv, saved_state = sys.argv, jobs.state
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env)
    sys.argv, jobs.state = [command, *args], jobs.JobsState()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if command == "hyperbench":
                    cli.main()
                else:
                    report.main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, jobs.state = saved_argv, saved_state
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, handlers, level, propagate, disabled in saved_logging:  # Hydra configured logging for the job
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled
    return subprocess.CompletedProcess([command, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli():
    """run_cli(*args, data_root=None) -> CompletedProcess: in_process(...) as a fixture."""
    return in_process
