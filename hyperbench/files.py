"""Atomic file writes: a reader never sees a half-written result.

A write that fails (disk full, quota, I/O error) removes its temporary file, leaves the previous
version of the file in place, and raises StorageError (one paragraph, exit 2 through the CLI).
A killed writer can leave its temporary file (.<name>.tmp.<random><suffix>); the next job that owns
the directory removes it (ownership.claim).
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import StorageError


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_path) on a temporary file next to `path`, then rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp.", suffix=path.suffix)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    os.close(fd)
    failure = None
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        free = _free_bytes(Path(tmp).parent)  # measured before the temporary file is removed
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            raise
        err = exc if isinstance(exc, OSError) else exc.__cause__ or exc.__context__
        if isinstance(err, OSError):
            failure = _storage_error(path, err)
        elif isinstance(exc, RuntimeError) and free < 1 << 20:
            # torch.save reports a full disk as a RuntimeError of its zip writer ("iostream error",
            # "unexpected pos"), without errno: a filesystem with under 1 MiB free is taken as the cause
            failure = _storage_error(path, OSError(errno.ENOSPC, f"No space left on device: {free} bytes free; "
                                                   f"torch.save: {str(exc).splitlines()[0][:120]}"))
        else:
            raise
    if failure is not None:
        err = None  # noqa: F841 (drops the last reference to the failed writer's exception)
        # raised outside the except block: the failed writer's frames (and its open, deleted temporary
        # file, whose space a full disk needs back) are freed instead of kept alive as __context__
        raise failure
    return path


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except (OSError, AttributeError):
        return 1 << 62


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _storage_error(path: Path, exc: OSError) -> StorageError:
    full = exc.errno in DISK_FULL
    what = "the disk is full" if full else "the write failed"
    return StorageError(f"Cannot write {path}: {what} ({exc.strerror or exc}). The file's previous version (if any) "
                        f"is unchanged and no temporary file was left.", path=path, disk_full=full)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    out = atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return out


def save_torch(obj: Any, path: str | Path) -> Path:
    import torch

    return atomic_write(path, lambda p: torch.save(obj, p))
