"""One job of the `hyperbench` command: claim its run directory, validate, resume, seed, run the task, and record
its outcome (metrics.json of a failed job, the sweep's outcome records); SIGTERM handled like Ctrl-C.

cli.py parses and checks the command line and maps what happened here to an exit status.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .config import validate
from .errors import HyperbenchError
from .files import write_json
from .tasks import get_task
from .tasks.common import write_metrics
from .training import ownership, resume
from .training.engine import seed_everything

log = logging.getLogger("hyperbench")
OUTCOMES = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each job's status, read when the sweep ends


@dataclass
class JobsState:
    """What cli.main reads once Hydra returns."""

    job_started: bool = False  # set once a job runs: an exit before that is Hydra refusing the command line
    sweep_failures: tuple[list[str], int] | None = None  # (failed jobs, all jobs), set by SweepOutcomes


state = JobsState()


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill`): handled like Ctrl-C, so the run is recorded and its lock released."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _record_failure(run_dir: Path, record: dict, error: str) -> str:
    """Write a failed job's metrics.json; if even that cannot be written (disk full), say so in the error."""
    try:
        write_metrics(run_dir, record)
    except HyperbenchError as exc:
        return f"{error} metrics.json could not be written either ({exc})"
    return error


def _record_outcome(run_dir: Path, status: str, error: str | None) -> None:
    """In a sweep: <sweep dir>/.jobs/<num>.json, which the main process reads when every job has run."""
    try:
        hc = HydraConfig.get()
        write_json(Path(hc.sweep.dir) / OUTCOMES / f"{hc.job.num}.json",
                   {"num": hc.job.num, "run_dir": str(run_dir), "status": status, "error": (error or "")[:300]})
    except Exception as exc:  # the outcome is also in the job's log; never fail a job over it
        log.warning(f"could not record the job's outcome for the sweep summary ({exc})")


def run(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Validate and run one job in run_dir, which it owns (ownership.claim), recording any failure in its
    metrics.json with what was measured.

    A user error exits with status 2 (one paragraph, no traceback). In a sweep a failed or crashed
    job is recorded and the sweep goes on with the next job; the sweep then exits 1.
    A job refused its directory (in use, or holding another run) writes nothing there.
    """
    state.job_started = True
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    claim = ownership.claim(run_dir, OmegaConf.select(cfg, "trainer.resume", default=False))
    if claim.refusal:
        ownership.finish(run_dir)
        if multirun:
            log.error(claim.refusal)
            _record_outcome(run_dir, "refused", claim.refusal)
            return None
        print(f"hyperbench: {claim.refusal}", file=sys.stderr)
        sys.exit(2)
    if claim.took_over:
        log.warning(claim.took_over)
    on_main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _on_sigterm) if on_main else None
    status, error = "crashed", None
    try:
        validate(cfg)
        resume.prepare(cfg, run_dir)  # trainer.resume: put the checkpoint to continue into run_dir
        seed_everything(int(cfg.seed))  # model initialisation depends on the seed too
        result = get_task(str(cfg.task.name))(cfg, run_dir)
        status = "ok"
        if claim.resuming:
            ownership.commit_hydra_files(run_dir)
        return result
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = getattr(exc, "status", "interrupted" if interrupted else "crashed")
        error = str(exc) or type(exc).__name__
        measured = hasattr(exc, "partial_metrics")
        if claim.resuming and not measured:
            error += f" The run in {run_dir} was left as it was."  # a resume that never trained: keep its files
        else:
            if claim.resuming:
                ownership.commit_hydra_files(run_dir)
            error = _record_failure(run_dir, {"status": status, "error": error,
                                              **getattr(exc, "partial_metrics", {})}, error)
        if interrupted or not isinstance(exc, Exception):
            raise
        if multirun:
            log.error(error, exc_info=not isinstance(exc, HyperbenchError))
            return None
        if isinstance(exc, HyperbenchError):
            print(f"hyperbench: {error}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, old_term)
        ownership.finish(run_dir)
        if multirun:
            _record_outcome(run_dir, status, error)


class SweepOutcomes(Callback):
    """Hydra callback (conf/config.yaml hydra.callbacks): in the main process of a sweep, clear the outcome
    records before the jobs start and read them when all have run, so cli.main() can exit 1 if any failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        import shutil

        shutil.rmtree(Path(str(config.hydra.sweep.dir)) / OUTCOMES, ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir)) / OUTCOMES
        outcomes = []
        for f in sorted(folder.glob("*.json"), key=lambda f: int(f.stem) if f.stem.isdigit() else 0):
            try:
                outcomes.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                outcomes.append({"num": f.stem, "status": "unknown", "run_dir": "?"})
        failed = [f"{Path(o['run_dir']).name} {o['status']}" for o in outcomes if o.get("status") != "ok"]
        state.sweep_failures = (failed, len(outcomes)) if failed else None
