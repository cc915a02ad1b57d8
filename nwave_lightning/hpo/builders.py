"""Turn one trial's namespaced config into the objects it trains (steps 1-6 of the vendor SDK's flow).

Shared by ``HPOWrapper`` trials, ``nwave tune`` trials and their pre-flight checks:
the ``optim.*`` / ``sched.*`` specs, the Lightning ``Trainer`` keywords from
``trainer.*``, the NWAVE callbacks from ``nwave.*`` / ``early_stop.*`` and the
warnings for bound values that no builder consumes.

Example:
    >>> optimizer_spec({"name": "adamax", "lr": 3e-3})
    {'name': 'adamax', 'lr': 0.003}
    >>> lr_scheduler_spec({"cfg": {"name": "step", "step_size": 5, "gamma": 0.5}})
    {'name': 'step', 'step_size': 5, 'gamma': 0.5}
    >>> trainer_kwargs({"epochs": 3, "device": "cpu", "gradient_clip_val": 1.0})[0]
    {'max_epochs': 3, 'accelerator': 'cpu', 'devices': 1, 'gradient_clip_val': 1.0}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl

from ..callbacks.config import NWAVE_SCHEDULERS, callbacks_from_config
from ..module.optim import LR_SCHEDULERS, OPTIMIZERS
from .space import domain_values

__all__ = [
    "HPO_TRAINER_KEYS",
    "TRIAL_OWNED_TRAINER_ARGS",
    "SUPPORTED_LR_SCHEDULERS",
    "SUPPORTED_OPTIMIZERS",
    "check_named_choices",
    "lr_scheduler_spec",
    "nwave_callbacks",
    "optimizer_spec",
    "trainer_kwargs",
    "unused_bindings",
]

# The names SNNModule builds (one list each, in module/optim.py and callbacks/config.py).
SUPPORTED_OPTIMIZERS = tuple(OPTIMIZERS)
SUPPORTED_LR_SCHEDULERS = tuple(LR_SCHEDULERS)
#: ``trainer.*`` keys read by the HPO engine itself rather than passed to Lightning.
HPO_TRAINER_KEYS = ("epochs", "device", "seed", "num_workers", "checkpoint_every_epoch", "save_trainer_state")
_DEVICES = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "auto": "auto", "mps": "mps"}
_LIGHTNING_TRAINER_ARGS = frozenset(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
#: Trainer arguments every trial sets itself (logging, checkpoints, callbacks, progress output, processes).
TRIAL_OWNED_TRAINER_ARGS = frozenset({
    "logger", "callbacks", "enable_checkpointing", "default_root_dir", "enable_progress_bar", "enable_model_summary",
    "strategy", "plugins",
})


def optimizer_spec(optim_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``optim.*`` -> the ``{"name": ..., **kwargs}`` spec ``SNNModule`` builds (default ``adam``)."""
    spec = dict(optim_cfg)
    spec["name"] = str(spec.get("name", "adam")).lower()
    return spec


