"""Ray Tune trial schedulers and search algorithms from small config dicts.

Trial schedulers decide which trials keep training (not the LR scheduler nor the NWAVE schedulers):
``asha`` (the default), ``hyperband``, ``median`` and ``fifo``/``none``; search algorithms: ``random``
(the default, the only one that expands ``grid`` values), ``optuna`` and ``hyperopt``. Their options
and defaults: ``docs/tune-engine.md`` ("Trial schedulers and search algorithms").

Example:
    >>> build_tune_scheduler({"name": "asha", "grace_period": 2}, max_t=10)._max_t
    10
    >>> type(build_tune_scheduler("fifo")).__name__
    'FIFOScheduler'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

__all__ = ["SEARCH_ALGORITHMS", "TUNE_SCHEDULERS", "build_search_alg", "build_tune_scheduler", "grid_sizes"]

TUNE_SCHEDULERS = ("asha", "hyperband", "median", "fifo", "none")
SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")

_DEFAULT_MAX_T = 100


def _named(config: str | Mapping[str, Any] | None, default: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"asha"`` / ``{"name": "asha", ...}`` / None -> the lower-case name and the other options."""
    if config is None or isinstance(config, str):
        config = {"name": default if config is None else config}
    if not isinstance(config, Mapping):
        raise ValueError(f"{what} config {config!r} must be a name or a mapping with a 'name' key")
    options = dict(config)
    return str(options.pop("name", default)).strip().lower(), options


def grid_sizes(param_space: Mapping[str, Any]) -> list[int]:
    """The number of values of each ``grid_search`` entry (every combination is a trial).

    >>> grid_sizes({"a": {"grid_search": [1, 2, 3]}, "b": {"grid_search": [0, 1]}, "c": 5})
    [3, 2]
    """
    return [len(v["grid_search"]) for v in param_space.values() if isinstance(v, Mapping) and set(v) == {"grid_search"}]


def build_tune_scheduler(config: str | Mapping[str, Any] | None, *, max_t: float | None = None) -> TrialScheduler:
    """Build a Ray Tune trial scheduler; ``max_t`` defaults to the trials' epoch count.

    Raises:
        ValueError: unknown name or options the scheduler does not take.
    """
    name, cfg = _named(config, "asha", "tune scheduler")
    if name in ("fifo", "none"):
        if cfg:
            raise ValueError(f"tune scheduler {name!r} takes no options, got {sorted(cfg)}")
        return FIFOScheduler()
    cfg.setdefault("time_attr", "training_iteration")
    if name in ("asha", "hyperband") and "max_t" not in cfg:
        # max_t must cover the epochs (a trial is stopped there); a longer grace period stops no trial early.
        cfg["max_t"] = max(int(max_t) if max_t else _DEFAULT_MAX_T, int(cfg.get("grace_period", 1)))
    if name == "median":
        cfg.setdefault("grace_period", 1)  # Ray's default is 60 s of time_total_s; in epochs one is enough
        # Ray's default pauses waiting trials, which restart from their checkpoint (docs/tune-engine.md).
        cfg.setdefault("min_time_slice", float("inf"))
    classes = {"asha": AsyncHyperBandScheduler, "hyperband": HyperBandScheduler, "median": MedianStoppingRule}
    if name not in classes:
        raise ValueError(
            f"tune scheduler name={name!r} is not supported; use one of {list(TUNE_SCHEDULERS)} "
            "or pass a Ray TrialScheduler instance to set_tune_scheduler(...)"
        )
    try:
        return classes[name](**cfg)
    except (TypeError, AssertionError) as err:
        raise ValueError(f"tune scheduler {name!r} got invalid options {sorted(cfg)}: {err}") from err


def build_search_alg(config: str | Mapping[str, Any] | None, *, param_space: Mapping[str, Any] | None = None):
    """Build a search algorithm (None means Ray's default random/grid generator).

    ``random`` takes ``seed``; ``optuna``/``hyperopt`` take ``seed`` and any keyword
    of Ray's ``OptunaSearch`` / ``HyperOptSearch``.

    >>> build_search_alg("random") is None
    True
    >>> type(build_search_alg({"name": "optuna", "seed": 0})).__name__
    'OptunaSearch'
    """
    name, cfg = _named(config, "random", "search algorithm")
    if name == "random":
        seed = cfg.pop("seed", None)
        if cfg:
            raise ValueError(f"search algorithm 'random' takes only 'seed', got {sorted(cfg)}")
        if seed is None:
            return None
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=int(seed))
    if name not in SEARCH_ALGORITHMS:
        raise ValueError(f"search algorithm name={name!r} is not supported; use one of {list(SEARCH_ALGORITHMS)}")
    if grid_sizes(param_space or {}):
        raise ValueError(
            f"search algorithm {name!r} cannot expand grid values; use 'choice' instead of 'grid' "
            "(or tune.choice instead of tune.grid_search), or the 'random' search algorithm"
        )
    # Ray's wrappers import their package lazily and fail late, with an assertion.
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"search algorithm {name!r} needs `pip install {name}`; or use 'random'")
    if name == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(**cfg)
    from ray.tune.search.hyperopt import HyperOptSearch

    if "seed" in cfg:
        cfg["random_state_seed"] = cfg.pop("seed")
    return HyperOptSearch(**cfg)
