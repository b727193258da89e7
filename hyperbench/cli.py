"""The `hyperbench` command: one Hydra entry point for every task.

    hyperbench model=hyper5_5 data=mnist                 # one run -> outputs/runs/<time>_.../
    hyperbench -m model=conv,hyper4_4 data=mnist         # a sweep -> outputs/sweeps/<time>_.../<n>_<model>/
    hyperbench task=summary model=hyper5_5 data=mnist    # parameter breakdown, no training
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .training import ownership, resume
from .config import CONF_PACKAGE, GROUPS, group_options, validate
from .training.engine import seed_everything
from .errors import ConfigError, HyperbenchError
from .models.names import parse_model_name
from .files import write_json
from .tasks import get_task
from .tasks.common import write_metrics

log = logging.getLogger("hyperbench")
_JOB_STARTED = False  # set once a job runs: an exit before that is Hydra refusing the command line
# Config names that were renamed: old name -> the new one, so old commands get a pointer instead of a bare refusal.
RENAMED = {("rotation", "seed000"): "restricted49", ("rotation", "seed001"): "restricted34"}
# Exit codes (docs/reliability.md): 0 every job ok; 1 a sweep in which some job failed or was refused (after
# every job ran), or a crash (traceback); 2 bad input or a refused/failed single run, nothing lost;
# 130 Ctrl-C, 143 SIGTERM (what was measured is kept).
EXIT_SWEEP_FAILED = 1
OUTCOMES = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each job's status, read when the sweep ends
_SWEEP_FAILURES: tuple[list[str], int] | None = None  # (failed jobs, all jobs), set by SweepOutcomes.on_multirun_end


def _unknown_choice_message(group: str, value: str) -> str:
    options = group_options(group)
    msg = f"Unknown {group} '{value}'. Available {group} configs: {', '.join(options)}."
    name = parse_model_name(value) if group == "model" else None
    if name is not None and name.is_hyper:
        blocks, a, b = name.blocks, name.z_dim, name.d
        generic = "model=hyper" if blocks is None else f"model=vgg_hyper model.blocks={blocks}"
        if a < 1 or b < 1:
            msg += (f" A hypernetwork HyperA_B needs a positive embedding size A and hidden size B "
                    f"(got A={a}, B={b}); e.g. {generic} model.z_dim=5 model.d=5.")
        elif blocks is not None and blocks not in (1, 2, 3):
            msg += f" VGG-BlockN exists for N = 1, 2, 3 (Vineet, CS618 report, Table 1), not {blocks}."
        else:
            msg += (f" Any HyperA_B without its own file is composed from the generic one: "
                    f"{generic} model.z_dim={a} model.d={b}.")
    elif (group, value) in RENAMED:
        msg += f" {group}={value} was renamed: use {group}={RENAMED[group, value]}."
    else:
        msg += f" Add conf/{group}/{value}.yaml to define a new one."
    return msg


def check_group_choices(args: list[str]) -> None:
    """Refuse unknown group options (model=..., data=...) with a specific message, before Hydra runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return  # Hydra reports malformed overrides itself
    for ov in parsed:
        group = ov.key_or_group
        if group not in GROUPS or ov.is_delete() or ov.package:
            continue
        values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        for value in values:
            if value in ("null", "None") and group in ("experiment", "rotation", "transform", "embedding"):
                continue
            if value not in group_options(group):
                raise ConfigError(_unknown_choice_message(group, value))


def _flat_keys(cfg) -> set[str]:
    keys = set()

    def walk(node, prefix):
        for k, v in node.items():
            keys.add(prefix + str(k))
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return keys


