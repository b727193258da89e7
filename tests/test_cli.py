"""The real `hyperbench` command end to end on a small synthetic MNIST, and its error messages."""
import json

import pandas as pd
import pytest
import torch

from .conftest import TINY, hyperbench, in_process

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_single_run_writes_every_file(fake_mnist, tmp_path):
    run = tmp_path / "run"
    p = in_process("model=hyper4_4", "data=mnist", *TINY, f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    assert (run / ".hydra" / "config.yaml").exists() and (run / "hyperbench.log").exists()
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["model"] == "hyper4_4" and m["device"] == "cpu"
    assert m["conv_params"] == 4244 and m["total_params"] == 12910
    assert m["val_acc"] > 0.5 and m["test_acc"] > 0.5 and m["epochs"] == 2  # chance: 0.1
    assert m["wall_time_s"] > 0 and 1 <= m["best_epoch"] <= 2
    hist = pd.read_csv(run / "history.csv")
    assert list(hist.epoch) == [1, 2] and hist.train_loss[1] < hist.train_loss[0]
    assert {"train_loss", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "epoch_time_s"} <= set(hist.columns)
    assert m["test_acc"] == hist.test_acc[hist.val_acc.idxmax()]
    for png in ("curves.png", "filters.png"):
        data = (run / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    state = torch.load(run / "model.pt")
    assert state["conv2.z"].shape == (1, 4)


@pytest.mark.slow
def test_the_synthetic_task_is_learned(fake_mnist, tmp_path):
    run = tmp_path / "run"
    p = in_process("model=conv", *TINY, "trainer.epochs=3", "trainer.lr=0.005", f"hydra.run.dir={run}",
                   data_root=fake_mnist)
    assert p.returncode == 0, p.stderr
    assert json.loads((run / "metrics.json").read_text())["test_acc"] > 0.9


@pytest.mark.slow
def test_sweep_with_one_bad_job_completes_the_others_and_reports_both(fake_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    p = in_process("-m", "model=conv,hyper5_5", "trainer.lr=0.005,-1", *TINY, "trainer.epochs=1",
                   f"hydra.sweep.dir={sweep}", data_root=fake_mnist)
    assert p.returncode == 1, p.stderr  # a sweep with a failed job exits 1, after every job ran
    assert p.stderr.strip().splitlines()[-1].startswith("hyperbench: 2 of 4 jobs did not finish ok")
    statuses = sorted(json.loads(f.read_text())["status"] for f in sweep.glob("*/metrics.json"))
    assert statuses == ["bad_config", "bad_config", "ok", "ok"]
    r = in_process(str(sweep), command="hyperbench-report")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(sweep / "report" / "table2_mnist.csv")
    assert list(table.Model) == ["ConvModel", "Hyper5_5"]
    assert list(table["Count check"]) == ["match", "match"]
    report = (sweep / "report" / "report.md").read_text()
    assert "Refused before running: bad input (2)" in report and "trainer.lr must be a positive number" in report
    assert (sweep / "report" / "figure2_filters.png").read_bytes().startswith(PNG)
    page = (sweep / "report" / "report.html").read_text()  # one self-contained page: tables and figures
    assert "<table>" in page and "data:image/png;base64," in page and "Refused before running" in page


@pytest.mark.slow
def test_summary_prints_the_parameter_breakdown(tmp_path):
    p = in_process("task=summary", "model=hyper5_5", "data=mnist", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "conv parameters (as counted in Vineet, CS618 report): 5,189" in out and "13,855" in out
    assert "generated from 1 tile(s) of 16x16" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "summary"  # listed apart by the report


@pytest.mark.parametrize("model,width", [("ae", 2), ("aae", 2), ("hypernet_shallow", 2), ("hypernet_deep", 2)])
def test_summary_times_a_transform_model_with_its_condition(cfg_of, tmp_path, capsys, model, width):
    from hyperbench.tasks.summary import run

    facts = run(cfg_of("task=summary", f"model={model}", "task.time_steps=1", "task.time_warmup=0",
                       "task.time_train_size=64", "trainer.batch_size=8", "trainer.device=cpu"), tmp_path)
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("seconds per epoch (estimate):"))
    assert facts["seconds_per_step"] > 0 and facts["batch_size"] == 8 and "= 8 steps x" in line
    assert f"transform loss, a condition of {width} parameters" in line and "fp32" in line


ERRORS = [
    # (capsnet_em, from its own branch, sorts between capsnet and cnn)
    (["model=resnet50"], "Unknown model 'resnet50'. Available model configs: aae, ae, capsnet, "),
    (["model=resnet50"], "cnn, cnn_bn, cnn_bn_dropout, cnn_deep, cnn_dropout, conv, hyper,"),
    (["data=svhn"], "Unknown data 'svhn'"),
    (["model=hyper0_4"], "needs a positive embedding size A and hidden size B"),
    (["model=hyper", "model.d=0"], "model.d must be a positive integer"),
    (["trainer.lr=fast"], "trainer.lr must be a positive number, got 'fast'"),
    (["trainer.epochs=ten"], "trainer.epochs must be a positive integer, got 'ten'"),
    (["trainer.epoch=1"], "Unknown key trainer.epoch; did you mean trainer.epochs?"),
]


@pytest.mark.parametrize("args,message", ERRORS)
def test_bad_input_gives_one_paragraph_and_exit_2(args, message, tmp_path, run_cli):
    p = run_cli(*args, "trainer.epochs=1" if "epochs" not in args[0] else "seed=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_missing_dataset_without_network(tmp_path, run_cli):
    empty = tmp_path / "nodata"
    empty.mkdir()
    run = tmp_path / "run"
    p = run_cli("trainer.epochs=1", f"hydra.run.dir={run}", data_root=empty)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()[-1]
    assert "is not under the data root" in err and "downloading it failed" in err and "HYPERBENCH_DATA" in err
    assert "Traceback" not in p.stderr
    assert json.loads((run / "metrics.json").read_text())["status"] == "missing_data"


@pytest.mark.slow
def test_diverging_loss_stops_the_run_and_records_it(fake_mnist, tmp_path):
    run = tmp_path / "run"
    p = in_process("model=conv", *TINY, "trainer.lr=1e30", "trainer.grad_clip=null", "trainer.lr_decay=1.0",
                   "trainer.log_every=1", f"hydra.run.dir={run}", data_root=fake_mnist)
    assert p.returncode == 2
    assert "The training loss became" in p.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "diverged" and "To change the outcome: lower trainer.lr" in m["error"]


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_measured(fake_mnist, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    run = tmp_path / "run"
    exe = Path(sys.executable).with_name("hyperbench")
    env = dict(os.environ, HYPERBENCH_DATA=str(fake_mnist))
    # SIGINT back to its default in the child: a test run started in the background (nohup ... &) inherits
    # SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt
    proc = subprocess.Popen([str(exe), "model=conv", *TINY, "trainer.epochs=100000", f"hydra.run.dir={run}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (run / "history.csv").exists() and time.time() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)  # generous: a loaded machine starts and stops slowly
    finally:
        if proc.poll() is None:  # never leave a 100,000-epoch run behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["epochs_completed"] >= 1
    hist = pd.read_csv(run / "history.csv")
    assert len(hist) == m["epochs_completed"] and m["test_acc"] == hist.test_acc[m["best_epoch"] - 1]
    assert (run / "model.pt").exists()


@pytest.mark.slow
def test_same_command_same_metrics_and_seed_changes_them(fake_mnist, tmp_path):
    """The same command in a fresh process ("a") and inside this one ("b", "c"): the same metrics and weights."""
    def metrics(name, *extra):
        run = hyperbench if name == "a" else in_process
        p = run("model=hyper4_4", *TINY, "trainer.epochs=1", *extra, f"hydra.run.dir={tmp_path / name}",
                data_root=fake_mnist)
        assert p.returncode == 0, p.stderr
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        return {k: v for k, v in m.items() if "time" not in k and "per_epoch" not in k
                and k != "checkpoint_wait_s"}, \
            torch.load(tmp_path / name / "model.pt")

    (m1, w1), (m2, w2), (m3, w3) = metrics("a"), metrics("b"), metrics("c", "seed=1")
    assert m1 == m2 and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not torch.equal(w1["conv1.weight"], w3["conv1.weight"])


def test_help_lists_usage_and_every_model(run_cli):
    p = run_cli("--help")
    assert p.returncode == 0
    assert "hyperbench model=hyper model.z_dim=9 model.d=3" in p.stdout
    assert "model: aae, ae, capsnet, " in p.stdout  # capsnet_em (its own branch) sorts next
    assert "cnn, cnn_bn, cnn_bn_dropout, cnn_deep, cnn_dropout, conv, hyper, hyper4_4" in p.stdout
    assert "rotation: restricted34, restricted49" in p.stdout and "HYPERBENCH_DATA" in p.stdout
    assert "task: classify, compensate, continual, invariance, summary" in p.stdout
    assert "transform: affine, rotate, shift" in p.stdout
