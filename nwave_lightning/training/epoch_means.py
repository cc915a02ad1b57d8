"""Batch-size-weighted epoch means of many scalars, reduced across DDP ranks in one collective.

Logging every loss component with ``self.log`` at every step costs more than
a small SNN's step on a CPU; accumulating plain tensor sums here and logging
once per epoch keeps the framework's overhead small.

Example:
    >>> import torch
    >>> means = EpochMeans()
    >>> means.update({"loss": torch.tensor(1.0)}, weight=3)
    >>> means.update({"loss": torch.tensor(3.0)}, weight=1)   # a smaller last batch
    >>> {key: float(value) for key, value in means.compute().items()}
    {'loss': 1.5}
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

__all__ = ["EpochMeans"]


class EpochMeans:
    """Running ``sum(value * weight)`` and ``sum(weight)`` per key; float64 so long epochs keep precision.

    Each key keeps its own weight, so keys added in separate ``update`` calls
    for the same batch (or only on some batches) still average correctly.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, float] = {}

    def update(self, values: dict[str, torch.Tensor], weight: int) -> None:
        """Add one batch: ``values`` are 0-d tensors (or numbers), ``weight`` its batch size."""
        for key, value in values.items():
            value = torch.as_tensor(value).detach().to(torch.float64) * weight
            if key in self.sums:
                self.sums[key] += value.to(self.sums[key].device)
            else:
                self.sums[key] = value.clone()
            self.weights[key] = self.weights.get(key, 0.0) + float(weight)

    def compute(self, reduce_sum: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Means over everything seen; ``reduce_sum`` sums a tensor across ranks (DDP).

        Every rank must have seen the same keys (the same loss and metrics do).
        """
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        device = self.sums[keys[0]].device
        sums = [self.sums[key].to(device).reshape(()) for key in keys]
        weights = [torch.tensor(self.weights[key], dtype=torch.float64, device=device) for key in keys]
        packed = torch.stack(sums + weights)  # one collective for every key
        if reduce_sum is not None:
            packed = reduce_sum(packed)
        n = len(keys)
        return {key: (packed[i] / packed[n + i]).to(torch.float32) for i, key in enumerate(keys)}

    def reset(self) -> None:
        self.sums, self.weights = {}, {}
