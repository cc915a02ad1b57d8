"""Helpers shared by the callbacks: argument checks, config dicts, metric look-up, logging.

Kept private: the public surface of each callback is its class.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Iterable, Mapping, Optional

import lightning.pytorch as pl
import torch
from torch import nn

from ..chip_keys import CHIP_METRIC_HINT, is_chip_metric

MODES = ("min", "max")
_PLAIN = (type(None), bool, int, float, str)


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    integer: bool = False,
    positive: bool = False,
    minimum: Optional[float] = None,
    allow_none: bool = False,
    fix: str = "",
) -> Any:
    """Validate one numeric argument; the error names the owner, the argument, the value and the fix.

    Integral floats (``60.0`` from a YAML file) are accepted where an integer is wanted.
    """
    if value is None and allow_none:
        return None
    valid = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if valid and integer:
        valid = float(value).is_integer()
    if valid and positive:
        valid = value > 0
    if valid and minimum is not None:
        valid = value >= minimum
    if not valid:
        wanted = "an integer" if integer else "a finite number"
        wanted += " > 0" if positive else (f" >= {minimum}" if minimum is not None else "")
        wanted += " or None" if allow_none else ""
        hint = f" {fix}" if fix else ""
        raise ValueError(f"{owner}: {name}={value!r} must be {wanted}.{hint}")
    return int(value) if integer else float(value)


def check_mode(owner: str, mode: Any) -> str:
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise ValueError(f"{owner}: mode={mode!r} is unknown; use 'min' (lower is better) or 'max' (higher is better).")
    return mode.lower()


def check_metric_name(owner: str, metric: Any) -> str:
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"{owner}: metric={metric!r} must be the name of a logged key, e.g. 'val_loss' or 'val_acc'.")
    return metric


def init_keys(cls: type) -> tuple[str, ...]:
    """Named ``__init__`` arguments of ``cls`` and of the parents it forwards ``**kwargs`` to.

    ``from_config`` uses this so that a subclass's extra arguments are accepted
    without redefining ``from_config``.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return tuple(names)


def config_kwargs(owner: str, cfg: Optional[Mapping[str, Any]], allowed: Iterable[str]) -> Optional[dict]:
    """Check an SDK-style config dict: ``None`` / empty -> ``None``; unknown keys -> ``ValueError``."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{owner}.from_config: cfg must be a dict like {{'policy': ...}} or None, got {type(cfg).__name__}.")
    if not cfg:
        return None
    allowed = tuple(allowed)
    unknown = sorted(str(key) for key in cfg if key not in allowed)
    if unknown:
        raise ValueError(
            f"{owner}.from_config: unknown key(s) {unknown}; the accepted keys are {sorted(allowed)}. "
            "Check the spelling of the bound parameter names."
        )
    return dict(cfg)


def as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() != 1 else float(value.detach())
    return float(value)


def metric_value(trainer: "pl.Trainer", metric: str, owner: str) -> float:
    """The current epoch value of ``metric`` from ``trainer.callback_metrics``.

    Raises:
        ValueError: the key was not logged; the message lists the keys that were.
    """
    metrics = trainer.callback_metrics
    if metric not in metrics:
        available = sorted(metrics)
        chip = f" {CHIP_METRIC_HINT}." if is_chip_metric(metric) else ""
        raise ValueError(
            f"{owner}: metric={metric!r} was not logged; available keys: {available}. Use one of them "
            "(validation keys such as 'val_loss', 'val_acc'; keys logged in the LightningModule's own "
            "on_train_epoch_end are not visible to callbacks until the next epoch, so prefer validation metrics)."
            + chip
        )
    return as_float(metrics[metric])


def log_scalar(pl_module: "pl.LightningModule", name: str, value: float) -> None:
    """Log one epoch-level scalar.

    The values the callbacks log are identical on every rank (reduced decisions,
    synced metrics, replicated weights), so no extra sync is needed; the
    loggers themselves write on rank 0 only.
    """
    try:
        has_logger = bool(pl_module.trainer.loggers)
    except RuntimeError:  # a module not attached to a Trainer (Lightning's public property raises)
        has_logger = False
    pl_module.log(name, float(value), on_step=False, on_epoch=True, sync_dist=False, prog_bar=False, logger=has_logger)


def network(pl_module: nn.Module) -> nn.Module:
    """The wrapped network: ``pl_module.net`` when it is a module (SNNModule), else the module itself."""
    net = getattr(pl_module, "net", None)
    return net if isinstance(net, nn.Module) else pl_module


def plain_data(value: Any) -> Any:
    """A copy of ``value`` made of plain Python types only, or ``None`` when impossible.

    Such data survives ``torch.load(weights_only=True)`` and YAML dumps.
    """
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [plain_data(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            converted = plain_data(item)
            if isinstance(key, str) and (converted is not None or item is None):
                out[key] = converted
        return out
    return None


def is_better(value: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``best`` by more than ``min_delta`` (NaN never improves)."""
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta
