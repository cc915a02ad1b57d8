"""Build the callbacks of one run from the vendor SDK's config namespaces (``nwave.*``, ``early_stop.*``).

One trial of ``nwave tune`` and one run of ``nwave fit`` should build the same
callbacks from the same dicts; this is that single place.

Example:
    >>> cbs = callbacks_from_config(
    ...     nwave={"surrogate": {"policy": "linear", "start_value": 10.0, "end_value": 20.0, "total_steps": 60}},
    ...     early_stop={"policy": "patience", "metric": "val_acc", "mode": "max", "patience": 4},
    ...     best={"metric": "val_acc", "mode": "max"},
    ... )
    >>> [type(cb).__name__ for cb in cbs]
    ['SurrogateScheduler', 'NWaveEarlyStopping', 'BestModelCheckpoint']
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from lightning.pytorch.callbacks import Callback

from .activity_figures import ActivityFigures
from .best_checkpoint import BestModelCheckpoint
from .early_stopping import NWaveEarlyStopping
from .sign_annealing import SignAnnealing
from .surrogate_scheduler import SurrogateScheduler

__all__ = ["NWAVE_SCHEDULERS", "callbacks_from_config"]

NWAVE_SCHEDULERS = {"surrogate": SurrogateScheduler, "sign_annealing": SignAnnealing}


def callbacks_from_config(
    nwave: Optional[Mapping[str, Any]] = None,
    early_stop: Optional[Mapping[str, Any]] = None,
    best: Optional[Mapping[str, Any]] = None,
    activity: Optional[Mapping[str, Any]] = None,
) -> list[Callback]:
    """The configured callbacks, in a fixed order; unconfigured (empty / ``None`` / policy ``none``) ones are left out.

    Args:
        nwave: ``{"surrogate": {...}, "sign_annealing": {...}}`` (the vendor SDK's ``nwave.*``).
        early_stop: The vendor SDK's ``early_stop.*`` dict.
        best: ``{"metric": ..., "mode": ..., "dirpath": ..., "filename": ...}`` for :class:`BestModelCheckpoint`.
        activity: ``{"every_n_epochs": ...}`` for :class:`ActivityFigures`.

    Raises:
        ValueError: an unknown ``nwave`` sub-namespace or unknown keys inside one.
    """
    nwave = dict(nwave or {})
    unknown = sorted(set(nwave) - set(NWAVE_SCHEDULERS))
    if unknown:
        raise ValueError(f"callbacks_from_config: unknown nwave scheduler(s) {unknown}; the known ones are {sorted(NWAVE_SCHEDULERS)}.")
    built = [NWAVE_SCHEDULERS[name].from_config(nwave.get(name)) for name in NWAVE_SCHEDULERS]
    built += [
        NWaveEarlyStopping.from_config(early_stop),
        BestModelCheckpoint.from_config(best),
        ActivityFigures.from_config(activity),
    ]
    return [cb for cb in built if cb is not None]
