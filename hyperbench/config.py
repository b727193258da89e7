"""Start-up checks of a composed config: wrong types, unknown keys and impossible values fail before any work.

The schema is RULES (key -> type, allowed values) plus KNOWN_KEYS: the keys a trainer or logger config
and the top level may hold are those of conf/trainer/default.yaml, conf/logger/*.yaml and conf/config.yaml,
so a typo in a user's own config file (or a `+trainer.x=` override) is refused too. Unknown keys on the
command line are already refused by Hydra (the config is in struct mode); group names (model=, data=,
task=, ...) are checked in cli.check_group_choices before Hydra composes.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

# The configs ship as the package hyperbench.conf (conf/ of the checkout, linked from hyperbench/conf), so an
# editable install, a checkout on PYTHONPATH and a wheel all find them by package name.
CONF_PACKAGE = "hyperbench.conf"
CONF_DIR = Path(str(files(CONF_PACKAGE)))
# The config groups (conf/<group>/*.yaml) a command line may choose from.
GROUPS = ("task", "data", "model", "hypernet", "embedding", "trainer", "rotation", "transform", "experiment", "logger",
          "cl")
DEVICES = ("auto", "cpu", "cuda", "mps")


def group_options(group: str) -> list[str]:
    """The names a group may take: its conf/<group>/*.yaml files."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))

# Settings that do not change what a run measures (where files go, how progress is shown, how often a checkpoint
# is written, ...). The one list: the report pools runs differing only in these (and the seed) as seeds of one
# configuration (report.common.config_key), and a resume may change them (training.checkpoint.RESUME_FREE).
NOT_MEASURED = ("outputs_root", "data.root", "data.download", "trainer.resume", "trainer.checkpoint_every",
                "trainer.progress", "trainer.log_every", "trainer.save_model", "trainer.device", "logger",
                "task.compare_with")


def flat_config(cfg) -> dict:
    """A config (DictConfig or plain dict) as flat 'a.b.c' -> value. Interpolations are resolved (the trainer's
    batch/lr come from ${data.recipe...}), unless one cannot be here (then taken as written)."""
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    if not OmegaConf.is_config(cfg):
        return dict(walk(dict(cfg)))
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that does not resolve here (e.g. a missing env var)
        container = OmegaConf.to_container(cfg, resolve=False)
    return dict(walk(container))


# Settings (and config groups) added after runs were recorded, at the value that reproduces the code before
# them: a run written before one existed compares equal (resume, the report's pooling) to one that has it at
# this value. hypernet=none: the plain model, as before the hypernet group existed.
ADDED_LATER = {"hypernet.name": "none", "trainer.fused": False, "model.mixing": "softmax", "model.init": "torch"}


def unset(key: str, value) -> bool:
    """A setting that means "not used" (null) or one added later at its old behaviour (ADDED_LATER): equal to
    its absence, so runs written before it existed compare equal to runs that have it."""
    return value is None or (key in ADDED_LATER and ADDED_LATER[key] == value
                             and type(ADDED_LATER[key]) is type(value))


def measured_settings(cfg, ignore: tuple[str, ...] = NOT_MEASURED) -> dict:
    """The flat config without the `ignore` keys (and their sub-keys) and without unset values: what two runs
    must share to measure the same thing."""
    return {k: v for k, v in flat_config(cfg).items()
            if not any(k == n or k.startswith(n + ".") for n in ignore) and not unset(k, v)}


# key -> (kind, test, what a valid value is, example override)
Rule = tuple[str, Callable[[Any], bool], str, str]
RULES: dict[str, Rule] = {
    "seed": ("int", lambda v: v >= 0, "a non-negative integer", "seed=1"),
    "trainer.epochs": ("int", lambda v: v >= 1, "a positive integer", "trainer.epochs=10"),
    "trainer.batch_size": ("int", lambda v: v >= 1, "a positive integer", "trainer.batch_size=1000"),
    "trainer.eval_batch_size": ("int", lambda v: v >= 1, "a positive integer", "trainer.eval_batch_size=5000"),
    "trainer.lr": ("float", lambda v: v > 0, "a positive number", "trainer.lr=0.004"),
    "trainer.momentum": ("float", lambda v: 0 <= v < 1, "a number in [0, 1)", "trainer.momentum=0.9"),
    "trainer.weight_decay": ("float", lambda v: v >= 0, "a non-negative number", "trainer.weight_decay=0"),
    "trainer.lr_decay": ("float", lambda v: 0 < v <= 1, "a number in (0, 1]", "trainer.lr_decay=0.999"),
    "trainer.min_lr": ("float", lambda v: v >= 0, "a non-negative number", "trainer.min_lr=0.0001"),
    "trainer.grad_clip": ("float?", lambda v: v > 0, "a positive number or null", "trainer.grad_clip=100"),
    "trainer.log_every": ("int", lambda v: v >= 1, "a positive integer", "trainer.log_every=10"),
    "trainer.device": ("str", lambda v: v.split(":")[0] in DEVICES, "one of auto, cpu, cuda, cuda:N, mps",
                       "trainer.device=cpu"),
    "data.val_size": ("int", lambda v: v >= 1, "a positive integer", "data.val_size=5000"),
    "data.split_seed": ("int", lambda v: v >= 0, "a non-negative integer", "data.split_seed=0"),
    "data.train_size": ("int?", lambda v: v >= 1, "a positive integer or null", "data.train_size=1000"),
    "data.test_size": ("int?", lambda v: v >= 1, "a positive integer or null", "data.test_size=1000"),
    "data.augment.pad": ("int", lambda v: v >= 0, "a non-negative integer", "data.augment.pad=1"),
    "task.eval_repeats": ("int", lambda v: v >= 1, "a positive integer", "task.eval_repeats=5"),
    "task.eval_seed": ("int", lambda v: v >= 0, "a non-negative integer", "task.eval_seed=0"),
    "task.curve_step": ("float", lambda v: 0 < v <= 180 and (360 / v) == int(360 / v),
                        "a positive number of degrees that divides 360", "task.curve_step=5"),
    "task.curve_images": ("int?", lambda v: v >= 1, "a positive integer or null", "task.curve_images=500"),
    "task.six_nine_step": ("float", lambda v: 0 < v <= 180 and (360 / v) == int(360 / v),
                           "a positive number of degrees that divides 360", "task.six_nine_step=10"),
    "task.six_nine_images": ("int", lambda v: v >= 1, "a positive integer", "task.six_nine_images=100"),
    "model.z_dim": ("int", lambda v: v >= 1, "a positive integer (the embedding size A of HyperA_B)",
                    "model.z_dim=5"),
    "model.d": ("int", lambda v: v >= 1, "a positive integer (the hidden size B of HyperA_B)", "model.d=5"),
    "trainer.optimizer": ("str", lambda v: v.lower() in ("adam", "sgd", "rmsprop", "rmsprop_tf"), "one of adam, sgd, rmsprop, rmsprop_tf",
                          "trainer.optimizer=adam"),
    "trainer.channels_last": ("auto|bool", lambda v: True, "auto, true or false", "trainer.channels_last=auto"),
    "trainer.progress": ("auto|bool", lambda v: True, "auto, true or false", "trainer.progress=false"),
    "trainer.save_model": ("bool", lambda v: True, "true or false", "trainer.save_model=true"),
    "trainer.checkpoint_every": ("int", lambda v: v >= 1, "a positive integer (epochs between checkpoints)",
                                 "trainer.checkpoint_every=5"),
    "trainer.resume": ("bool|str", lambda v: v != "", "true, false or the directory of the run to continue",
                       "trainer.resume=true"),
    "data.download": ("bool", lambda v: True, "true or false", "data.download=false"),
    "data.check_md5": ("bool", lambda v: True, "true or false", "data.check_md5=false"),
    "trainer.amp": ("str", lambda v: v in ("auto", "off", "bf16", "fp16"), "one of auto, off, bf16, fp16",
                    "trainer.amp=bf16"),
    "trainer.compile": ("bool", lambda v: True, "true or false", "trainer.compile=true"),
    "trainer.fused": ("bool", lambda v: True, "true or false", "trainer.fused=true"),
    "logger.name": ("str", lambda v: v in ("csv", "tensorboard"), "one of csv, tensorboard", "logger=tensorboard"),
}


def _kind_ok(kind: str, v: Any) -> bool:
    if kind.endswith("?") and v is None:
        return True
    base = kind.rstrip("?")
    if base == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if base == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if base == "bool":
        return isinstance(v, bool)
    if base == "auto|bool":
        return isinstance(v, bool) or v == "auto"
    if base == "bool|str":
        return isinstance(v, (bool, str))
    return isinstance(v, str)


def known_keys() -> dict[str, set[str]]:
    """Section -> the keys it may hold, read from the shipped configs ('' = the top level: config.yaml,
    the group names, and what any `# @package _global_` group config (a task, an experiment) puts there)."""
    def keys(f: Path) -> set[str]:
        return set(OmegaConf.load(f)) - {"defaults"}

    top = keys(CONF_DIR / "config.yaml")
    for f in CONF_DIR.glob("*/*.yaml"):
        if f.read_text().lstrip().startswith("# @package _global_"):
            top |= keys(f)
    loggers = set().union(*(keys(f) for f in (CONF_DIR / "logger").glob("*.yaml")))
    trainer = set().union(*(keys(f) for f in (CONF_DIR / "trainer").glob("*.yaml")))
    return {"": top | set(GROUPS) | {"hydra"}, "trainer": trainer, "logger": loggers}


def unknown_keys(cfg: DictConfig) -> list[str]:
    problems = []
    for section, known in known_keys().items():
        node = cfg if section == "" else OmegaConf.select(cfg, section)
        if not isinstance(node, DictConfig):
            continue
        extra = sorted(set(node) - known)
        for key in extra:
            full = f"{section}.{key}" if section else key
            problems.append(f"unknown key {full} (known {section or 'top-level'} keys: {', '.join(sorted(known))})")
    return problems


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad value, what it should be, and an example override."""
    problems = unknown_keys(cfg)
    for key, (kind, test, what, example) in RULES.items():
        value = OmegaConf.select(cfg, key, default="__absent__")
        if value == "__absent__":
            continue
        ok = _kind_ok(kind, value) and (value is None or test(value))
        if not ok:
            problems.append(f"{key} must be {what}, got {value!r} ({type(value).__name__}); e.g. {example}")
    scale = OmegaConf.select(cfg, "data.scale")
    if scale is not None and (len(scale) != 2 or not all(_kind_ok("float", s) for s in scale) or scale[0] >= scale[1]):
        problems.append(f"data.scale must be [low, high] with low < high, got {OmegaConf.to_container(scale)}")
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ". Nothing was run.")
