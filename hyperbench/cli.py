"""The `hyperbench` command: one Hydra entry point for every task.

    hyperbench model=hyper5_5 data=mnist                 # one run -> outputs/runs/<time>_.../
    hyperbench -m model=conv,hyper4_4 data=mnist         # a sweep -> outputs/sweeps/<time>_.../<n>_<model>/
    hyperbench task=summary model=hyper5_5 data=mnist    # parameter breakdown, no training
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import jobs
from .config import CONF_PACKAGE, GROUPS, group_options
from .errors import ConfigError
from .models.names import parse_model_name

# Config names that were renamed: old name -> the new one, so old commands get a pointer instead of a bare refusal.
RENAMED = {("rotation", "seed000"): "restricted49", ("rotation", "seed001"): "restricted34"}
# Exit codes (docs/reliability.md): 0 every job ok; 1 a sweep in which some job failed or was refused (after
# every job ran), or a crash (traceback); 2 bad input or a refused/failed single run, nothing lost;
# 130 Ctrl-C, 143 SIGTERM (what was measured is kept).
EXIT_SWEEP_FAILED = 1


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


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_PACKAGE}", config_name="config")
def _hydra_main(cfg: DictConfig) -> dict | None:
    return jobs.run(cfg, Path(HydraConfig.get().runtime.output_dir))


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
        if exc.code == 1 and not jobs.state.job_started:
            sys.exit(2)
        raise
    except KeyboardInterrupt as exc:
        print("hyperbench: interrupted; what was measured so far is in the run directory "
              "(metrics.json status 'interrupted', history.csv, model.pt of the best epoch, checkpoint.pt to "
              "continue with trainer.resume=true).", file=sys.stderr)
        sys.exit(143 if isinstance(exc, jobs.Terminated) else 130)
    if jobs.state.sweep_failures:
        failed, total = jobs.state.sweep_failures
        print(f"hyperbench: {len(failed)} of {total} jobs did not finish ok ({'; '.join(failed)}); every job ran and "
              f"the others' results are in their directories; exit status {EXIT_SWEEP_FAILED}.", file=sys.stderr)
        sys.exit(EXIT_SWEEP_FAILED)


if __name__ == "__main__":
    main()
