"""Tutorial 7's pattern task: random input spikes, sine-shaped target rates.

Inputs are Bernoulli spikes (``spike_prob`` = 0.4) on ``n_inputs`` channels;
the target of neuron ``i`` is the rate ``0.5 + 0.4 sin(t + 2 pi i / n_neurons)``
with ``t`` spanning two periods over ``n_steps``. Batches are ``(x, y)`` with
``y`` the target pattern repeated per sample, ``(B, T, n_neurons)``. The
validation and test splits are fresh random inputs (the tutorial's "fresh
random test batch"), drawn from other seeds.

Example:
    >>> dm = PatternDataModule(n_samples=32)
    >>> dm.setup()
    >>> x, y = next(iter(dm.train_dataloader()))
    >>> tuple(x.shape), tuple(y.shape), round(float(y[0, 0, 0]), 3)
    ((16, 100, 8), (16, 100, 8), 0.5)
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from ._base import InMemoryDataModule, check_fraction, check_positive

__all__ = ["PatternDataModule", "generate_temporal_targets"]


def generate_temporal_targets(n_steps: int, n_neurons: int, pattern_type: str = "sine") -> torch.Tensor:
    """The tutorial's target rates ``(n_steps, n_neurons)``.

    Example:
        >>> generate_temporal_targets(3, 2).shape
        torch.Size([3, 2])
    """
    if pattern_type != "sine":
        raise ValueError(f"generate_temporal_targets: pattern_type={pattern_type!r} is unknown; the tutorial defines 'sine'.")
    t = torch.linspace(0, 4 * math.pi, n_steps)
    phases = 2 * math.pi * torch.arange(n_neurons) / n_neurons
    return 0.5 + 0.4 * torch.sin(t[:, None] + phases[None, :])


class PatternDataModule(InMemoryDataModule):
    """Tutorial 7's data: ``n_samples`` training inputs, fresh validation/test inputs.

    Args:
        n_samples: Training sequences (the tutorial's 128).
        n_steps: Time steps ``T``.
        n_inputs: Input spike channels.
        n_neurons: Target neurons (the model's output width).
        spike_prob: Input spike probability per step.
        n_val: Validation sequences.
        n_test: Test sequences.
        pattern_type: Target shape (``"sine"``).
        batch_size: Samples per batch (the tutorial's 16).
        num_workers: DataLoader workers.
        seed: Seeds inputs and shuffling (the tutorial's 42).
        shuffle: Shuffle the training split every epoch.
    """

    def __init__(
        self,
        n_samples: int = 128,
        n_steps: int = 100,
        n_inputs: int = 8,
        n_neurons: int = 8,
        spike_prob: float = 0.4,
        n_val: int = 16,
        n_test: int = 16,
        pattern_type: str = "sine",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 42,
        shuffle: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, shuffle)
        owner = type(self).__name__
        for name, value in (("n_samples", n_samples), ("n_steps", n_steps), ("n_inputs", n_inputs), ("n_neurons", n_neurons), ("n_val", n_val), ("n_test", n_test)):
            check_positive(owner, name, value)
        self.n_samples, self.n_steps, self.n_inputs, self.n_neurons = n_samples, n_steps, n_inputs, n_neurons
        self.spike_prob = check_fraction(owner, "spike_prob", spike_prob)
        self.n_val, self.n_test = n_val, n_test
        self.target = generate_temporal_targets(n_steps, n_neurons, pattern_type)

    def _split(self, n: int, offset: int) -> TensorDataset:
        generator = torch.Generator().manual_seed(self.seed + offset)
        x = (torch.rand(n, self.n_steps, self.n_inputs, generator=generator) < self.spike_prob).float()
        return TensorDataset(x, self.target.expand(n, -1, -1))

    def build(self) -> dict[str, TensorDataset]:
        return {"train": self._split(self.n_samples, 0), "val": self._split(self.n_val, 1), "test": self._split(self.n_test, 2)}
