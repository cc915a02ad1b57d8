"""Namespaced trial configs and search spaces (Ray Tune domains or plain YAML).

Every tunable value lives under one flat, dotted key whose first part names the
component it configures (the vendor SDK's namespaces)::

    model.<name>                  -> model_builder(model_cfg)
    loss.<loss_name>.<name>       -> loss_builders[loss_name](loss_cfg)
    metric.<metric_name>.<name>   -> metric_builders[metric_name](metric_cfg)
    optim.<name>                  -> optimizer (name, lr, weight_decay, ...)
    sched.<name>                  -> LR scheduler (``sched.cfg`` may hold the whole dict)
    nwave.<scheduler>.<name>      -> SurrogateScheduler / SignAnnealing
    trainer.<name>                -> Lightning Trainer (epochs, device, ...)
    data.<name>                   -> dataset_builder(dataset_path, data_cfg)
    early_stop.<name>             -> NWaveEarlyStopping

A YAML file cannot hold ``tune.choice(...)`` objects, so a plain mapping with one
known key stands for a domain: ``{choice: [32, 64]}``, ``{loguniform: [1e-4, 1e-2]}``,
``{grid: [1, 2]}`` ... (see :data:`YAML_DOMAINS`). Any other value is fixed.

Example:
    >>> cfg = split_config({"model.hidden": 32, "loss.main.rate": 0.3, "nwave.surrogate.policy": "linear"})
    >>> cfg.model, cfg.loss, cfg.nwave
    ({'hidden': 32}, {'main': {'rate': 0.3}}, {'surrogate': {'policy': 'linear'}})
    >>> space = parse_search_space({"optim.lr": {"loguniform": [1e-4, 1e-2]}, "model.hidden": {"grid": [8, 16]}})
    >>> type(space["optim.lr"]).__name__, space["model.hidden"]
    ('Float', {'grid_search': [8, 16]})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain

__all__ = [
    "NAMESPACES",
    "NESTED_NAMESPACES",
    "YAML_DOMAINS",
    "SplitConfig",
    "apply_overrides",
    "domain_values",
    "flatten_params",
    "is_tunable",
    "namespaced_key",
    "parse_domain",
    "parse_search_space",
    "split_config",
    "upper_bound",
]

#: Namespaces whose keys are ``<namespace>.<param>``.
FLAT_NAMESPACES = ("model", "optim", "sched", "trainer", "data", "early_stop")
#: Namespaces whose keys are ``<namespace>.<component>.<param>``.
NESTED_NAMESPACES = ("loss", "metric", "nwave")
NAMESPACES = FLAT_NAMESPACES + NESTED_NAMESPACES

#: Plain-YAML domain name -> Ray Tune constructor (list args positional, mapping args by keyword).
YAML_DOMAINS = {
    "choice": tune.choice,
    "grid": tune.grid_search,
    "uniform": tune.uniform,
    "quniform": tune.quniform,
    "loguniform": tune.loguniform,
    "qloguniform": tune.qloguniform,
    "randint": tune.randint,
    "qrandint": tune.qrandint,
    "lograndint": tune.lograndint,
    "randn": tune.randn,
}


def namespaced_key(namespace: str, *parts: str) -> str:
    """Join a namespace and its parts into a flat key, checking the namespace.

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
    """Flatten fixed/bound parameters into dotted keys.

    Accepts dotted keys (``{"model.in_ch": 13}``) or one mapping per namespace
    (``{"model": {"in_ch": 13}, "loss": {"main": {"rate": 0.3}}}``); values inside
    a parameter (e.g. ``sched.cfg = {"name": "step"}``) are kept whole.

    >>> flatten_params({"model": {"in_ch": 13}, "loss": {"main": {"w": 1.0}}}, **{"trainer.epochs": 3})
    {'model.in_ch': 13, 'loss.main.w': 1.0, 'trainer.epochs': 3}
    """
    merged = dict(params or {})
    merged.update(kwargs)
    flat: dict[str, Any] = {}
    for key, value in merged.items():
        if not isinstance(key, str):
            raise ValueError(f"parameter key {key!r} must be a string like 'model.hidden_1'")
        namespace, _, rest = key.partition(".")
        if namespace not in NAMESPACES:
            raise ValueError(
                f"parameter key {key!r} does not start with a namespace; use one of "
                f"{[n + '.' for n in NAMESPACES]} (e.g. 'model.{key}')"
            )
        if rest:
            flat[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"parameters[{key!r}] must be a mapping of {key}.* values, got {value!r}")
        for name, inner in value.items():
            if namespace in NESTED_NAMESPACES and isinstance(inner, Mapping) and not _domain_name(inner):
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
    other: dict = field(default_factory=dict)


