"""``NWaveEarlyStopping``: the vendor SDK's early-stop policies (``early_stop.*``) as a callback.

Example:
    >>> stop = NWaveEarlyStopping(policy="no-improve", metric="val_acc", mode="max", patience=2)
    >>> stop.policy
    'patience'
    >>> [stop.should_stop(v, epoch) for epoch, v in enumerate([0.5, 0.6, 0.6, 0.55], start=1)]
    [False, False, False, True]
    >>> NWaveEarlyStopping.from_config({"policy": "none", "metric": "val_acc"}) is None
    True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from ._common import check_metric_name, check_mode, check_number, config_kwargs, init_keys, is_better, log_scalar, metric_value

__all__ = ["NWaveEarlyStopping", "POLICY_ALIASES"]

POLICY_ALIASES = {
    "none": "none",
    "threshold": "threshold",
    "patience": "patience",
    "plateau": "patience",
    "no_improve": "patience",
    "no-improve": "patience",
}


class NWaveEarlyStopping(Callback):
    """Stop training when a metric reaches a target or stops improving.

    Policies (``mode="min"``: lower is better, ``"max"``: higher is better):

    - ``none``: never stops, logs nothing (the callback is inert).
    - ``threshold``: stop when ``metric <= value`` (min) / ``metric >= value`` (max).
    - ``patience`` (aliases ``plateau``, ``no_improve``, ``no-improve``): an epoch
      improves when ``metric < best - min_delta`` (min) / ``metric > best + min_delta``
      (max); otherwise ``bad_epochs`` grows by one, and training stops when it
      reaches ``patience``. A NaN never improves.

    The check runs at the end of every training epoch in which validation ran
    (every epoch when the trainer has no validation), with ``epoch`` the 1-based
    epoch number; stopping is only allowed once ``epoch >= min_epoch`` (the
    patience counter still runs before). The local decision is reduced across
    ranks with ``trainer.strategy.reduce_boolean_decision(all=False)``: one
    rank asking to stop stops all. Logged keys, as in the vendor SDK's table:
    ``early_stop_metric_value`` and ``early_stop_triggered`` (both policies),
    ``early_stop_target_value`` (threshold), ``early_stop_bad_epochs`` and
    ``early_stop_best_metric`` (patience).

    Extension point: override :meth:`should_stop` (``value, epoch -> bool``);
    ``min_epoch``, the rank reduction and logging stay the callback's. Keep any
    new state in :meth:`state_dict` / :meth:`load_state_dict` (call ``super()``).

    Args:
        policy: ``"none"``, ``"threshold"`` or ``"patience"`` (or an alias).
        metric: A logged key, e.g. ``"val_loss"``, ``"val_acc"``, ``"val_recall"``.
        mode: ``"min"`` or ``"max"``.
        min_epoch: First 1-based epoch at which stopping is allowed.
        value: Target of the threshold policy (required there).
        patience: Bad epochs tolerated by the patience policy (>= 1).
        min_delta: Smallest change that counts as an improvement (>= 0).
    """

    def __init__(
        self,
        policy: str = "none",
        metric: str = "val_loss",
        mode: str = "min",
        min_epoch: int = 0,
        value: Optional[float] = None,
        patience: int = 10,
        min_delta: float = 0.0,
    ) -> None:
        owner = type(self).__name__
        key = policy.lower() if isinstance(policy, str) else policy
        if key not in POLICY_ALIASES:
            raise ValueError(f"{owner}: policy={policy!r} is unknown; choose one of {list(POLICY_ALIASES)}.")
        self.policy = POLICY_ALIASES[key]
        self.metric = check_metric_name(owner, metric)
        self.mode = check_mode(owner, mode)
        self.min_epoch = check_number(owner, "min_epoch", min_epoch, integer=True, minimum=0)
        self.value = check_number(owner, "value", value, allow_none=True)
        if self.policy == "threshold" and self.value is None:
            raise ValueError(f"{owner}: policy='threshold' needs value (the target of {metric!r}); got value=None.")
        self.patience = check_number(owner, "patience", patience, integer=True, minimum=1)
        self.min_delta = check_number(owner, "min_delta", min_delta, minimum=0.0)
        self.best: Optional[float] = None
        self.bad_epochs = 0
        self.last_value: Optional[float] = None
        self.triggered = False
        self.stopped_epoch: Optional[int] = None
        self._validated = False

    @property
    def state_key(self) -> str:
        # Several instances (e.g. one per metric) keep separate states in a checkpoint.
        return self._generate_state_key(policy=self.policy, metric=self.metric, mode=self.mode)

    # -- the decision --------------------------------------------------------
    def should_stop(self, value: float, epoch: int) -> bool:
        """The policy's verdict for this epoch's ``value`` (updates the patience state). Override for custom policies."""
        if self.policy == "threshold":
            if math.isnan(value):
                return False
            return value <= self.value if self.mode == "min" else value >= self.value
        if self.policy == "patience":
            if is_better(value, self.best, self.mode, self.min_delta):
                self.best, self.bad_epochs = value, 0
            else:
                self.bad_epochs += 1
            return self.bad_epochs >= self.patience
        return False

    # -- Lightning hooks ---------------------------------------------------
    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._validated = False

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.policy == "none" or (trainer.enable_validation and not self._validated):
            return  # disabled, or no fresh validation value this epoch
        value = metric_value(trainer, self.metric, type(self).__name__)
        epoch = trainer.current_epoch + 1
        local = bool(self.should_stop(value, epoch)) and epoch >= self.min_epoch
        decision = bool(trainer.strategy.reduce_boolean_decision(local, all=False))
        self.last_value, self.triggered = value, decision
        if decision:
            self.stopped_epoch = epoch
            trainer.should_stop = True
        log_scalar(pl_module, "early_stop_metric_value", value)
        if self.policy == "threshold":
            log_scalar(pl_module, "early_stop_target_value", self.value)
        elif self.policy == "patience":
            log_scalar(pl_module, "early_stop_bad_epochs", self.bad_epochs)
            log_scalar(pl_module, "early_stop_best_metric", math.nan if self.best is None else self.best)
        log_scalar(pl_module, "early_stop_triggered", float(decision))

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "last_value": self.last_value,
            "triggered": self.triggered,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.bad_epochs = int(state_dict.get("bad_epochs", 0))
        self.last_value = state_dict.get("last_value")
        self.triggered = bool(state_dict.get("triggered", False))
        self.stopped_epoch = state_dict.get("stopped_epoch")

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, Any]]) -> Optional["NWaveEarlyStopping"]:
        """Build from the vendor SDK's ``early_stop.*`` dict; ``None`` when it is empty or ``policy`` is ``"none"``.

        Raises:
            ValueError: unknown keys (listing the accepted ones) or bad values.
        """
        kwargs = config_kwargs(cls.__name__, cfg, init_keys(cls))
        if kwargs is None or str(kwargs.get("policy", "none")).lower() == "none":
            return None
        return cls(**kwargs)
