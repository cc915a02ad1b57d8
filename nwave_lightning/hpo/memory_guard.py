"""Host-RAM pre-check: how many trials can run at once without swapping or OOM.

Before launching Ray Tune, :func:`resolve_concurrency` (called by ``HPOWrapper.run``)

1. reads the RAM available on this machine (``/proc/meminfo``'s ``MemAvailable``,
   psutil when present, ``sysconf`` otherwise);
2. estimates the dataset footprint from ``dataset_path`` and the ``data.*`` values
   that name files or folders under it (``train_file``, ``val_file``, ...); every
   trial loads its own copy, so one trial needs
   ``dataset_bytes * dataset_memory_multiplier + model_bytes + trial_overhead_bytes``
   where ``model_bytes`` is what one training batch of the trial's model holds
   (measured by a dry run, :func:`nwave_lightning.hpo.preflight.dry_run`);
3. recommends ``max_concurrent_trials`` as the smallest of: the RAM budget
   (``available * safety_fraction``) divided by that per-trial need, the trials the
   cluster's CPUs/GPUs can host with the requested per-trial resources, and
   the number of trials (``num_samples`` times every grid's size);
4. auto-caps concurrency to the recommendation when the user set none (and prints
   the estimate); when the user's value is above what memory allows, raises
   :class:`MemoryGuardError` (``strict=True``) or caps it with a warning. A value
   above the CPU/GPU or trial-count limit is left to Ray (trials wait their turn).

Example:
    >>> guard = MemoryGuard(trial_overhead_bytes=100 * 2**20)
    >>> rec = recommend_concurrency(guard, dataset_bytes=400 * 2**20, num_samples=20,
    ...                             resources={"cpu": 1, "gpu": 0}, cluster={"CPU": 8},
    ...                             available_bytes=4 * 2**30)
    >>> rec.value, rec.limited_by
    (5, 'memory')
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .space import domain_values

__all__ = [
    "MemoryGuard",
    "MemoryGuardError",
    "Recommendation",
    "available_ram_bytes",
    "estimate_dataset_bytes",
    "recommend_concurrency",
    "resolve_concurrency",
]

log = logging.getLogger(__name__)

#: RAM one trial process needs besides its data (torch + Lightning + Ray worker), measured
#: as the resident size of a tiny CPU trial; override with ``trial_overhead_bytes``.
DEFAULT_TRIAL_OVERHEAD_BYTES = 600 * 2**20
#: ``data.*`` keys whose values are read as paths under ``dataset_path``.
_PATH_KEY_SUFFIXES = ("_file", "_path", "_dir", "_files", "_paths")


class MemoryGuardError(ValueError):
    """The requested concurrency does not fit the machine (raised when ``strict``)."""


@dataclass
class MemoryGuard:
    """Settings of the pre-check (``HPOWrapper.set_memory_guard`` fills it)."""

    enabled: bool = True
    strict: bool = False
    safety_fraction: float = 0.80
    dataset_memory_multiplier: float = 1.25
    trial_overhead_bytes: int = DEFAULT_TRIAL_OVERHEAD_BYTES

    def __post_init__(self) -> None:
        if not 0.0 < float(self.safety_fraction) <= 1.0:
            raise ValueError(f"safety_fraction={self.safety_fraction!r} must be in (0, 1]; e.g. 0.8 keeps 20% of RAM free")
        if float(self.dataset_memory_multiplier) <= 0.0:
            raise ValueError(
                f"dataset_memory_multiplier={self.dataset_memory_multiplier!r} must be > 0; "
                "1.0 means a trial holds exactly the dataset's on-disk size"
            )
        if int(self.trial_overhead_bytes) < 0:
            raise ValueError(f"trial_overhead_bytes={self.trial_overhead_bytes!r} must be >= 0")


@dataclass
class Recommendation:
    """What the guard found, in bytes; ``limited_by`` names the binding constraint."""

    value: int
    limited_by: str
    dataset_bytes: int
    per_trial_bytes: int
    available_bytes: int
    budget_bytes: int
    limits: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        gib = 2.0**30
        return (
            f"recommended max_concurrent_trials={self.value} (limited by {self.limited_by}; "
            f"limits {self.limits}); dataset ~{self.dataset_bytes / gib:.3f} GiB, "
            f"~{self.per_trial_bytes / gib:.3f} GiB per trial, RAM budget "
            f"{self.budget_bytes / gib:.2f} of {self.available_bytes / gib:.2f} GiB available"
        )


def available_ram_bytes() -> int:
    """RAM available for new processes on this machine, in bytes."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # optional; ships with some Ray installs

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _path_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # vanished or broken link: it takes no memory either
                continue
    return total


def _hinted_paths(dataset_path: str | None, data_cfg: Mapping[str, Any]) -> list[list[str]]:
    """Per ``data.*`` hint, the candidate paths it may name (several when tuned)."""
    hints = []
    for key, value in data_cfg.items():
        values = domain_values(value)
        if values is None:
            continue
        candidates = []
        for candidate in values:
            items = candidate if isinstance(candidate, (list, tuple)) else [candidate]
            for item in items:
                if not isinstance(item, (str, os.PathLike)):
                    continue
                item = os.fspath(item)
                path = item if os.path.isabs(item) or not dataset_path else os.path.join(dataset_path, item)
                if os.path.exists(path) or key.endswith(_PATH_KEY_SUFFIXES):
                    candidates.append(path)
        if candidates:
            hints.append(candidates)
    return hints


