"""A run directory belongs to one run, and a finished or resumable run is never overwritten.

While a job runs, its directory holds `hyperbench.lock` (pid, host, start time, command line), created
atomically and removed when the job ends (also after an exception, Ctrl-C or SIGTERM). A second job
into a locked directory is refused (exit 2, naming the owner). A lock whose process is gone (kill -9,
a power cut) is stale: the next job takes it over and says so in its log. A lock from another host cannot
be checked from here; it is treated as live, and the message says which file to delete if that job is gone.

A directory that already holds a finished run (metrics.json with a status other than a refusal before
training) or a resumable one (checkpoint.pt, model.pt) is refused too, unless the job resumes that very
run (trainer.resume=true with its checkpoint there, or trainer.resume=<that directory>).

Hydra writes the job's log and .hydra/ into the directory before the task starts, so the decision is made
at that moment, in the resolver `hb_claim` that conf/config.yaml puts in `hydra.output_subdir` and the log
file name (Hydra resolves them per job, in the job's own process, under every launcher):
  - a refused job writes nothing there (no .hydra/, log to os.devnull) and run() exits 2;
  - a job resuming its own directory writes Hydra's files into .hydra.pending/ and they replace .hydra/
    only once the resume is verified (config valid, checkpoint readable), so a refused resume leaves
    the old run's files byte-identical.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger("hyperbench")

LOCK = "hyperbench.lock"
PENDING = ".hydra.pending"
CHECKPOINT = "checkpoint.pt"  # engine.CHECKPOINT (not imported: this module loads before torch)
# metrics.json statuses of a job refused before training: nothing was measured, the directory may be reused
REFUSALS = ("bad_config", "bad_checkpoint", "missing_data")
TEMP_MARK = ".tmp."  # files.atomic_write's temporary files are .<name>.tmp.<random><suffix>


@dataclass
class Claim:
    run_dir: Path
    refusal: str | None = None  # the one-paragraph reason this job may not use run_dir
    resuming: bool = False  # resuming the run already in run_dir: Hydra's files go to PENDING first
    held: bool = False  # this process holds run_dir/LOCK
    took_over: str | None = None  # description of a stale lock this job replaced


_CLAIMS: dict[str, Claim] = {}


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of process pid (tells a reused pid apart), None where /proc is absent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:500]}


def read_lock(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text())
        return owner if isinstance(owner, dict) and "pid" in owner else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: treated as stale


def is_alive(owner: dict) -> bool:
    """Whether the process that wrote a lock still runs (always True for another host: cannot tell)."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    start = owner.get("proc_start")
    return start is None or _proc_start(pid) in (None, start)


def describe(owner: dict) -> str:
    return (f"pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}"
            + (f": {owner['command']}" if owner.get("command") else ""))


def acquire(run_dir: Path) -> tuple[bool, str | None]:
    """Take run_dir/LOCK. Returns (True, note on a stale lock taken over or None) or (False, refusal)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    mine = json.dumps(_me()) + "\n"
    tmp = run_dir / f".{LOCK}.new.{os.getpid()}"
    tmp.write_text(mine)
    note = None
    try:
        for _ in range(5):
            try:
                _create_exclusive(tmp, lock, mine)
                return True, note
            except FileExistsError:
                pass
            owner = read_lock(lock)
            if owner is None:
                continue  # released meanwhile
            if is_alive(owner):
                return False, (
                    f"The run directory {run_dir} is in use by another hyperbench job ({describe(owner)}); two "
                    f"jobs never share one. Wait for it to finish, or choose another directory with "
                    f"hydra.run.dir=PATH (hydra.sweep.dir=PATH for -m). If that job is gone (e.g. it ran on "
                    f"another machine), delete {lock}. Nothing was run.")
            stale = run_dir / f".{LOCK}.stale.{os.getpid()}"
            try:
                os.replace(lock, stale)
            except FileNotFoundError:
                continue
            if read_lock(stale) != owner:  # a live job took it between our read and the move: give it back
                os.replace(stale, lock)
                continue
            stale.unlink(missing_ok=True)
            note = (f"took over the stale lock {lock} of a job that is gone ("
                    f"{describe(owner) if owner else 'unreadable lock file'})")
        return False, f"Could not take the lock {lock} (it keeps changing); another job is starting there. Nothing was run."
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(tmp: Path, lock: Path, text: str) -> None:
    """Create lock with text, failing with FileExistsError if it exists: a hard link of the complete file
    (atomic), or O_EXCL where the filesystem has no hard links."""
    try:
        os.link(tmp, lock)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)


def release(run_dir: Path) -> None:
    lock = Path(run_dir) / LOCK
    owner = read_lock(lock)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


def previous_run(run_dir: Path) -> str | None:
    """What in run_dir makes it a finished or resumable run, or None when it holds none."""
    found = []
    f = run_dir / "metrics.json"
    if f.exists():
        try:
            status = json.loads(f.read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            status = "unreadable"
        if status not in REFUSALS:
            found.append(f"metrics.json with status '{status}'")
    found += [name for name in (CHECKPOINT, "model.pt") if (run_dir / name).exists()]
    return ", ".join(found) or None


def _resumes_here(run_dir: Path, resume) -> bool:
    if resume is True:
        return (run_dir / CHECKPOINT).exists()
    if isinstance(resume, str) and resume not in ("", "false", "False"):
        target = Path(resume).expanduser()
        target = target.parent if target.name == CHECKPOINT else target
        return target.exists() and target.resolve() == run_dir.resolve()
    return False


def _clean_leftovers(run_dir: Path) -> None:
    """Remove what a killed job left behind: temporary files of the atomic writer, unconfirmed Hydra files."""
    for p in run_dir.glob(f".*{TEMP_MARK}*"):
        p.unlink(missing_ok=True)
    for p in (*run_dir.glob(f".{LOCK}.stale.*"), *run_dir.glob(f".{LOCK}.new.*")):
        pid = p.name.rsplit(".", 1)[1]
        if not pid.isdigit() or not is_alive({"pid": pid, "host": socket.gethostname()}):
            p.unlink(missing_ok=True)
    shutil.rmtree(run_dir / PENDING, ignore_errors=True)


def claim(run_dir: str | Path, resume=False) -> Claim:
    """Decide (once per job) whether this process may run in run_dir, taking its lock if so."""
    run_dir = Path(run_dir).absolute()
    key = str(run_dir)
    if key in _CLAIMS:
        return _CLAIMS[key]
    c = Claim(run_dir)
    ok, note = acquire(run_dir)
    if not ok:
        c.refusal = note
    else:
        c.held, c.took_over = True, note
        _clean_leftovers(run_dir)
        found = previous_run(run_dir)
        if found and _resumes_here(run_dir, resume):
            c.resuming = True
        elif found:
            release(run_dir)
            c.held = False
            c.refusal = (
                f"The run directory {run_dir} already holds a run ({found}); hyperbench never overwrites one. "
                f"Continue it with trainer.resume=true and the same hydra.run.dir (it needs its {CHECKPOINT}), or "
                f"choose a new directory with hydra.run.dir=PATH (leave it out for a fresh timestamped one). "
                f"Its files were not touched. Nothing was run.")
    _CLAIMS[key] = c
    return c


def finish(run_dir: str | Path) -> None:
    """The job in run_dir ended: release its lock and forget its claim."""
    c = _CLAIMS.pop(str(Path(run_dir).absolute()), None)
    if c is not None and c.held:
        release(c.run_dir)
    if c is not None:
        shutil.rmtree(c.run_dir / PENDING, ignore_errors=True)  # an unconfirmed resume's Hydra files


def commit_hydra_files(run_dir: str | Path) -> None:
    """A resume of run_dir is verified: its new Hydra files (.hydra.pending/) replace .hydra/."""
    pending = Path(run_dir) / PENDING
    if not pending.is_dir():
        return
    target = Path(run_dir) / ".hydra"
    target.mkdir(exist_ok=True)
    for f in pending.iterdir():
        os.replace(f, target / f.name)
    pending.rmdir()


@atexit.register
def _release_all() -> None:
    for key in list(_CLAIMS):
        finish(key)


def _resolver(what: str, *, _root_) -> str | None:
    """${hb_claim:subdir} -> Hydra's output_subdir; ${hb_claim:log} -> the job's log file.
    Without a job directory (hyperbench --cfg hydra --resolve) the defaults, and no claim."""
    out = OmegaConf.select(_root_, "hydra.runtime.output_dir", default=None, throw_on_missing=False)
    name = OmegaConf.select(_root_, "hydra.job.name", default="hyperbench", throw_on_missing=False)
    if not out:
        return ".hydra" if what == "subdir" else f"{name}.log"
    resume = OmegaConf.select(_root_, "trainer.resume", default=False, throw_on_resolution_failure=False)
    c = claim(out, resume)
    if what == "subdir":
        return None if c.refusal else (PENDING if c.resuming else ".hydra")
    return os.devnull if c.refusal else str(Path(out) / f"{name}.log")


OmegaConf.register_new_resolver("hb_claim", _resolver, replace=True)
