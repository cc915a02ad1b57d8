"""Callbacks that fail or hold a trial on purpose, for the ``nwave tune`` fault tests (imported by class path)."""

import os
import time

from lightning.pytorch.callbacks import Callback

from nwave_lightning.callbacks import NonFiniteError


class FailAtFirstEpoch(Callback):
    """At the end of the first training epoch: ``kind="error"`` raises RuntimeError, ``"nonfinite"``
    NonFiniteError, ``"none"`` nothing. Each try leaves a file ``<marker_dir>/<kind>_<pid>_<n>``."""

    def __init__(self, kind: str = "none", marker_dir: str = ".") -> None:
        self.kind, self.marker_dir = kind, marker_dir

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch != 0 or self.kind == "none":
            return
        n = len(os.listdir(self.marker_dir))
        open(os.path.join(self.marker_dir, f"{self.kind}_{os.getpid()}_{n}"), "w").close()
        if self.kind == "error":
            raise RuntimeError("FailAtFirstEpoch: planned failure")
        raise NonFiniteError("NonFiniteGuard: 1 NaN of 1 values in the loss at stage train, epoch 0 (planned)")


class HoldAtEpoch(Callback):
    """At the start of training epoch ``epoch`` (0-based), wait while ``hold_file`` exists.

    The epochs before it are reported and checkpointed, and nothing newer is: a kill of the experiment then
    lands at a known point, after Ray has saved its experiment state with the trial's latest checkpoint.
    """

    def __init__(self, epoch: int = 2, hold_file: str = "hold") -> None:
        self.epoch, self.hold_file = epoch, hold_file

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        while trainer.current_epoch == self.epoch and os.path.exists(self.hold_file):
            time.sleep(0.05)
