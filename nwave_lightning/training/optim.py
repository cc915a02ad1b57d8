"""Optimizers and LR schedulers by the vendor SDK's names, by class path, or by callable.

Optimizers: ``"adam"``, ``"adamax"`` (the vendor SDK's defaults), ``{"name": ...,
**kwargs}``, ``{"class_path": "torch.optim.X", "init_args": {...}}``, an
optimizer class, or any ``callable(params) -> Optimizer``.

LR schedulers (the vendor SDK's names and parameters): ``None`` / ``"none"``,
``{"name": "plateau", "mode", "factor", "patience", "threshold", "min_lr"}``
(monitors ``val_loss``), ``{"name": "step", "step_size", "gamma"}``,
``{"name": "cosine", "T_max", "eta_min"}`` (``T_max`` defaults to the
trainer's ``max_epochs``), ``{"name": "multistep", "milestones", "gamma"}``,
a ``class_path`` dict, or ``callable(optimizer) -> scheduler``.

Example:
    >>> import torch
    >>> params = [torch.nn.Parameter(torch.zeros(2))]
    >>> opt = build_optimizer(params, {"name": "adamax", "betas": (0.8, 0.9)}, lr=0.01)
    >>> type(opt).__name__, opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]
    ('Adamax', 0.01, (0.8, 0.9))
    >>> config = build_lr_scheduler(opt, {"name": "step", "step_size": 10, "gamma": 0.5})
    >>> type(config["scheduler"]).__name__, config["interval"]
    ('StepLR', 'epoch')
    >>> build_optimizer(params, "sgdx", lr=0.1)
    Traceback (most recent call last):
    ...
    ValueError: optimizer='sgdx' is not supported; choose one of ['adam', 'adamax'], ...
"""

from __future__ import annotations

import copy
import importlib
import inspect
from typing import Any, Callable, Iterable

import torch

__all__ = ["LR_SCHEDULERS", "OPTIMIZERS", "build_lr_scheduler", "build_optimizer", "import_object"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}
LR_SCHEDULERS: dict[str, Any] = {
    "none": None,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
    "step": torch.optim.lr_scheduler.StepLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "multistep": torch.optim.lr_scheduler.MultiStepLR,
}
# Parameters without a torch default, with the vendor SDK's example values for the error message.
_REQUIRED = {"step": {"step_size": 10}, "multistep": {"milestones": [20, 40]}}
# Keys of a scheduler dict that configure Lightning, not the torch scheduler.
_LIGHTNING_KEYS = ("monitor", "interval", "frequency", "strict")
_OPT_HELP = (
    "a dict {'name': 'adam', ...kwargs}, {'class_path': 'torch.optim.SGD', 'init_args': {...}}, "
    "or a callable(params) -> Optimizer (pass a custom builder for anything else)"
)
_SCHED_HELP = (
    "e.g. {'name': 'step', 'step_size': 10, 'gamma': 0.5}, a {'class_path': ..., 'init_args': {...}} dict, "
    "or a callable(optimizer) -> scheduler"
)


def import_object(path: str, argument: str) -> Any:
    """Import ``"package.module.Name"``; errors name ``argument`` and the path."""
    module_name, _, attr = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"{argument}: class_path={path!r} cannot be imported ({error}); give a full dotted path.") from None


def _names(table: dict) -> list[str]:
    return sorted(table)


