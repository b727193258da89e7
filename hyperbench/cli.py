"""The `hyperbench` command: one Hydra entry point for every task.

    hyperbench model=hyper5_5 data=mnist                 # one run -> outputs/runs/<time>_.../
    hyperbench -m model=conv,hyper4_4 data=mnist         # a sweep -> outputs/sweeps/<time>_.../<n>_<model>/
    hyperbench task=summary model=hyper5_5 data=mnist    # parameter breakdown, no training
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from . import resume
from .config import validate
from .engine import seed_everything
from .errors import ConfigError, HyperbenchError
from .tasks import get_task
from .tasks.common import write_metrics

def _conf_dir() -> Path:
    """conf/ of the checkout (editable install), else the copy a regular install puts in sys.prefix."""
    for candidate in (Path(__file__).resolve().parent.parent / "conf", Path(sys.prefix) / "share" / "hyperbench" / "conf"):
        if (candidate / "config.yaml").exists():
            return candidate
    raise SystemExit("hyperbench: cannot find its Hydra configs (conf/config.yaml); reinstall with pip install -e .")


CONF_DIR = _conf_dir()
GROUPS = ("task", "data", "model", "trainer", "rotation", "transform", "experiment", "logger", "cl")
log = logging.getLogger("hyperbench")
_JOB_STARTED = False  # set once a job runs: an exit before that is Hydra refusing the command line


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _unknown_choice_message(group: str, value: str) -> str:
    options = group_options(group)
    msg = f"Unknown {group} '{value}'. Available {group} configs: {', '.join(options)}."
    m = re.fullmatch(r"(?:vgg_block(-?\d+)_)?hyper(-?\d+)_(-?\d+)", value)
    if group == "model" and m:
        blocks, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        generic = "model=hyper" if blocks is None else f"model=vgg_hyper model.blocks={blocks}"
        if a < 1 or b < 1:
            msg += (f" A hypernetwork HyperA_B needs a positive embedding size A and hidden size B "
                    f"(got A={a}, B={b}); e.g. {generic} model.z_dim=5 model.d=5.")
        elif blocks is not None and blocks not in ("1", "2", "3"):
            msg += f" VGG-BlockN exists for N = 1, 2, 3 (seed 002 Table 1), not {blocks}."
        else:
            msg += (f" Any HyperA_B without its own file is composed from the generic one: "
                    f"{generic} model.z_dim={a} model.d={b}.")
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
            if value in ("null", "None") and group in ("experiment", "rotation", "transform"):
                continue
            if value not in group_options(group):
                raise ConfigError(_unknown_choice_message(group, value))


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


def run(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Validate and run one job, recording any failure in its metrics.json with what was measured.

    A user error exits with status 2 (one paragraph, no traceback). In a sweep a failed or crashed
    job is recorded and the sweep goes on with the next job.
    """
    global _JOB_STARTED
    _JOB_STARTED = True
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        validate(cfg)
        resume.prepare(cfg, run_dir)  # trainer.resume: put the checkpoint to continue into run_dir
        seed_everything(int(cfg.seed))  # model initialisation depends on the seed too
        return get_task(str(cfg.task.name))(cfg, run_dir)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = getattr(exc, "status", "interrupted" if interrupted else "crashed")
        error = str(exc) or type(exc).__name__
        write_metrics(run_dir, {"status": status, "error": error, **getattr(exc, "partial_metrics", {})})
        if interrupted or not isinstance(exc, Exception):
            raise
        if multirun:
            log.error(error, exc_info=not isinstance(exc, HyperbenchError))
            return None
        if isinstance(exc, HyperbenchError):
            print(f"hyperbench: {exc}", file=sys.stderr)
            sys.exit(2)
        raise


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> dict | None:
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    try:
        check_group_choices(sys.argv[1:])
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
    except KeyboardInterrupt:
        print("hyperbench: interrupted; what was measured so far is in the run directory "
              "(metrics.json status 'interrupted', history.csv, model.pt of the best epoch).", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
