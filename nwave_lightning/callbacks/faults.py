"""The fault-handling callbacks every ``SNNModule`` run gets unless the trainer brings its own.

Example:
    >>> [type(cb).__name__ for cb in fault_callbacks([])]
    ['NonFiniteGuard', 'InterruptCheckpoint', 'RandomStateCheckpoint']
    >>> [type(cb).__name__ for cb in fault_callbacks([NonFiniteGuard(enabled=False)])]
    ['InterruptCheckpoint', 'RandomStateCheckpoint']
"""

from __future__ import annotations

from typing import Sequence

from lightning.pytorch.callbacks import Callback

from .interrupt import InterruptCheckpoint
from .non_finite import NonFiniteGuard
from .random_state import RandomStateCheckpoint

__all__ = ["FAULT_CALLBACKS", "fault_callbacks"]

FAULT_CALLBACKS = (NonFiniteGuard, InterruptCheckpoint, RandomStateCheckpoint)


def fault_callbacks(present: Sequence[Callback]) -> list[Callback]:
    """A fresh instance of each of :data:`FAULT_CALLBACKS` whose type is not among ``present``.

    A trainer's own instance wins (``NonFiniteGuard(enabled=False)`` switches the guard off): Lightning
    replaces a trainer callback by a module callback of the same type, so the default stays out instead.
    """
    return [kind() for kind in FAULT_CALLBACKS if not any(isinstance(cb, kind) for cb in present)]
