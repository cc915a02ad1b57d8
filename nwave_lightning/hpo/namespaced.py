"""``HPOWrapper``'s namespaced trial config (the vendor SDK's) and its translation into Trainer settings.

Every value ``HPOWrapper`` binds lives under one flat dotted key whose first part
names what it configures::

    model.<name>                  -> model_builder(model_cfg)
    loss.<loss_name>.<name>       -> loss_builders[loss_name](loss_cfg)
    metric.<metric_name>.<name>   -> metric_builders[metric_name](metric_cfg)
    optim.<name>                  -> SNNModule's optimizer (name, lr, weight_decay, keywords)
    sched.<name>                  -> SNNModule's LR scheduler (``sched.cfg`` may hold the whole dict)
    nwave.<scheduler>.<name>      -> SurrogateScheduler / SignAnnealing
    trainer.<name>                -> Lightning Trainer (``epochs``, ``device``, ``seed``, Trainer arguments)
    data.<name>                   -> dataset_builder(dataset_path, data_cfg)
    early_stop.<name>             -> NWaveEarlyStopping

:func:`~nwave_lightning.hpo.trial.train_one_trial` turns the pieces built from it into a
fit config for :func:`nwave_lightning.run.build_from_config`, the builder of every run.

Example:
    >>> cfg = split_config({"model.hidden": 32, "loss.main.rate": 0.3, "nwave.surrogate.policy": "linear"})
    >>> cfg.model, cfg.loss, cfg.nwave
    ({'hidden': 32}, {'main': {'rate': 0.3}}, {'surrogate': {'policy': 'linear'}})
    >>> lr_scheduler_spec({"cfg": {"name": "step", "step_size": 5, "gamma": 0.5}})
    {'name': 'step', 'step_size': 5, 'gamma': 0.5}
    >>> trainer_kwargs({"epochs": 3, "device": "cpu", "gradient_clip_val": 1.0})[0]
    {'max_epochs': 3, 'accelerator': 'cpu', 'devices': 1, 'gradient_clip_val': 1.0}
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl

from ..callbacks.config import NWAVE_SCHEDULERS
from ..training.optim import LR_SCHEDULERS, OPTIMIZERS
from .space import domain_values, is_domain

__all__ = [
    "DEFAULT_EPOCHS",
    "ENGINE_TRAINER_KEYS",
    "NAMESPACES",
    "SplitConfig",
    "TRIAL_OWNED_TRAINER_ARGS",
    "named_choice_problems",
    "flatten_params",
    "lr_scheduler_spec",
    "namespaced_key",
    "split_config",
    "trainer_kwargs",
    "unused_bindings",
]

#: Namespaces whose keys are ``<namespace>.<param>``.
FLAT_NAMESPACES = ("model", "optim", "sched", "trainer", "data", "early_stop")
#: Namespaces whose keys are ``<namespace>.<component>.<param>``.
NESTED_NAMESPACES = ("loss", "metric", "nwave")
NAMESPACES = FLAT_NAMESPACES + NESTED_NAMESPACES
#: Epochs of an ``HPOWrapper`` trial without ``trainer.epochs`` (the vendor SDK's default).
DEFAULT_EPOCHS = 10
#: ``trainer.*`` keys the trial reads itself rather than passing to Lightning.
ENGINE_TRAINER_KEYS = ("epochs", "device", "seed", "checkpoint_every_epoch", "save_trainer_state")
#: Trainer arguments every trial sets itself (logging, checkpoints, callbacks, progress output, processes).
TRIAL_OWNED_TRAINER_ARGS = frozenset({
    "logger", "callbacks", "enable_checkpointing", "default_root_dir", "enable_progress_bar", "enable_model_summary",
    "strategy", "plugins",
})
_LIGHTNING_TRAINER_ARGS = frozenset(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
_DEVICES = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "auto": "auto", "mps": "mps"}


def namespaced_key(namespace: str, *parts: str) -> str:
    """Join a namespace and its parts into a flat key, checking both.

    >>> namespaced_key("loss", "main", "correct_rate")
    'loss.main.correct_rate'
    """
    if namespace not in NAMESPACES:
        raise ValueError(f"namespace={namespace!r} is not one of {list(NAMESPACES)}")
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError(f"name={part!r} under namespace {namespace!r} must be a non-empty string")
    return ".".join((namespace, *parts))


def flatten_params(params: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Dotted keys (``{"model.in_ch": 13}``) or one mapping per namespace (``{"model": {"in_ch": 13}}``) -> dotted keys.

    A value inside a parameter (``sched.cfg = {"name": "step"}``) is kept whole.

    >>> flatten_params({"model": {"in_ch": 13}, "loss": {"main": {"w": 1.0}}}, **{"trainer.epochs": 3})
    {'model.in_ch': 13, 'loss.main.w': 1.0, 'trainer.epochs': 3}
    """
    flat: dict[str, Any] = {}
    for key, value in {**dict(params or {}), **kwargs}.items():
        namespace, _, rest = str(key).partition(".")
        if not isinstance(key, str) or namespace not in NAMESPACES:
            close = difflib.get_close_matches(namespace, NAMESPACES, n=1)
            hint = f"did you mean {close[0] + '.' + rest!r}?" if close and rest else f"e.g. 'model.{key}'"
            raise ValueError(
                f"parameter key {key!r} does not start with a namespace; use one of "
                f"{[n + '.' for n in NAMESPACES]} ({hint})"
            )
        if rest:
            flat[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"parameters[{key!r}] must be a mapping of {key}.* values, got {value!r}")
        for name, inner in value.items():
            if namespace in NESTED_NAMESPACES and isinstance(inner, Mapping) and not is_domain(inner):
                for param, leaf in inner.items():
                    flat[namespaced_key(namespace, str(name), str(param))] = leaf
            else:
                flat[namespaced_key(namespace, str(name))] = inner
    return flat


