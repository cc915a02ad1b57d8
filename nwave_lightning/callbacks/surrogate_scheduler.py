"""``SurrogateScheduler``: the vendor SDK's surrogate schedule (``nwave.surrogate.*``) as a callback.

Example:
    >>> sched = SurrogateScheduler(policy="linear", start_value=10.0, end_value=30.0, total_steps=4)
    >>> [sched.scheduled_value(step) for step in range(6)]
    [10.0, 15.0, 20.0, 25.0, 30.0, 30.0]
    >>> SurrogateScheduler.from_config({"policy": "step", "start_value": 8.0, "step_size": 2, "gamma": 0.5}).scheduled_value(5)
    2.0
    >>> SurrogateScheduler.from_config({}) is None
    True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from ..surrogate import SurrogateSpike
from ._common import check_number, config_kwargs, init_keys, log_scalar

__all__ = ["SurrogateScheduler", "POLICIES"]

POLICIES = ("constant", "linear", "exp", "cosine", "step")
_NEEDS_END = ("linear", "cosine")


class SurrogateScheduler(Callback):
    """Set the shape value (slope / alpha / width) of every surrogate once per epoch.

    At the start of each training epoch the callback evaluates the schedule at
    ``step = trainer.current_epoch`` (the number of completed epochs, so the
    first epoch uses ``start_value``), clips it, writes it to ``.value`` of every
    :class:`~nwave_lightning.surrogate.SurrogateSpike` inside the LightningModule
    and logs it as ``surrogate_value`` at the end of the epoch. Because the
    value is a function of the epoch counter that Lightning itself restores,
    resuming from a checkpoint continues the schedule exactly.

    Every policy is evaluated at ``s = min(step, total_steps)`` (the schedule
    runs for ``total_steps`` epochs, then holds its last value):

    - ``constant``: ``start_value``.
    - ``linear``: ``start + (end - start) * s / total_steps``.
    - ``cosine``: ``end + (start - end) * (1 + cos(pi * s / total_steps)) / 2``
      (half cosine from ``start_value`` to ``end_value``).
    - ``exp``: ``start * gamma ** s``.
    - ``step``: ``start * gamma ** (s // step_size)``.

    For ``exp`` and ``step``, ``end_value`` (optional) is where the progression
    stops: a growing schedule (``gamma > 1``) never exceeds an ``end_value``
    above ``start_value``, a decaying one never falls below an ``end_value``
    under it; an ``end_value`` on the other side is never reached and has no
    effect. Finally the value is clipped to ``[min_value, max_value]`` (each
    bound optional).

    Extension point: override :meth:`value_at` (``step -> float``) for a custom
    policy; clipping, validation, application and logging stay the callback's.
    ``value_at`` must be a pure function of ``step`` (or keep its extra state
    in :meth:`state_dict`) for resumes to be exact.

    Args:
        policy: ``"constant"``, ``"linear"``, ``"exp"``, ``"cosine"`` or ``"step"``.
        start_value: Value at step 0 (> 0).
        end_value: Target of ``linear`` / ``cosine`` (required there); stopping value of ``exp`` / ``step``.
        total_steps: Schedule length in epochs (>= 1).
        step_size: Epochs between two ``step`` decays (>= 1).
        gamma: Factor of ``exp`` (per epoch) and ``step`` (per ``step_size`` epochs), > 0.
        min_value: Optional lower clip (> 0).
        max_value: Optional upper clip (>= ``min_value``).

    Raises:
        ValueError: a bad argument (named, with its value and a fix).
    """

    def __init__(
        self,
        policy: str = "constant",
        start_value: float = 25.0,
        end_value: Optional[float] = None,
        total_steps: int = 100,
        step_size: int = 10,
        gamma: float = 0.5,
        min_value: Optional[float] = None,
        max_value: Optional[float] = None,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(policy, str) or policy.lower() not in POLICIES:
            raise ValueError(f"{owner}: policy={policy!r} is unknown; choose one of {list(POLICIES)} (or override value_at).")
        self.policy = policy.lower()
        self.start_value = check_number(owner, "start_value", start_value, positive=True, fix="Surrogate values must be > 0.")
        self.end_value = check_number(owner, "end_value", end_value, positive=True, allow_none=True)
        if self.policy in _NEEDS_END and self.end_value is None:
            raise ValueError(f"{owner}: policy={self.policy!r} needs end_value (got None); give end_value or use policy='constant'.")
        self.total_steps = check_number(owner, "total_steps", total_steps, integer=True, minimum=1)
        self.step_size = check_number(owner, "step_size", step_size, integer=True, minimum=1)
        self.gamma = check_number(owner, "gamma", gamma, positive=True)
        self.min_value = check_number(owner, "min_value", min_value, positive=True, allow_none=True)
        self.max_value = check_number(owner, "max_value", max_value, positive=True, allow_none=True)
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(f"{owner}: min_value={min_value!r} is larger than max_value={max_value!r}; swap them.")
        self.step: Optional[int] = None
        self.value: Optional[float] = None

    # -- the schedule ------------------------------------------------------
    def value_at(self, step: int) -> float:
        """The policy's value at ``step`` (completed epochs), before clipping. Override for custom policies."""
        s = min(step, self.total_steps)
        start, end = self.start_value, self.end_value
        if self.policy == "constant":
            return start
        if self.policy == "linear":
            return start + (end - start) * s / self.total_steps
        if self.policy == "cosine":
            return end + (start - end) * (1.0 + math.cos(math.pi * s / self.total_steps)) / 2.0
        exponent = s if self.policy == "exp" else s // self.step_size
        value = start * self.gamma**exponent
        if end is not None:
            if self.gamma > 1.0 and end > start:
                value = min(value, end)
            elif self.gamma < 1.0 and end < start:
                value = max(value, end)
        return value

    def scheduled_value(self, step: int) -> float:
        """``value_at(step)`` clipped to ``[min_value, max_value]`` and checked to be a finite number > 0."""
        value = float(self.value_at(step))
        if self.min_value is not None:
            value = max(value, self.min_value)
        if self.max_value is not None:
            value = min(value, self.max_value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"{type(self).__name__}: the schedule gives {value!r} at step {step}; surrogate values must be finite "
                "and > 0. Set min_value / max_value, or change gamma / total_steps."
            )
        return value

    # -- Lightning hooks ---------------------------------------------------
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if not self._surrogates(pl_module):
            raise ValueError(
                f"{type(self).__name__}: the LightningModule contains no surrogate (nwave_lightning.surrogate."
                "SurrogateSpike), so there is nothing to schedule. Give its H1 layers spike_grad=... or remove the callback."
            )

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # A run resumed mid-epoch (after an interrupt) skips on_train_epoch_start: same value here.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        step = trainer.current_epoch
        value = self.scheduled_value(step)
        for surrogate in self._surrogates(pl_module):
            surrogate.value = value
        self.step, self.value = step, value

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.value is not None:
            log_scalar(pl_module, "surrogate_value", self.value)

    @staticmethod
    def _surrogates(pl_module) -> list[SurrogateSpike]:
        return [m for m in pl_module.modules() if isinstance(m, SurrogateSpike)]

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "value": self.value}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step = state_dict.get("step")
        self.value = state_dict.get("value")

    # -- config --------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, Any]]) -> Optional["SurrogateScheduler"]:
        """Build from the SDK's ``nwave.surrogate.*`` dict; ``None`` when it is empty or ``policy`` is ``"none"``.

        Raises:
            ValueError: unknown keys (listing the accepted ones) or bad values.
        """
        kwargs = config_kwargs(cls.__name__, cfg, init_keys(cls))
        if kwargs is None or str(kwargs.get("policy", "constant")).lower() in ("none", "off"):
            return None
        return cls(**kwargs)