def check_override_keys(args: list[str]) -> None:
    """Refuse `key=value` for a key the composed config does not have (a typo such as trainer.epoch=1),
    naming the close matches; Hydra's own advice (`+trainer.epoch=1`) would only add an unknown key."""
    import difflib
    import itertools

    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    if any(a in ("-h", "--help", "--hydra-help", "--info") for a in args):
        return
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-") and "=" in a])
    except Exception:
        return  # Hydra reports malformed overrides itself
    is_group = lambda ov: ov.key_or_group in GROUPS or "/" in ov.key_or_group  # noqa: E731
    wanted = [ov.key_or_group for ov in parsed if ov.type == OverrideType.CHANGE and not is_group(ov)
              and ov.package is None and not ov.key_or_group.startswith("hydra")]
    if not wanted:
        return
    choices = []
    for ov in parsed:
        if is_group(ov) and not ov.key_or_group.startswith("hydra"):
            values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
            choices.append([f"{ov.get_key_element()}={v}" for v in values])
    known: set[str] = set()
    try:
        with initialize_config_module(config_module=CONF_PACKAGE, version_base="1.3"):
            for combo in itertools.islice(itertools.product(*choices), 16):
                known |= _flat_keys(compose("config", overrides=list(combo)))
    except Exception:
        return  # Hydra reports it
    for key in wanted:
        if key in known:
            continue
        parent, _, leaf = key.rpartition(".")
        siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
        close = [f"{parent}.{m}" if parent else m for m in difflib.get_close_matches(leaf, siblings, n=2, cutoff=0.7)]
        close = close or difflib.get_close_matches(key, sorted(known), n=2, cutoff=0.8)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (no key of that name in the config)."
        raise ConfigError(f"Unknown key {key}{hint} The keys a run has are listed by hyperbench --cfg job "
                          f"[overrides]. Nothing was run.")


def check_output_dirs(args: list[str]) -> None:
    """Refuse an output location that cannot be created (a file in the way, no write permission)
    before Hydra tries to make the run directory."""
    import os

    if any(a in ("-h", "--help", "--hydra-help", "-c", "--cfg", "--info", "--resolve") for a in args):
        return  # nothing is written
    values = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    wanted = [values[k] for k in ("hydra.run.dir", "hydra.sweep.dir") if k in values]
    if not wanted:
        wanted = [values.get("outputs_root") or os.environ.get("HYPERBENCH_OUTPUTS") or "outputs"]
    for value in wanted:
        path = Path(value.split("$", 1)[0] or ".").expanduser().absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            why = f"{existing} is a file, not a folder"
        elif not os.access(existing, os.W_OK | os.X_OK):
            why = f"{existing} is not writable"
        else:
            continue
        raise ConfigError(f"Cannot create the output directory {value}: {why}. Choose another place with "
                          f"hydra.run.dir=PATH (hydra.sweep.dir=PATH for -m) or HYPERBENCH_OUTPUTS=PATH.")


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
    global _JOB_STARTED
    _JOB_STARTED = True
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
    records before the jobs start and read them when all have run, so main() can exit 1 if any failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        import shutil

        shutil.rmtree(Path(str(config.hydra.sweep.dir)) / OUTCOMES, ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        global _SWEEP_FAILURES
        folder = Path(str(config.hydra.sweep.dir)) / OUTCOMES
        outcomes = []
        for f in sorted(folder.glob("*.json"), key=lambda f: int(f.stem) if f.stem.isdigit() else 0):
            try:
                outcomes.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                outcomes.append({"num": f.stem, "status": "unknown", "run_dir": "?"})
        failed = [f"{Path(o['run_dir']).name} {o['status']}" for o in outcomes if o.get("status") != "ok"]
        _SWEEP_FAILURES = (failed, len(outcomes)) if failed else None


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_PACKAGE}", config_name="config")
def _hydra_main(cfg: DictConfig) -> dict | None:
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    try:
        check_group_choices(sys.argv[1:])
        check_override_keys(sys.argv[1:])
        check_output_dirs(sys.argv[1:])
    except ConfigError as exc:
        print(f"hyperbench: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        _hydra_main()
    except SystemExit as exc:
        # Hydra reports a bad override or config (unknown key, wrong type, missing group option,
        # unwritable output dir) itself and exits 1; the project's code for bad input is 2.
        if exc.code == 1 and not _JOB_STARTED:
            sys.exit(2)
        raise
    except KeyboardInterrupt as exc:
        print("hyperbench: interrupted; what was measured so far is in the run directory "
              "(metrics.json status 'interrupted', history.csv, model.pt of the best epoch, checkpoint.pt to "
              "continue with trainer.resume=true).", file=sys.stderr)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    if _SWEEP_FAILURES:
        failed, total = _SWEEP_FAILURES
        print(f"hyperbench: {len(failed)} of {total} jobs did not finish ok ({'; '.join(failed)}); every job ran and "
              f"the others' results are in their directories; exit status {EXIT_SWEEP_FAILED}.", file=sys.stderr)
        sys.exit(EXIT_SWEEP_FAILED)


if __name__ == "__main__":
    main()
