"""Per-epoch scalar logging (logger=csv | tensorboard). history.csv is always written by the task;
logger=tensorboard also writes each new history row as TensorBoard scalars under <run dir>/<logger.dir>/."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..errors import ConfigError


class CSVLogger:
    def log(self, history: list[dict]) -> None:  # history.csv is the record
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger:
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install -e '.[cluster]' "
                              f"(or pip install tensorboard), or use logger=csv ({exc}).") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.last_epoch = 0  # a resumed run replays the history it inherited

    def log(self, history: list[dict]) -> None:
        for row in history:
            epoch = int(row["epoch"])
            if epoch <= self.last_epoch:
                continue
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "val_", "test_"))
                                           else key, value, epoch)
            self.last_epoch = epoch
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(cfg: DictConfig, run_dir: Path):
    lg = cfg.get("logger") or {"name": "csv"}
    name = str(lg.get("name", "csv"))
    if name == "csv":
        return CSVLogger()
    if name == "tensorboard":
        return TensorBoardLogger(Path(run_dir) / str(lg.get("dir", "tensorboard")))
    raise ConfigError(f"logger.name='{name}' is not one of csv, tensorboard.")
