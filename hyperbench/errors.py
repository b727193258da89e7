"""User-facing errors: one paragraph that says what went wrong and what to do."""


class HyperbenchError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    status = "error"


class ConfigError(HyperbenchError):
    """An override or config value that cannot work."""

    status = "bad_config"


class DataError(HyperbenchError):
    """A dataset that is missing or unreadable."""

    status = "missing_data"


class DivergenceError(HyperbenchError):
    """The training loss became NaN or infinite."""

    status = "diverged"


class CheckpointError(HyperbenchError):
    """A checkpoint to resume from that is missing, damaged or does not fit the run."""

    status = "bad_checkpoint"


class StorageError(HyperbenchError):
    """A result file could not be written (disk full, quota, I/O error)."""

    status = "write_failed"

    def __init__(self, message: str, path=None, disk_full: bool = False):
        super().__init__(message)
        self.path = path
        if disk_full:
            self.status = "disk_full"