def build_optimizer(
    params: Iterable,
    optimizer: str | dict | Callable = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer_kwargs: dict | None = None,
) -> torch.optim.Optimizer:
    """Build an optimizer from any of the accepted specifications.

    ``lr`` / ``weight_decay`` / ``optimizer_kwargs`` apply to named optimizers
    and classes; keys inside a dict spec (including ``lr``) win over them, so an
    HPO config like ``{"name": "adam", "lr": 3e-4}`` means what it says.

    Raises:
        ValueError: unknown name, non-importable class path, or wrong arguments.
    """
    kwargs = {"lr": lr, "weight_decay": weight_decay, **(optimizer_kwargs or {})}
    if isinstance(optimizer, str):
        optimizer = {"name": optimizer}
    if isinstance(optimizer, dict):
        spec = copy.deepcopy(dict(optimizer))
        if "class_path" in spec:
            cls = import_object(spec.pop("class_path"), "optimizer")
            kwargs.update(spec.pop("init_args", {}) or {})
        elif "name" in spec:
            name = str(spec.pop("name")).lower()
            if name not in OPTIMIZERS:
                raise ValueError(f"optimizer={optimizer['name']!r} is not supported; choose one of {_names(OPTIMIZERS)}, or {_OPT_HELP}.")
            cls = OPTIMIZERS[name]
        else:
            raise ValueError(f"optimizer={optimizer!r} needs a 'name' or a 'class_path' key; {_OPT_HELP}.")
        kwargs.update(spec)
    elif inspect.isclass(optimizer):
        cls = optimizer
    elif callable(optimizer):
        result = optimizer(params)  # a user builder / jsonargparse partial owns all its arguments
        if not isinstance(result, torch.optim.Optimizer):
            raise ValueError(f"optimizer callable {optimizer!r} returned {type(result).__name__}, not a torch.optim.Optimizer.")
        return result
    else:
        raise ValueError(f"optimizer={optimizer!r} is not supported; choose one of {_names(OPTIMIZERS)}, or {_OPT_HELP}.")
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"optimizer: {cls!r} is not a torch.optim.Optimizer subclass.")
    try:
        return cls(params, **kwargs)
    except TypeError as error:
        raise ValueError(f"optimizer {cls.__name__} rejected its arguments {sorted(kwargs)}: {error}") from None


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    lr_scheduler: str | dict | Callable | None,
    max_epochs: int | None = None,
) -> dict | None:
    """Build a Lightning ``lr_scheduler`` config dict, or ``None`` for no scheduler.

    Schedulers step once per epoch (as in the vendor SDK's loop); ``plateau`` monitors
    ``val_loss`` unless the dict says ``monitor``.

    Args:
        optimizer: The optimizer to schedule.
        lr_scheduler: Any accepted specification (see the module docstring).
        max_epochs: Default ``T_max`` of ``cosine``.

    Raises:
        ValueError: unknown name (listing the supported ones) or bad parameters.
    """
    if lr_scheduler is None:
        return None
    if isinstance(lr_scheduler, str):
        lr_scheduler = {"name": lr_scheduler}
    lightning = {"interval": "epoch", "frequency": 1}
    if isinstance(lr_scheduler, dict):
        spec = copy.deepcopy(dict(lr_scheduler))
        lightning.update({key: spec.pop(key) for key in _LIGHTNING_KEYS if key in spec})
        if "class_path" in spec:
            cls, name = import_object(spec.pop("class_path"), "lr_scheduler"), None
            spec = dict(spec.pop("init_args", {}) or {}, **spec)
        elif "name" in spec:
            name = str(spec.pop("name")).lower()
            if name not in LR_SCHEDULERS:
                raise ValueError(
                    f"lr_scheduler name={lr_scheduler['name']!r} is not supported; choose one of "
                    f"{_names(LR_SCHEDULERS)}, {_SCHED_HELP}."
                )
            cls = LR_SCHEDULERS[name]
            if cls is None:
                return None
        else:
            raise ValueError(f"lr_scheduler={lr_scheduler!r} needs a 'name' or a 'class_path' key, {_SCHED_HELP}.")
        if name == "cosine" and "T_max" not in spec:
            if max_epochs is None or max_epochs < 1:
                raise ValueError("lr_scheduler 'cosine' needs T_max (e.g. {'name': 'cosine', 'T_max': 60, 'eta_min': 1e-6}).")
            spec["T_max"] = max_epochs
        missing = {k: v for k, v in _REQUIRED.get(name, {}).items() if k not in spec}
        if missing:
            example = {"name": name, **_REQUIRED[name], "gamma": 0.5 if name == "step" else 0.3}
            raise ValueError(f"lr_scheduler {name!r} needs {sorted(missing)}, e.g. {example}.")
        try:
            scheduler = cls(optimizer, **spec)
        except TypeError as error:
            raise ValueError(f"lr_scheduler {getattr(cls, '__name__', cls)} rejected its arguments {sorted(spec)}: {error}") from None
    elif callable(lr_scheduler):
        scheduler = lr_scheduler(optimizer)
    else:
        raise ValueError(f"lr_scheduler={lr_scheduler!r} is not supported; choose one of {_names(LR_SCHEDULERS)}, {_SCHED_HELP}.")
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        lightning.setdefault("monitor", "val_loss")
    return {"scheduler": scheduler, **lightning}
