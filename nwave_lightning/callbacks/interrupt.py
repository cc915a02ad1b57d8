"""``InterruptCheckpoint``: SIGTERM or Ctrl-C during fit saves ``last.ckpt`` and exits non-zero.

A cluster scheduler ends a job with SIGTERM (then SIGKILL after a grace
period); a person ends it with Ctrl-C. Lightning turns SIGTERM into a stop at
the next batch boundary but exits with status 0 and saves nothing, so the
scheduler records a success and the epoch in progress is lost. This callback:

* makes the first Ctrl-C (SIGINT) a request to stop at the next batch
  boundary too, like SIGTERM (a second Ctrl-C aborts at once, saving nothing:
  the interrupted step may be half done);
* when the run stops that way, writes ``last.ckpt`` into the checkpoint
  folder atomically (a temporary file renamed over the old one, so a kill
  during the write leaves the previous file intact), with the loop state of
  the batch it stopped after;
* prints where the checkpoint is and how to resume, and makes the process
  exit with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT), the shell's
  convention for "ended by a signal".

Resuming (``--ckpt_path last``) continues mid-epoch from that batch; with the
framework's datamodules (whose loaders are resumable) the result equals the
uninterrupted run. Runs without checkpointing (``enable_checkpointing=False``)
still stop cleanly and exit non-zero, but save nothing.

:class:`~nwave_lightning.training.SNNModule` adds one to every fit.

Example:
    >>> cb = InterruptCheckpoint()
    >>> cb.exit_code("SIGTERM"), cb.exit_code("SIGINT")
    (143, 130)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..io import atomic_write

__all__ = ["InterruptCheckpoint"]


def _in_main_thread() -> bool:
    # Signal handlers can only be installed from the main thread (Ray Tune runs trials in others).
    return threading.current_thread() is threading.main_thread()


class InterruptCheckpoint(Callback):
    """Save a complete ``last.ckpt`` when SIGTERM or Ctrl-C stops ``fit``, then exit with ``128 + signal``."""

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None  # what stopped the run, once something did
        self.saved_path: Optional[str] = None
        self._previous_sigint: Any = None
        self._installed = False

    @staticmethod
    def exit_code(signal_name: str) -> int:
        """The shell's status for a process ended by ``signal_name``."""
        return 128 + int(getattr(signal, signal_name))

    # -- Ctrl-C: a stop request at the next batch boundary -----------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None or not _lightning_handles_sigterm():
            # Second Ctrl-C (or nothing to hand over to): abort now, as Python would.
            self._restore_sigint()
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        print(
            "\nnwave: Ctrl-C received; stopping after the current batch and saving last.ckpt "
            "(press Ctrl-C again to abort at once, saving nothing).",
            file=sys.stderr,
            flush=True,
        )
        # Lightning's SIGTERM handler marks the trainer; its loops stop at the next batch boundary.
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._installed and _in_main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._installed = False

    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.signal_name, self.saved_path = None, None
        if _in_main_thread() and not self._installed:
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        # A resumable loader records how far the epoch got, for a checkpoint written mid-epoch.
        loader = trainer.train_dataloader
        if hasattr(loader, "consumed") and hasattr(loader, "load_state_dict"):
            loader.consumed = batch_idx + 1

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._restore_sigint()

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._restore_sigint()

    # -- the stop itself -----------------------------------------------------
    def checkpoint_path(self, trainer: "pl.Trainer") -> Optional[str]:
        """Where ``last.ckpt`` goes: the run's ``ModelCheckpoint`` folder (``None`` without checkpointing)."""
        callback = trainer.checkpoint_callback
        if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
            return None
        return os.path.join(callback.dirpath, callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, KeyboardInterrupt):
            if trainer.is_global_zero:
                print("nwave: aborted by a second Ctrl-C inside a step; nothing saved (the last saved checkpoint is kept).", file=sys.stderr)
            return
        if not isinstance(exception, SIGTERMException):
            return
        name = self.signal_name or "SIGTERM"
        self.signal_name = name
        done, total = trainer.fit_loop.epoch_loop.batch_progress.current.completed, trainer.num_training_batches
        if 0 < done < total:
            where = f"epoch {trainer.current_epoch + 1}, after {done} of {total} batches"
        else:  # during validation or between epochs
            where = f"at step {trainer.global_step}, at the end of an epoch"
        path = self.checkpoint_path(trainer)
        if path is not None:
            if trainer.is_global_zero:
                atomic_write(path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))
            else:
                trainer.save_checkpoint(path, weights_only=False)  # a collective: only rank 0 writes
            self.saved_path = path
        # SIGTERMException is a SystemExit without a status (0, "success" to a scheduler).
        exception.code = self.exit_code(name)
        if trainer.is_global_zero:
            if path is None:
                print(f"nwave: {name} received during fit ({where}); checkpointing is off, so nothing was saved.", file=sys.stderr)
            else:
                print(
                    f"nwave: {name} received during fit ({where}); saved {os.path.abspath(path)}\n"
                    f"  resume with: the same command plus --ckpt_path last "
                    f"(Python: trainer.fit(..., ckpt_path={os.path.abspath(path)!r}))",
                    file=sys.stderr,
                    flush=True,
                )


def _lightning_handles_sigterm() -> bool:
    handler = signal.getsignal(signal.SIGTERM)
    return callable(handler)
