"""Checks before launch: every problem of an experiment's setup in one error, before any trial starts.

Both front doors collect the problems of the search space, the experiment settings and the metric names,
then :func:`raise_problems` raises one :class:`PreflightError` listing them all; ``nwave tune`` also
trains one batch of one sampled config (:func:`dry_run`) for the keys the model logs and its memory.
See ``docs/tune-engine.md`` ("Checks before launch").

Example:
    >>> space = {"optim.lr": {"unifrom": [0.1, 0.2]}, "model.h": {"randint": [1.5, 4]},
    ...          "model.p": {"uniform": [0.9, 0.1]}, "model.k": {"choice": []}}
    >>> search_space_problems(space)  # doctest: +NORMALIZE_WHITESPACE
    ["search_space['optim.lr']: unknown domain 'unifrom' (did you mean 'uniform'?)",
     "search_space['model.h']: randint bounds must be integers, got lower=1.5, upper=4",
     "search_space['model.p']: lower=0.9 must be < upper=0.1",
     "search_space['model.k'].choice must be a non-empty list, got []"]
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ray.tune.search.sample import Categorical, Domain, Integer

from .space import YAML_DOMAINS, parse_domain

__all__ = ["DryRun", "PreflightError", "dry_run", "metric_problems", "raise_problems", "search_space_problems"]

#: Keys the trial reporter adds to what the model logs.
REPORTER_KEYS = ("epoch", "best_selected_metric")


class PreflightError(ValueError):
    """The experiment's setup has problems (all listed); raised before any trial starts."""


def domain_problems(key: str, value: Any) -> list[str]:
    """Problems of one search-space entry (a plain-YAML domain, a Ray Tune domain, or a fixed value)."""
    if isinstance(value, Mapping) and len(value) == 1:
        (name,) = value
        known = [*YAML_DOMAINS, "grid_search"]
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            return [f"search_space[{key!r}]: unknown domain {name!r} (did you mean {close[0]!r}?)"] if close else []
        try:
            value = parse_domain(value, key)
        except ValueError as err:
            return [str(err)]
    if isinstance(value, Categorical) and not value.categories:
        return [f"search_space[{key!r}]: choice of no values; give at least one"]
    lower, upper = getattr(value, "lower", None), getattr(value, "upper", None)
    if not isinstance(value, Domain) or lower is None or upper is None:
        return []
    if isinstance(value, Integer) and not all(isinstance(b, int) and not isinstance(b, bool) for b in (lower, upper)):
        return [f"search_space[{key!r}]: randint bounds must be integers, got lower={lower}, upper={upper}"]
    if not lower < upper:
        return [f"search_space[{key!r}]: lower={lower} must be < upper={upper}"]
    return []


def search_space_problems(space: Mapping[str, Any]) -> list[str]:
    """Problems of every entry of a search space (see the module example)."""
    return [problem for key, value in space.items() for problem in domain_problems(str(key), value)]


def metric_problems(metric: str, logged: Iterable[str], monitors: Mapping[str, str] = {}) -> list[str]:
    """The tune metric and each callback's monitored metric (``{callback: metric}``) against the logged keys.

    >>> monitors = {"BestModelCheckpoint": "val_los"}
    >>> metric_problems("val_accc", ["val_acc", "val_loss"], monitors)  # doctest: +NORMALIZE_WHITESPACE
    ["metric='val_accc' is not a logged key (did you mean 'val_acc'?)",
     "BestModelCheckpoint monitors 'val_los', which is not a logged key (did you mean 'val_loss'?)"]
    """
    keys = sorted({*logged, *REPORTER_KEYS})

    def hint(name: str) -> str:
        close = difflib.get_close_matches(name, keys, n=1)
        return f"did you mean {close[0]!r}?" if close else f"logged: {keys}"

    out = [] if metric in keys else [f"metric={metric!r} is not a logged key ({hint(metric)})"]
    for owner, name in monitors.items():
        if name not in keys:
            out.append(f"{owner} monitors {name!r}, which is not a logged key ({hint(name)})")
    return out


def raise_problems(problems: list[str], what: str) -> None:
    """Raise one :class:`PreflightError` listing every problem (nothing when there is none)."""
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"{what}: {len(problems)} problem(s) found before launching any trial:\n{lines}")


def callback_monitors(callbacks: Iterable[Any]) -> dict[str, str]:
    """``{callback class: monitored metric}`` for callbacks with a ``metric`` (NWAVE) or ``monitor`` (Lightning)."""
    out = {}
    for cb in callbacks:
        name = getattr(cb, "metric", None) or getattr(cb, "monitor", None)
        if isinstance(name, str):
            out[type(cb).__name__] = name
    return out


@dataclass
class DryRun:
    """What one training batch and one validation batch of a trial's config showed."""

    logged: set
    model_bytes: int


def dry_run(model, datamodule) -> DryRun:
    """Train one batch and validate one batch on the CPU; the keys logged and the model's memory.

    ``model_bytes`` is what forward + backward hold at the trial's batch size, T and
    widths: the tensors autograd saves for backward (the activations, counted once per
    storage), plus parameters, gradients and two optimizer moments per parameter.
    """
    import lightning.pytorch as pl
    import torch

    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with tempfile.TemporaryDirectory(prefix="nwave_dry_run_") as root:
        trainer = pl.Trainer(
            max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0, accelerator="cpu",
            devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=root,
        )
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            trainer.fit(model, datamodule=datamodule)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return DryRun(set(trainer.callback_metrics), sum(saved.values()) + 4 * params)
