"""Run the hyperbench command with an epoch callback that kills the process (SIGKILL, as kill -9) right after
the checkpoint of one epoch is on disk: a kill at a known point, for the resume tests.

    python tests/kill_after_epoch.py EPOCH [--stage NAME] -- <hyperbench arguments>

--stage NAME: only in the training whose run directory is named NAME (task=continual trains each task of the
sequence in <run dir>/tasks/<stage>/).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from hyperbench import cli
from hyperbench.training import engine


def main() -> None:
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("epoch", type=int)
    parser.add_argument("--stage", default=None)
    opts = parser.parse_args(argv[:cut])
    args = argv[cut + 1:]

    def kill(trainer, epoch: int) -> None:
        stage_ok = opts.stage is None or (trainer.run_dir is not None and trainer.run_dir.name == opts.stage)
        if epoch == opts.epoch and stage_ok and trainer.checkpoint_path is not None:
            trainer.wait_for_checkpoint()
            os.kill(os.getpid(), signal.SIGKILL)

    engine.EPOCH_CALLBACKS.append(kill)
    sys.argv = ["hyperbench", *args]
    cli.main()


if __name__ == "__main__":
    main()