def split_config(config: Mapping[str, Any]) -> SplitConfig:
    """Split a flat dotted config into per-namespace dicts (nested ones by component).

    Keys outside the namespaces are kept in ``.other`` (Ray may add its own).
    """
    out = SplitConfig()
    for key, value in config.items():
        namespace, _, rest = str(key).partition(".")
        if namespace not in NAMESPACES or not rest:
            out.other[key] = value
            continue
        section = getattr(out, namespace)
        if namespace in NESTED_NAMESPACES:
            component, _, param = rest.partition(".")
            if not param:
                # "loss.main" bound to a whole dict: merge it as that component's config.
                if isinstance(value, Mapping):
                    section.setdefault(component, {}).update(value)
                else:
                    out.other[key] = value
                continue
            section.setdefault(component, {})[param] = value
        else:
            section[rest] = value
    return out


def _domain_name(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        (name,) = value.keys()
        if name in YAML_DOMAINS or name == "grid_search":
            return name
    return None


def parse_domain(value: Any, key: str = "value") -> Any:
    """Turn one plain-YAML domain (``{choice: [...]}`` ...) into a Ray Tune domain.

    Ray Tune domains and non-domain values pass through unchanged. Arguments may be
    a list (positional) or a mapping (keyword: ``{uniform: {lower: 0, upper: 1}}``).

    >>> parse_domain({"randint": [1, 4]}).upper
    4
    >>> parse_domain({"name": "step", "gamma": 0.5})
    {'name': 'step', 'gamma': 0.5}
    """
    name = _domain_name(value)
    if name is None:
        return value
    args = value[name]
    if name in ("grid", "grid_search"):
        if not isinstance(args, (list, tuple)) or not args:
            raise ValueError(f"search_space[{key!r}].{name} must be a non-empty list, got {args!r}")
        return tune.grid_search(list(args))
    if name == "choice":
        if not isinstance(args, (list, tuple)) or not args:
            raise ValueError(f"search_space[{key!r}].choice must be a non-empty list, got {args!r}")
        return tune.choice(list(args))
    constructor = YAML_DOMAINS[name]
    try:
        if isinstance(args, Mapping):
            return constructor(**args)
        if isinstance(args, (list, tuple)):
            return constructor(*args)
        raise TypeError(f"expected a list or mapping, got {type(args).__name__}")
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"search_space[{key!r}] = {{{name}: {args!r}}} is not a valid {name} domain ({err}); "
            f"write e.g. {{{name}: [lower, upper]}}"
        ) from err


def parse_search_space(space: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse a whole search space mapping (dotted keys) into Ray Tune domains."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise ValueError(f"search_space must be a mapping of dotted keys to domains, got {type(space).__name__}")
    return {str(key): parse_domain(value, str(key)) for key, value in space.items()}


def is_tunable(value: Any) -> bool:
    """True for a Ray Tune domain or a grid search (anything Ray samples per trial)."""
    return isinstance(value, Domain) or (isinstance(value, Mapping) and set(value) == {"grid_search"})


def domain_values(value: Any) -> list[Any] | None:
    """All values a discrete domain can take (a fixed value -> ``[value]``); None if continuous."""
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        return list(value["grid_search"])
    if isinstance(value, Domain):
        return None
    return [value]


def upper_bound(value: Any) -> float | None:
    """Largest value a numeric domain can produce (None when unknown or unbounded)."""
    values = domain_values(value)
    if values is not None:
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    upper = getattr(value, "upper", None)
    if isinstance(upper, (int, float)) and math.isfinite(upper):
        return upper
    return None


def apply_overrides(config: dict, values: Mapping[str, Any]) -> dict:
    """Set dotted-path values in a nested config (in place; returns it). Integers index lists.

    >>> cfg = {"model": {"init_args": {"lr": 0.001, "net": {"init_args": {"hidden": [16]}}}}}
    >>> apply_overrides(cfg, {"model.init_args.net.init_args.hidden": [32]})["model"]["init_args"]["net"]
    {'init_args': {'hidden': [32]}}
    """
    for key, value in values.items():
        parts = str(key).split(".")
        node = config
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(f"search_space key {key!r}: {part!r} is not an index of a list of {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ValueError(f"search_space key {key!r}: cannot descend into {'.'.join(parts[:i])!r} ({node!r})")
    return config