def lr_scheduler_spec(sched_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``sched.*`` -> an SDK-style LR-scheduler dict or None.

    ``sched.cfg`` may hold the whole dict (the vendor SDK's ``bind_scheduler_param("cfg", ...)``)
    or just a name; other ``sched.*`` keys are merged over it.
    """
    cfg = dict(sched_cfg)
    base = cfg.pop("cfg", None)
    if isinstance(base, str):
        base = {"name": base}
    spec = {**dict(base or {}), **cfg}
    if not spec:
        return None
    if "name" not in spec:
        raise ValueError(
            f"sched config {spec!r} has no 'name'; bind e.g. bind_scheduler_param('cfg', {{'name': 'step', "
            f"'step_size': 10, 'gamma': 0.5}}); supported names: {list(SUPPORTED_LR_SCHEDULERS)}"
        )
    spec["name"] = str(spec["name"]).lower()
    return None if spec["name"] == "none" else spec


def check_named_choices(space: Mapping[str, Any], *, custom_optimizer: bool, custom_scheduler: bool) -> None:
    """Reject unsupported optimizer / LR scheduler names before any trial starts.

    Every value a ``choice`` / ``grid`` can take is checked; continuous domains are not names.
    """
    if not custom_optimizer and "optim.name" in space:
        for name in domain_values(space["optim.name"]) or []:
            if str(name).lower() not in SUPPORTED_OPTIMIZERS:
                raise ValueError(
                    f"unsupported optimizer optim.name={name!r}; the default builder supports "
                    f"{list(SUPPORTED_OPTIMIZERS)}. For others pass HPOWrapper(optimizer_builder=...)."
                )
    if custom_scheduler:
        return
    for key in ("sched.cfg", "sched.name"):
        if key not in space:
            continue
        for value in domain_values(space[key]) or []:
            name = value.get("name") if isinstance(value, Mapping) else value
            if name is None and key == "sched.cfg":
                raise ValueError(f"sched.cfg={value!r} has no 'name'; supported: {list(SUPPORTED_LR_SCHEDULERS)}")
            if str(name).lower() not in SUPPORTED_LR_SCHEDULERS:
                raise ValueError(
                    f"unsupported LR scheduler {key}={value!r}; the default builder supports "
                    f"{list(SUPPORTED_LR_SCHEDULERS)}. For others pass HPOWrapper(scheduler_builder=...)."
                )


def trainer_kwargs(trainer_cfg: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``trainer.*`` -> (Lightning ``Trainer`` keywords, keys Lightning does not take).

    ``epochs`` is ``max_epochs``; ``device`` (``cpu``/``cuda``/``gpu``/``auto``) is the
    accelerator on one device; engine keys (:data:`HPO_TRAINER_KEYS`) are left out.
    """
    kwargs: dict[str, Any] = {}
    unknown = []
    if "epochs" in trainer_cfg:
        kwargs["max_epochs"] = int(trainer_cfg["epochs"])
    if "device" in trainer_cfg:
        device = str(trainer_cfg["device"]).lower()
        if device not in _DEVICES:
            raise ValueError(f"trainer.device={trainer_cfg['device']!r} is not one of {sorted(_DEVICES)}")
        kwargs["accelerator"] = _DEVICES[device]
        kwargs["devices"] = 1
    for key, value in trainer_cfg.items():
        if key in HPO_TRAINER_KEYS:
            continue
        if key in _LIGHTNING_TRAINER_ARGS and key not in TRIAL_OWNED_TRAINER_ARGS:
            kwargs[key] = value
        else:
            unknown.append(key)
    return kwargs, unknown


def nwave_callbacks(cfg, metric: str, mode: str, best_dir: str) -> dict[str, Any]:
    """The trial's callbacks from ``nwave.*`` / ``early_stop.*`` (by :func:`callbacks_from_config`; absent ones are None).

    Returns:
        ``{"surrogate": SurrogateScheduler|None, "sign_annealing": SignAnnealing|None,
        "early_stop": NWaveEarlyStopping|None, "best_checkpoint": BestModelCheckpoint}``.
    """
    from ..callbacks import BestModelCheckpoint, NWaveEarlyStopping

    built = callbacks_from_config(
        nwave={name: dict(value) for name, value in cfg.nwave.items() if value},
        early_stop=dict(cfg.early_stop) or None,
        best={"metric": metric, "mode": mode, "dirpath": best_dir},
    )
    found = {name: next((cb for cb in built if isinstance(cb, kind)), None) for name, kind in NWAVE_SCHEDULERS.items()}
    found["early_stop"] = next((cb for cb in built if isinstance(cb, NWaveEarlyStopping)), None)
    found["best_checkpoint"] = next(cb for cb in built if isinstance(cb, BestModelCheckpoint))
    return found


def unused_bindings(
    keys,
    *,
    loss_builders: Mapping[str, Callable],
    metric_builders: Mapping[str, Callable],
    default_train_fn: bool,
) -> list[str]:
    """Human-readable notes on bound keys that no builder consumes (the vendor SDK's troubleshooting).

    >>> unused_bindings(["loss.main.w", "metric.f1.beta", "nwave.surrogat.policy", "trainer.epochs"],
    ...                 loss_builders={"main": None}, metric_builders={"acc": None}, default_train_fn=True)
    ["metric.f1.beta: no metric builder named 'f1' (registered: ['acc'])", "nwave.surrogat.policy: no NWAVE scheduler 'surrogat' (known: ['surrogate', 'sign_annealing'])"]
    """
    notes = []
    for key in keys:
        namespace, _, rest = key.partition(".")
        component = rest.split(".", 1)[0]
        if namespace == "loss" and component not in loss_builders:
            notes.append(f"{key}: no loss builder named {component!r} (registered: {sorted(loss_builders)})")
        elif namespace == "metric" and component not in metric_builders:
            notes.append(f"{key}: no metric builder named {component!r} (registered: {sorted(metric_builders)})")
        elif namespace == "nwave" and component not in NWAVE_SCHEDULERS:
            notes.append(f"{key}: no NWAVE scheduler {component!r} (known: {list(NWAVE_SCHEDULERS)})")
        elif namespace == "trainer" and rest in TRIAL_OWNED_TRAINER_ARGS:
            notes.append(f"{key}: ignored, the HPO engine sets the Trainer's {rest!r} itself")
        elif namespace == "trainer" and rest not in HPO_TRAINER_KEYS and rest not in _LIGHTNING_TRAINER_ARGS:
            notes.append(f"{key}: not a Lightning Trainer argument nor one of {list(HPO_TRAINER_KEYS)}")
    if default_train_fn:
        for name in loss_builders:
            if name != "main":
                notes.append(f"loss builder {name!r}: built but unused (the default train_one_trial uses only 'main')")
    return notes