@dataclass
class SplitConfig:
    """One trial's flat config split by namespace (what each builder receives)."""

    model: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    metric: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    sched: dict = field(default_factory=dict)
    nwave: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    early_stop: dict = field(default_factory=dict)
    other: dict = field(default_factory=dict)  # keys outside the namespaces (Ray may add its own)


def split_config(config: Mapping[str, Any]) -> SplitConfig:
    """Split a flat dotted config into per-namespace dicts (nested namespaces by component)."""
    out = SplitConfig()
    for key, value in config.items():
        namespace, _, rest = str(key).partition(".")
        if namespace not in NAMESPACES or not rest:
            out.other[key] = value
        elif namespace not in NESTED_NAMESPACES:
            getattr(out, namespace)[rest] = value
        else:
            component, _, param = rest.partition(".")
            section = getattr(out, namespace).setdefault(component, {})
            if param:
                section[param] = value
            elif isinstance(value, Mapping):  # "loss.main" bound to a whole dict: that component's config
                section.update(value)
            else:
                out.other[key] = value
    return out


def lr_scheduler_spec(sched_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``sched.*`` -> the LR-scheduler dict SNNModule takes (None: no scheduler).

    ``sched.cfg`` may hold the whole dict (the vendor SDK's ``bind_scheduler_param("cfg", ...)``)
    or just a name; other ``sched.*`` keys are merged over it.
    """
    cfg = dict(sched_cfg)
    base = cfg.pop("cfg", None)
    spec = {**({"name": base} if isinstance(base, str) else dict(base or {})), **cfg}
    if not spec:
        return None
    if "name" not in spec:
        raise ValueError(
            f"sched config {spec!r} has no 'name'; bind e.g. bind_scheduler_param('cfg', {{'name': 'step', "
            f"'step_size': 10, 'gamma': 0.5}}); supported names: {list(LR_SCHEDULERS)}"
        )
    spec["name"] = str(spec["name"]).lower()
    return None if spec["name"] == "none" else spec


def named_choice_problems(space: Mapping[str, Any], *, custom_optimizer: bool, custom_scheduler: bool) -> list[str]:
    """Optimizer / LR-scheduler names in ``space`` that SNNModule does not build (a custom builder owns its names).

    Every value a ``choice`` / ``grid`` can take is checked against :data:`~nwave_lightning.training.optim.OPTIMIZERS`
    and :data:`~nwave_lightning.training.optim.LR_SCHEDULERS`.

    >>> named_choice_problems({"optim.name": "sgd"}, custom_optimizer=False, custom_scheduler=False)
    ["optim.name='sgd' is not supported: SNNModule builds ['adam', 'adamax']; for others pass HPOWrapper(optimizer_builder=...)"]
    """
    checks = [] if custom_optimizer else [("optim.name", OPTIMIZERS, "optimizer_builder")]
    if not custom_scheduler:
        checks += [("sched.cfg", LR_SCHEDULERS, "scheduler_builder"), ("sched.name", LR_SCHEDULERS, "scheduler_builder")]
    problems = []
    for key, names, builder in [check for check in checks if check[0] in space]:
        for value in domain_values(space[key]) or []:  # a continuous domain holds no names
            if isinstance(value, Mapping) and "name" not in value:
                problems.append(f"{key}={value!r} has no 'name', e.g. {{'name': 'step', 'step_size': 10}}; "
                                f"SNNModule builds {list(names)}")
                continue
            name = value["name"] if isinstance(value, Mapping) else value
            if str(name).lower() not in names:
                problems.append(f"{key}={value!r} is not supported: SNNModule builds {list(names)}; "
                                f"for others pass HPOWrapper({builder}=...)")
    return problems


def trainer_kwargs(trainer_cfg: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``trainer.*`` -> (Lightning ``Trainer`` keywords, keys Lightning does not take).

    ``epochs`` is ``max_epochs`` (:data:`DEFAULT_EPOCHS` when absent); ``device`` (``cpu``/``cuda``/``gpu``/``auto``/``mps``) is the
    accelerator on one device; the other :data:`ENGINE_TRAINER_KEYS` are left out.
    """
    kwargs: dict[str, Any] = {"max_epochs": int(trainer_cfg.get("epochs", DEFAULT_EPOCHS))}
    if "device" in trainer_cfg:
        device = str(trainer_cfg["device"]).lower()
        if device not in _DEVICES:
            raise ValueError(f"trainer.device={trainer_cfg['device']!r} is not one of {sorted(_DEVICES)}")
        kwargs.update(accelerator=_DEVICES[device], devices=1)
    unknown = []
    for key, value in trainer_cfg.items():
        if key in _LIGHTNING_TRAINER_ARGS and key not in TRIAL_OWNED_TRAINER_ARGS:
            kwargs[key] = value
        elif key not in ENGINE_TRAINER_KEYS:
            unknown.append(key)
    return kwargs, unknown


def unused_bindings(
    keys, *, loss_builders: Mapping[str, Callable], metric_builders: Mapping[str, Callable], default_train_fn: bool
) -> list[str]:
    """Notes on bound keys that no builder consumes (the vendor SDK's troubleshooting).

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
        elif namespace == "trainer" and rest not in ENGINE_TRAINER_KEYS and rest not in _LIGHTNING_TRAINER_ARGS:
            notes.append(f"{key}: not a Lightning Trainer argument nor one of {list(ENGINE_TRAINER_KEYS)}")
    if default_train_fn:
        notes += [f"loss builder {name!r}: built but unused (the default train_one_trial uses only 'main')"
                  for name in loss_builders if name != "main"]
    return notes
