"""Search spaces: Ray Tune domains, or their plain-YAML spelling, and dotted paths into a config.

A YAML file cannot hold ``tune.choice(...)`` objects, so a plain mapping with one
known key stands for a domain: ``{choice: [32, 64]}``, ``{loguniform: [1e-4, 1e-2]}``,
``{grid: [1, 2]}`` ... (see :data:`YAML_DOMAINS`). Any other value is fixed.

Example:
    >>> space = parse_search_space({"optim.lr": {"loguniform": [1e-4, 1e-2]}, "model.hidden": {"grid": [8, 16]}})
    >>> type(space["optim.lr"]).__name__, space["model.hidden"]
    ('Float', {'grid_search': [8, 16]})
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Integer

__all__ = [
    "YAML_DOMAINS", "apply_overrides", "describe_space", "domain_values", "is_domain", "parse_domain", "parse_search_space",
    "plain", "upper_bound",
]

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


def _domain_name(value: Any) -> str | None:
    """The domain a plain-YAML mapping spells (``choice``, ``grid_search``...), else None."""
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


def is_domain(value: Any) -> bool:
    """Whether ``value`` is a plain-YAML domain (``{choice: [...]}``, ``{grid_search: [...]}``...).

    >>> is_domain({"choice": [1, 2]}), is_domain({"name": "step"})
    (True, False)
    """
    return _domain_name(value) is not None


def domain_values(value: Any) -> list[Any] | None:
    """All values a discrete domain can take (a fixed value -> ``[value]``); None if continuous."""
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        return list(value["grid_search"])
    if isinstance(value, Domain):
        return None
    return [value]


def plain(value: Any) -> Any:
    """``value`` in plain YAML types; another object is named by its type (an address in its repr would differ
    between two runs with the same settings).

    >>> import numpy as np
    >>> plain({"sizes": (8, 16), "act": object(), "lr": np.float64(0.5)})
    {'sizes': [8, 16], 'act': '<object>', 'lr': 0.5}
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # settings such as MemoryGuard
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy / torch scalars (np.float64 is a float)
        return value.item()
    for kind in (bool, int, float, str):  # another subclass (an IntEnum...): YAML's safe dumper takes the base type only
        if isinstance(value, kind):
            return kind(value)
    return f"<{type(value).__qualname__}>"


def describe_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """A search space in plain YAML types, in the spelling of :data:`YAML_DOMAINS` (what a resumed run compares).

    >>> describe_space({"optim.lr": tune.loguniform(1e-4, 1e-2), "model.h": tune.choice([8, 16]), "seed": 0})
    {'optim.lr': {'loguniform': {'lower': 0.0001, 'upper': 0.01}}, 'model.h': {'choice': [8, 16]}, 'seed': 0}
    """
    out = {}
    for key, value in space.items():
        if isinstance(value, Categorical):
            out[key] = {"choice": plain(value.categories)}
        elif isinstance(value, Domain):
            sampler = value.get_sampler()
            inner = getattr(sampler, "sampler", sampler)  # a quantized sampler wraps another
            kind = type(inner).__name__.strip("_").lower()  # uniform, loguniform, normal...
            # randint is not uniform: the domain's type is part of its name, as in YAML_DOMAINS.
            name = {"uniform": "randint", "loguniform": "lograndint"}.get(kind, kind) if isinstance(value, Integer) else kind
            name = ("q" if inner is not sampler else "") + {"normal": "randn"}.get(name, name)
            bounds = {"lower": getattr(value, "lower", None), "upper": getattr(value, "upper", None),
                      **{k: v for k, v in vars(sampler).items() if k != "sampler"}, **(vars(inner) if inner is not sampler else {})}
            out[key] = {name: plain(bounds)}
        else:
            out[key] = plain(value)
    return out


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
