"""A callback that sends its own process a signal at a given training batch (a scheduler's kill, on cue)."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class SignalAt(Callback):
    """Send ``signal_name`` to this process when batch ``batch`` of epoch ``epoch`` (0-based) starts."""

    def __init__(self, epoch: int = 1, batch: int = 1, signal_name: str = "SIGTERM") -> None:
        self.epoch, self.batch, self.signal_name = epoch, batch, signal_name

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), getattr(signal, self.signal_name))