def estimate_dataset_bytes(dataset_path: str | os.PathLike | None, data_cfg: Mapping[str, Any] | None = None) -> int:
    """On-disk size of the data a trial loads.

    Uses the files the ``data.*`` hints name under ``dataset_path`` (for a tuned
    hint, its largest choice); without hints, the whole ``dataset_path``.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "train.pt").write_bytes(b"x" * 3000); _ = (root / "val.pt").write_bytes(b"x" * 1000)
    >>> _ = (root / "unused.bin").write_bytes(b"x" * 5000)
    >>> estimate_dataset_bytes(root, {"train_file": "train.pt", "val_file": "val.pt", "batch_size": 8})
    4000
    >>> estimate_dataset_bytes(root)
    9000
    """
    root = os.fspath(dataset_path) if dataset_path is not None else None
    hints = _hinted_paths(root, data_cfg or {})
    if hints:
        seen, total = set(), 0
        for candidates in hints:
            sizes = {path: _path_bytes(path) for path in candidates if os.path.exists(path)}
            if sizes:
                biggest = max(sizes, key=sizes.get)
                if biggest not in seen:
                    seen.add(biggest)
                    total += sizes[biggest]
        return total
    if root and os.path.exists(root):
        return _path_bytes(root)
    return 0


def recommend_concurrency(
    guard: MemoryGuard,
    *,
    dataset_bytes: int,
    num_samples: int,
    resources: Mapping[str, float],
    cluster: Mapping[str, float],
    available_bytes: int | None = None,
    model_bytes: int = 0,
) -> Recommendation:
    """Recommend ``max_concurrent_trials`` from RAM, per-trial resources and the number of trials."""
    available = available_ram_bytes() if available_bytes is None else int(available_bytes)
    per_trial = int(dataset_bytes * float(guard.dataset_memory_multiplier)) + int(model_bytes) + int(guard.trial_overhead_bytes)
    budget = int(available * float(guard.safety_fraction))
    limits = {"memory": budget // max(per_trial, 1), "num_samples": int(num_samples)}
    for name, key in (("cpu", "CPU"), ("gpu", "GPU")):
        need = float(resources.get(name, 0) or 0)
        if need > 0:
            limits[name] = int(math.floor(float(cluster.get(key, 0)) / need + 1e-9))
    limited_by = min(limits, key=limits.get)
    value = max(1, limits[limited_by])
    return Recommendation(value, limited_by, int(dataset_bytes), per_trial, available, budget, limits)


def resolve_concurrency(
    guard: MemoryGuard,
    requested: int | None,
    *,
    dataset_path: str | os.PathLike | None,
    data_cfg: Mapping[str, Any] | None,
    num_samples: int,
    resources: Mapping[str, float],
    cluster: Mapping[str, float],
    available_bytes: int | None = None,
    model_bytes: int = 0,
) -> tuple[int | None, Recommendation | None]:
    """Apply the guard: the concurrency to use and the recommendation behind it.

    Raises:
        MemoryGuardError: ``guard.strict`` and ``requested`` trials at once do not fit the
            RAM budget, or even one trial does not.
    """
    if not guard.enabled:
        return requested, None
    rec = recommend_concurrency(
        guard,
        dataset_bytes=estimate_dataset_bytes(dataset_path, data_cfg),
        num_samples=num_samples,
        resources=resources,
        cluster=cluster,
        available_bytes=available_bytes,
        model_bytes=model_bytes,
    )
    if rec.limits["memory"] < 1:
        message = (
            f"Memory guard: one trial needs ~{rec.per_trial_bytes / 2**30:.2f} GiB but the RAM budget is "
            f"{rec.budget_bytes / 2**30:.2f} GiB ({guard.safety_fraction:.0%} of "
            f"{rec.available_bytes / 2**30:.2f} GiB available). Free memory, load a smaller dataset, or lower "
            "set_memory_guard(dataset_memory_multiplier=...) / raise safety_fraction if the estimate is too high."
        )
        if guard.strict:
            raise MemoryGuardError(message)
        log.warning(message)
    if requested is None:
        print(f"Memory guard: max_concurrent_trials not set, auto-capped; {rec.describe()}", flush=True)
        return rec.value, rec
    fits = max(1, rec.limits["memory"])
    if requested > fits:
        message = (
            f"Memory guard: max_concurrent_trials={requested} does not fit in memory; {rec.describe()}. "
            f"Fix: max_concurrent_trials: {fits} (HPOWrapper: set_max_concurrent_trials({fits})) or leave it unset to "
            "auto-cap, a smaller model or batch, "
            "or relax memory_guard (strict=False / safety_fraction=...)."
        )
        if guard.strict:
            raise MemoryGuardError(message)
        print(f"{message} Capped to {fits}.", flush=True)
        return fits, rec
    return requested, rec
