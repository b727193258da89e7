"""Which run `trainer.resume` continues, decided from files in run directories only.

    trainer.resume=false       start afresh (the default)
    trainer.resume=true        continue this job's own run directory if it holds a checkpoint.pt
                               (same hydra.run.dir / hydra.sweep.dir as before); otherwise the newest
                               run under outputs_root (runs/*/ and sweeps/*/*/) whose checkpoint.pt sits
                               beside a .hydra/config.yaml equal to this config apart from RESUME_FREE;
                               none found: start afresh, with a warning
    trainer.resume=<run dir>   continue that run (its config must match the same way)

A run found elsewhere is continued in this job's new directory: its checkpoint is copied here and its
metrics.json is marked status 'superseded' (with resumed_in), so a report lists each run once.
Works the same under every launcher, since it needs nothing but the run directories.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import ownership
from .checkpoint import CHECKPOINT, RESUME_FREE, load_checkpoint
from ..config import measured_settings
from ..errors import ConfigError
from ..files import atomic_write, write_json

log = logging.getLogger("hyperbench")

def comparable(cfg) -> dict:
    """The config as flat key -> value, without the settings a resume may change (checkpoint.RESUME_FREE)."""
    return measured_settings(cfg, RESUME_FREE)


def config_diff(saved, now) -> list[str]:
    a, b = comparable(saved), comparable(now)
    return [f"{k}={a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _running(d: Path) -> dict | None:
    """The owner of d's lock when a live job holds it (ownership), else None."""
    owner = ownership.read_lock(d / ownership.LOCK)
    return owner if owner and ownership.is_alive(owner) else None


def _saved_config(run_dir: Path):
    f = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.load(f) if f.exists() else None


def find_source(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The run directory to continue, None to start afresh; ConfigError for a resume target that cannot be."""
    want = cfg.trainer.get("resume", False)
    if want is None or want is False:
        return None
    if want is True:
        if (run_dir / CHECKPOINT).exists():
            return run_dir
        root = Path(str(cfg.outputs_root))
        found = [p.parent for pattern in (f"runs/*/{CHECKPOINT}", f"sweeps/*/*/{CHECKPOINT}")
                 for p in root.glob(pattern) if p.parent.resolve() != run_dir.resolve()]
        for d in sorted(found, key=lambda d: (d / CHECKPOINT).stat().st_mtime, reverse=True):
            if _running(d):
                continue  # a live job's checkpoint is not a run to take over
            saved = _saved_config(d)
            if saved is not None and not config_diff(saved, cfg):
                return d
        log.warning(f"trainer.resume=true: no run with this config and a {CHECKPOINT} under {root}/runs or "
                    f"{root}/sweeps; starting afresh.")
        return None
    src = Path(str(want)).expanduser()
    if src.name == CHECKPOINT:
        src = src.parent
    if not src.is_dir():
        raise ConfigError(f"trainer.resume='{want}' is not a run directory (no such directory). Give the "
                          f"directory of the run to continue (it holds {CHECKPOINT}), or trainer.resume=true to "
                          f"continue the newest run with this config under outputs_root.")
    if not (src / CHECKPOINT).exists():
        raise ConfigError(f"trainer.resume='{want}' holds no {CHECKPOINT} (the run stopped before its first "
                          f"checkpoint, or is not a training run); nothing to continue. Run afresh without "
                          f"trainer.resume.")
    if src.resolve() != run_dir.resolve() and _running(src):
        raise ConfigError(f"trainer.resume='{want}' is still running ({ownership.describe(_running(src))}); "
                          f"wait for it to finish or stop it first. Nothing was run.")
    saved = _saved_config(src)
    if saved is not None and src.resolve() != run_dir.resolve():
        diff = config_diff(saved, cfg)
        if diff:
            raise ConfigError(f"trainer.resume='{want}' was run with another config (" + "; ".join(diff[:5])
                              + ("; ..." if len(diff) > 5 else "") + "). Resume with the same overrides.")
    return src


def prepare(cfg: DictConfig, run_dir: Path) -> str | None:
    """Put the checkpoint to continue into run_dir; returns a note for metrics.json (resumed_from) or None."""
    src = find_source(cfg, run_dir)
    if src is None:
        return None
    state = load_checkpoint(src / CHECKPOINT)  # a damaged file fails here, before any training
    if src.resolve() != run_dir.resolve():
        atomic_write(run_dir / CHECKPOINT, lambda p: shutil.copyfile(src / CHECKPOINT, p))
        _mark_superseded(src, run_dir)
    log.info(f"resuming {src} after epoch {state['epoch']} in {run_dir}")
    return f"{src} @ epoch {state['epoch']}"


def _mark_superseded(src: Path, run_dir: Path) -> None:
    import json

    f = src / "metrics.json"
    try:
        old = json.loads(f.read_text()) if f.exists() else {}
    except (OSError, ValueError):
        old = {}
    old.update(status="superseded", resumed_in=str(run_dir), previous_status=old.get("status"),
               error=f"continued in {run_dir}")
    write_json(f, old)
