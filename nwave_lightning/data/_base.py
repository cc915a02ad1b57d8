"""Shared machinery of the built-in datamodules: seeded splits and epoch-seeded shuffling."""

from __future__ import annotations

from typing import Iterator, Optional

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["EpochShuffleSampler", "InMemoryDataModule", "ResumableDataLoader", "check_fraction", "check_positive"]


def check_positive(owner: str, name: str, value, integer: bool = True):
    """``value`` if it is a positive int (or number); a ValueError naming it otherwise."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive {'integer' if integer else 'number'}.")
    return value


def check_fraction(owner: str, name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{owner}: {name}={value!r} must be a number in [{low}, {high}].")
    return float(value)


class EpochShuffleSampler(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)``: the same order on every run and after a resume.

    Lightning calls ``set_epoch`` at the start of every epoch (and wraps this
    sampler for DDP), so a run resumed from a checkpoint sees exactly the
    batches the uninterrupted run saw; a ``RandomSampler`` with a generator
    would restart its stream instead.

    Example:
        >>> sampler = EpochShuffleSampler(5, seed=0)
        >>> first = list(sampler); sampler.set_epoch(1); second = list(sampler)
        >>> sorted(first) == sorted(second) == [0, 1, 2, 3, 4], first != second
        (True, True)
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = int(length), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class ResumableDataLoader(DataLoader):
    """A DataLoader that resumes mid-epoch: Lightning saves its ``state_dict`` in every checkpoint.

    :class:`~nwave_lightning.callbacks.InterruptCheckpoint` sets :attr:`consumed` after every
    training batch (Lightning fetches one batch ahead, so the loader cannot count them itself).
    After ``load_state_dict`` the next iteration skips the batches the interrupted run already
    trained on; with :class:`EpochShuffleSampler` the rest of the epoch is then exactly the
    batches the uninterrupted run saw.

    Example:
        >>> loader = ResumableDataLoader(list(range(6)), batch_size=2)
        >>> loader.load_state_dict({"consumed": 2, "epoch": None})
        >>> [batch.tolist() for batch in loader], [batch.tolist() for batch in loader]
        ([[4, 5]], [[0, 1], [2, 3], [4, 5]])
    """

    consumed = 0
    _skip = 0

    def state_dict(self) -> dict:
        epoch = getattr(self.sampler, "epoch", None)
        return {"consumed": int(self.consumed), "epoch": None if epoch is None else int(epoch)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._skip = int(state_dict.get("consumed", 0))
        # Lightning iterates a restored loader before it sets the sampler's epoch: set it here.
        if state_dict.get("epoch") is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(int(state_dict["epoch"]))

    def __iter__(self):
        iterator = super().__iter__()
        skip, self._skip, self.consumed = self._skip, 0, 0
        for _ in range(skip):  # in-memory datasets: loading a skipped batch costs little
            next(iterator, None)
        self.consumed = skip
        return iterator


class InMemoryDataModule(pl.LightningDataModule):
    """A datamodule whose splits are tensors built once, deterministically, in :meth:`build`.

    Subclasses implement :meth:`build` returning ``{"train": Dataset, "val":
    Dataset, "test": Dataset}``; ``predict`` uses the test split.

    Args:
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes (0 keeps everything in-process).
        seed: Seeds the data and the shuffling.
        shuffle: Shuffle the training split every epoch.
    """

    #: How the loaders assemble a batch (``None``: PyTorch's default); a subclass may set its own.
    collate_fn = None

    def __init__(self, batch_size: int = 32, num_workers: int = 0, seed: int = 0, shuffle: bool = True) -> None:
        super().__init__()
        self.batch_size = check_positive(type(self).__name__, "batch_size", batch_size)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"{type(self).__name__}: num_workers={num_workers!r} must be an integer >= 0.")
        self.num_workers, self.seed, self.shuffle = num_workers, int(seed), bool(shuffle)
        self.datasets: Optional[dict[str, Dataset]] = None

    def build(self) -> dict[str, Dataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets is None:
            self.datasets = self.build()

    def dataset(self, split: str) -> Dataset:
        """The ``"train"``, ``"val"`` or ``"test"`` split (built on first use)."""
        self.setup()
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        sampler = EpochShuffleSampler(len(dataset), self.seed) if shuffle else None
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False)
