"""``RandomStateCheckpoint``: a resumed run draws the random numbers the uninterrupted run would have drawn.

Lightning's checkpoints leave out the random streams. A run resumed from ``last.ckpt`` (or a Tune trial
resumed from its checkpoint) seeds them afresh, so a ``DataLoader(shuffle=True)`` deals its next epochs
in another order, dropout masks differ, and the resumed weights drift from the uninterrupted run's. This
callback stores the torch (CPU and, once initialised, CUDA), NumPy and Python streams in every checkpoint
and sets them back when the run resumes.

:class:`~nwave_lightning.training.SNNModule` adds one to every run (see
:func:`~nwave_lightning.callbacks.faults.fault_callbacks`). Limits: a checkpoint holds rank 0's streams, so
under DDP on GPUs the other ranks' CUDA streams start where they were seeded; a ``DataLoader`` with
``persistent_workers=True`` seeds its workers from the stream before its sampler draws, so it deals other batches.

Example:
    >>> import torch
    >>> saved = RandomStateCheckpoint().state_dict()
    >>> first = torch.rand(3)
    >>> RandomStateCheckpoint().load_state_dict(saved)
    >>> torch.equal(torch.rand(3), first)
    True
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["RandomStateCheckpoint"]


class RandomStateCheckpoint(Callback):
    """Save the random streams in each checkpoint and restore them on resume."""

    def state_dict(self) -> dict[str, Any]:
        # Plain types and tensors only: checkpoints load with ``weights_only=True``.
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
        states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state_dict["python"])
        # Another GPU count: the CUDA streams cannot be matched device by device, so they stay seeded.
        if "cuda" in state_dict and torch.cuda.is_available() and len(state_dict["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
