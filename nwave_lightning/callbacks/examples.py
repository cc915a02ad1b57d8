"""Example subclasses, one per extension point, importable from YAML with ``class_path``.

They are small on purpose: each overrides the one documented method of its
base class (and keeps its extra state in ``state_dict`` where it has some).
``configs/callbacks/custom_subclasses.yaml`` uses them.

Example:
    >>> WarmupCosineSurrogate(start_value=5.0, end_value=25.0, total_steps=4, warmup_steps=2).scheduled_value(1)
    5.0
    >>> stop = MovingAverageEarlyStopping(window=2, metric="val_loss", patience=1)
    >>> [stop.should_stop(v, e) for e, v in enumerate([1.0, 0.5, 0.9, 0.9], start=1)]
    [False, False, False, True]
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .activity_figures import ActivityFigures
from .early_stopping import NWaveEarlyStopping
from .surrogate_scheduler import SurrogateScheduler

__all__ = ["MovingAverageEarlyStopping", "ParticipationFigures", "WarmupCosineSurrogate"]


class WarmupCosineSurrogate(SurrogateScheduler):
    """Hold ``start_value`` for ``warmup_steps`` epochs, then a half cosine to ``end_value`` over ``total_steps``.

    ``value_at(step) = start`` for ``step < warmup_steps``, else the ``cosine``
    policy evaluated at ``step - warmup_steps``.

    Args:
        warmup_steps: Epochs at ``start_value`` (>= 0).
        **kwargs: :class:`SurrogateScheduler` arguments (``policy`` is fixed to ``"cosine"``).
    """

    def __init__(self, warmup_steps: int = 5, **kwargs: Any) -> None:
        kwargs["policy"] = "cosine"
        super().__init__(**kwargs)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"WarmupCosineSurrogate: warmup_steps={warmup_steps!r} must be an integer >= 0.")
        self.warmup_steps = warmup_steps

    def value_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start_value
        return super().value_at(step - self.warmup_steps)


class MovingAverageEarlyStopping(NWaveEarlyStopping):
    """The inherited policy applied to the mean of the last ``window`` metric values (smooths noisy metrics).

    Args:
        window: Number of epochs averaged (>= 1).
        policy: As in :class:`NWaveEarlyStopping`, but ``"patience"`` by default.
        **kwargs: The other :class:`NWaveEarlyStopping` arguments.
    """

    def __init__(self, window: int = 3, policy: str = "patience", **kwargs: Any) -> None:
        # policy is spelled out (not a kwargs default) so that LightningCLI shows and passes this default.
        super().__init__(policy=policy, **kwargs)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"MovingAverageEarlyStopping: window={window!r} must be an integer >= 1.")
        self.window = window
        self.history: list[float] = []

    def should_stop(self, value: float, epoch: int) -> bool:
        if not math.isnan(value):
            self.history = (self.history + [float(value)])[-self.window :]
        smoothed = sum(self.history) / len(self.history) if self.history else value
        return super().should_stop(smoothed, epoch)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history = [float(v) for v in state_dict.get("history", [])]


class ParticipationFigures(ActivityFigures):
    """Plot, per neuron, the share of validation samples in which it fired at least once (0 = dead neuron)."""

    statistic_label = "share of samples with >= 1 spike"

    def layer_statistic(self, spikes: torch.Tensor) -> torch.Tensor:
        return (spikes.sum(dim=1) > 0).float().mean(dim=0)
