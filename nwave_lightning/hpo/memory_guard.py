"""Host-RAM pre-check: how many trials can run at once without swapping or running out of memory.

:func:`resolve_concurrency` (called by the engine before launch) estimates one trial's RAM (its own
copy of the dataset, its model's memory at its batch size, the process itself), recommends
``max_concurrent_trials`` and caps or refuses a value that does not fit. How the estimate is made
and when it raises: ``docs/tune-engine.md`` ("The memory guard").

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
    """RAM available for new processes on this machine, in bytes (Linux's ``MemAvailable``, else the free pages;
    where the system tells neither, as on macOS, all of its RAM)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # no /proc (macOS), or a kernel without MemAvailable
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        log.warning("free RAM is not known on this machine; the memory guard counts all of its RAM as available")
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


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


def _named_paths(root: str, value: Any) -> list[str]:
    """The existing files or folders a ``data.*`` value names under ``root`` (each choice of a tuned one)."""
    paths = []
    for choice in domain_values(value) or []:
        for item in choice if isinstance(choice, (list, tuple)) else [choice]:
            if not isinstance(item, (str, os.PathLike)):
                continue
            path = os.path.join(root, item)
            if os.path.exists(path):
                paths.append(path)
    return paths


def estimate_dataset_bytes(dataset_path: str | os.PathLike | None, data_cfg: Mapping[str, Any] | None = None) -> int:
    """On-disk size of the data a trial loads.

    Uses the files the ``data.*`` values name under ``dataset_path`` (for a tuned
    value, its largest choice); when none names a file, the whole ``dataset_path``.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "train.pt").write_bytes(b"x" * 3000)
    >>> _ = (root / "val.pt").write_bytes(b"x" * 1000)
    >>> _ = (root / "unused.bin").write_bytes(b"x" * 5000)
    >>> estimate_dataset_bytes(root, {"train_file": "train.pt", "val_file": "val.pt", "batch_size": 8})
    4000
    >>> estimate_dataset_bytes(root)
    9000
    """
    root = os.fspath(dataset_path) if dataset_path is not None else ""
    named = [paths for paths in (_named_paths(root, value) for value in (data_cfg or {}).values()) if paths]
    if named:
        # Two values naming the same file count it once.
        return sum(_path_bytes(path) for path in {max(paths, key=_path_bytes) for paths in named})
    return _path_bytes(root) if root else 0


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
    return Recommendation(max(1, limits[limited_by]), limited_by, int(dataset_bytes), per_trial, available, budget, limits)


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

    Only memory caps or refuses ``requested``: more trials than CPUs, GPUs or samples allow wait their turn in Ray.

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
    if requested <= fits:
        return requested, rec
    message = (
        f"Memory guard: max_concurrent_trials={requested} does not fit in memory; {rec.describe()}. "
        f"Fix: max_concurrent_trials: {fits} (HPOWrapper: set_max_concurrent_trials({fits})) or leave it unset to "
        "auto-cap, a smaller model or batch, or relax memory_guard (strict=False / safety_fraction=...)."
    )
    if guard.strict:
        raise MemoryGuardError(message)
    print(f"{message} Capped to {fits}.", flush=True)
    return fits, rec
