"""Ray Tune trial schedulers and search algorithms from small config dicts.

Trial schedulers decide which trials keep training (the vendor SDK's "Ray Tune trial
scheduler" layer, not the LR scheduler nor the NWAVE schedulers):

========== ============================================ =========================
name       Ray Tune class                               useful keys
========== ============================================ =========================
asha       ``AsyncHyperBandScheduler`` (the default)    grace_period, reduction_factor, max_t, brackets
hyperband  ``HyperBandScheduler`` (pauses trials)       reduction_factor, max_t
median     ``MedianStoppingRule`` (never pauses)        grace_period, min_samples_required, min_time_slice
fifo/none  ``FIFOScheduler`` (every trial runs to end)  --
========== ============================================ =========================

Times are counted in reported epochs (``time_attr="training_iteration"``) unless
the config sets ``time_attr``. Search algorithms: ``random`` (Ray's
``BasicVariantGenerator``, the default; the only one that expands ``grid``
values), ``optuna`` (``OptunaSearch``) and ``hyperopt`` (``HyperOptSearch``, needs
the ``hyperopt`` package).

``metric`` / ``mode`` are left to ``TuneConfig`` (Ray refuses them twice).

Example:
    >>> build_tune_scheduler({"name": "asha", "grace_period": 2}, max_t=10)._max_t
    10
    >>> type(build_tune_scheduler("fifo")).__name__
    'FIFOScheduler'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

__all__ = [
    "SEARCH_ALGORITHMS",
    "TUNE_SCHEDULERS",
    "build_search_alg",
    "build_tune_scheduler",
    "normalize_named_config",
]

TUNE_SCHEDULERS = ("asha", "hyperband", "median", "fifo", "none")
SEARCH_ALGORITHMS = ("random", "optuna", "hyperopt")

_DEFAULT_MAX_T = 100


def normalize_named_config(config: str | Mapping[str, Any] | None, default: str, what: str) -> dict[str, Any]:
    """``"asha"`` / ``{"name": "asha", ...}`` / None -> ``{"name": ..., ...}`` (lower-case name).

    >>> normalize_named_config("ASHA", "asha", "scheduler")
    {'name': 'asha'}
    """
    if config is None:
        return {"name": default}
    if isinstance(config, str):
        return {"name": config.strip().lower()}
    if not isinstance(config, Mapping):
        raise ValueError(f"{what} config {config!r} must be a name or a mapping with a 'name' key")
    out = dict(config)
    out["name"] = str(out.get("name", default)).strip().lower()
    return out


def build_tune_scheduler(config: str | Mapping[str, Any] | None, *, max_t: float | None = None) -> TrialScheduler:
    """Build a Ray Tune trial scheduler; ``max_t`` defaults to the trials' epoch count.

    Raises:
        ValueError: unknown name or options the scheduler does not take.
    """
    cfg = normalize_named_config(config, "asha", "tune scheduler")
    name = cfg.pop("name")
    if name in ("fifo", "none"):
        if cfg:
            raise ValueError(f"tune scheduler {name!r} takes no options, got {sorted(cfg)}")
        return FIFOScheduler()
    cfg.setdefault("time_attr", "training_iteration")
    if name in ("asha", "hyperband") and "max_t" not in cfg:
        # A trial that trains longer than max_t is stopped there, so max_t must cover the epochs;
        # a grace period longer than the trials just means no trial is stopped early.
        cfg["max_t"] = max(int(max_t) if max_t else _DEFAULT_MAX_T, int(cfg.get("grace_period", 1)))
    if name == "median":
        # Ray's default grace period is 60 s of time_total_s; in epochs one is enough.
        cfg.setdefault("grace_period", 1)
        # Ray's default (min_time_slice=0) pauses a trial after *every* epoch while fewer than
        # min_samples_required trials have got that far and others wait for a slot (always so
        # with max_concurrent_trials < num_samples): each pause restarts the trial process from
        # its checkpoint, and a train_fn that does not resume from ctx.checkpoint never finishes
        # (it starts over at epoch 1 after every pause). Trials here never yield; the rule
        # only stops them.
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


def _has_grid(param_space: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Mapping) and set(v) == {"grid_search"} for v in param_space.values())


def build_search_alg(config: str | Mapping[str, Any] | None, *, param_space: Mapping[str, Any] | None = None):
    """Build a search algorithm (None means Ray's default random/grid generator).

    ``random`` takes ``seed``; ``optuna``/``hyperopt`` take ``seed`` and any keyword
    of Ray's ``OptunaSearch`` / ``HyperOptSearch``.

    >>> build_search_alg("random") is None
    True
    >>> type(build_search_alg({"name": "optuna", "seed": 0})).__name__
    'OptunaSearch'
    """
    cfg = normalize_named_config(config, "random", "search algorithm")
    name = cfg.pop("name")
    if name in ("random", "grid", "basic", "variant"):
        seed = cfg.pop("seed", None)
        if cfg:
            raise ValueError(f"search algorithm 'random' takes only 'seed', got {sorted(cfg)}")
        if seed is None:
            return None
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=int(seed))
    if name not in SEARCH_ALGORITHMS:
        raise ValueError(f"search algorithm name={name!r} is not supported; use one of {list(SEARCH_ALGORITHMS)}")
    if param_space and _has_grid(param_space):
        raise ValueError(
            f"search algorithm {name!r} cannot expand grid values; use 'choice' instead of 'grid' "
            "(or tune.choice instead of tune.grid_search), or the 'random' search algorithm"
        )
    if name == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
        except ImportError as err:  # pragma: no cover - optuna is a test dependency
            raise ImportError("search algorithm 'optuna' needs `pip install optuna`") from err
        return OptunaSearch(**cfg)
    try:
        import hyperopt  # noqa: F401  (Ray's wrapper imports it lazily and fails late)
        from ray.tune.search.hyperopt import HyperOptSearch
    except ImportError as err:
        raise ImportError(
            "search algorithm 'hyperopt' needs `pip install hyperopt`; or use 'optuna' / 'random'"
        ) from err
    if "seed" in cfg:
        cfg["random_state_seed"] = cfg.pop("seed")
    return HyperOptSearch(**cfg)
