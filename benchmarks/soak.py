"""Load and soak checks of run-directory ownership and resume (docs/reliability.md quotes their results).

    python benchmarks/soak.py load --out DIR            # 20 tiny runs, joblib launcher, 2 workers, one sweep folder
    python benchmarks/soak.py kill --out DIR            # kill -9 at 10 random moments across a 3-epoch run

Both run the real `hyperbench` command (the one beside this Python) in subprocesses and print one JSON object
with what they checked; the exit status is 0 when every check held. Data: MNIST under HYPERBENCH_DATA
(a subset, --train-size), or --synthetic for the learnable synthetic MNIST of the tests.
`load`: every job finishes ok, one metrics.json per job, the report counts them all, every job's log holds
only its own lines, no lock or temporary file is left.
`kill`: an uninterrupted run, then the same run started with trainer.resume=true and killed with SIGKILL at a
random moment, `--kills` times, then resumed to the end: its metrics, history and weights must equal the
uninterrupted run's, every checkpoint seen after a kill must be readable, no lock or temporary file left.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXE = Path(sys.executable).with_name("hyperbench")
UNTIMED = ("wall_time_s", "seconds_per_epoch", "resumed_after_epoch")


def data_args(args) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if args.synthetic:
        from tests.conftest import write_idx_mnist

        env["HYPERBENCH_DATA"] = str(write_idx_mnist(Path(args.out) / "data"))
        return ["data.val_size=100", "trainer.batch_size=100", "trainer.eval_batch_size=500"], env
    return [f"data.train_size={args.train_size}", "data.val_size=1000", f"data.test_size={args.train_size}",
            "trainer.batch_size=100", "trainer.eval_batch_size=1000"], env


def leftovers(d: Path) -> list[str]:
    """Locks and temporary files (dot-files other than .hydra) left in a run directory."""
    return sorted(p.name for p in d.iterdir() if p.name == "hyperbench.lock" or
                  (p.name.startswith(".") and p.name != ".hydra"))


def load(args) -> dict:
    extra, env = data_args(args)
    sweep = Path(args.out) / "sweep"
    cmd = [str(EXE), "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}", "model=conv",
           f"seed=range(0,{args.jobs})", *extra, "trainer.epochs=1", "trainer.progress=false",
           f"hydra.sweep.dir={sweep}"]
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    dirs = sorted((d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: int(d.name.split("_")[0]))
    statuses = {d.name: json.loads((d / "metrics.json").read_text())["status"] for d in dirs
                if (d / "metrics.json").exists()}
    interleaved = []
    for d in dirs:
        log = (d / "hyperbench.log").read_text()
        targets = re.findall(r"-> (\S+)$", log, flags=re.M)  # the one line naming the job's directory
        if targets != [str(d)] or log.count("epoch 1/1 ") != 1 or any(str(o) in log for o in dirs if o != d):
            interleaved.append(d.name)
    r = subprocess.run([str(EXE.with_name("hyperbench-report")), str(sweep)], capture_output=True, text=True, env=env)
    counted = re.search(r"Runs read: (\d+) \((\d+) ok", r.stdout)
    result = {
        "command": " ".join(cmd[1:]), "exit": p.returncode, "wall_s": round(wall, 1), "jobs": args.jobs,
        "metrics_json": len(statuses), "ok": sum(s == "ok" for s in statuses.values()),
        "report_exit": r.returncode, "report_counts": [int(c) for c in counted.groups()] if counted else None,
        "interleaved_logs": interleaved, "leftovers": {d.name: leftovers(d) for d in dirs if leftovers(d)},
    }
    result["passed"] = (p.returncode == 0 and result["metrics_json"] == result["ok"] == args.jobs
                        and result["report_counts"] == [args.jobs, args.jobs] and not interleaved
                        and not result["leftovers"])
    return result


def _metrics(d: Path) -> dict:
    m = json.loads((d / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in UNTIMED}


def _history(d: Path):
    import pandas as pd

    return pd.read_csv(d / "history.csv").drop(columns="epoch_time_s")


def kill(args) -> dict:
    import torch

    from hyperbench.training.checkpoint import CHECKPOINT, load_checkpoint
    from hyperbench.errors import CheckpointError

    extra, env = data_args(args)
    env["HYPERBENCH_OUTPUTS"] = str(Path(args.out) / "outputs")  # trainer.resume=true finds no other run
    base = [str(EXE), "model=conv", *extra, f"trainer.epochs={args.epochs}", "trainer.progress=false"]
    whole, killed = Path(args.out) / "whole", Path(args.out) / "killed"
    t0 = time.time()
    p = subprocess.run([*base, f"hydra.run.dir={whole}"], env=env, capture_output=True, text=True)
    full_s = time.time() - t0
    assert p.returncode == 0, p.stderr
    rng = random.Random(args.seed)
    kills = []
    for i in range(args.kills):
        delay = rng.uniform(0, full_s)
        proc = subprocess.Popen([*base, "trainer.resume=true", f"hydra.run.dir={killed}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            finished = False
        ckpt, readable = killed / CHECKPOINT, None
        if ckpt.exists():
            try:
                epoch = load_checkpoint(ckpt)["epoch"]
                readable = True
            except CheckpointError:
                epoch, readable = None, False
        else:
            epoch = None
        kills.append({"delay_s": round(delay, 2), "exit": proc.returncode, "finished_before_kill": finished,
                      "checkpoint_epoch": epoch, "checkpoint_readable": readable,
                      "stale_lock_left": (killed / "hyperbench.lock").exists()})
    p = subprocess.run([*base, "trainer.resume=true", f"hydra.run.dir={killed}"], env=env, capture_output=True,
                       text=True)
    log = (killed / "hyperbench.log").read_text() if (killed / "hyperbench.log").exists() else ""
    same_metrics = p.returncode == 0 and _metrics(killed) == _metrics(whole)
    same_history = p.returncode == 0 and _history(killed).equals(_history(whole))
    a, b = torch.load(whole / "model.pt"), torch.load(killed / "model.pt")
    same_weights = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    result = {
        "command": " ".join(base[1:]), "uninterrupted_s": round(full_s, 1), "kills": kills,
        "final_exit": p.returncode, "final_stderr_tail": p.stderr.strip().splitlines()[-1:] if p.returncode else [],
        "same_metrics": same_metrics, "same_history": same_history, "same_weights": same_weights,
        "test_acc": [json.loads((d / "metrics.json").read_text())["test_acc"] for d in (whole, killed)],
        "stale_locks_taken_over": log.count("took over the stale lock"),
        "unreadable_checkpoints": sum(k["checkpoint_readable"] is False for k in kills),
        "leftovers": leftovers(killed),
    }
    result["passed"] = (same_metrics and same_history and same_weights and not result["leftovers"]
                        and result["unreadable_checkpoints"] == 0)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["load", "kill"])
    ap.add_argument("--out", required=True, help="a new folder for the runs (outside the repository)")
    ap.add_argument("--synthetic", action="store_true", help="the tests' synthetic MNIST instead of HYPERBENCH_DATA")
    ap.add_argument("--train-size", type=int, default=2000, help="MNIST training images per run (real data)")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = (load if args.what == "load" else kill)(args)
    print(json.dumps(result, indent=1))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
