"""A synthetic keyword-spotting task with the vendor SDK's HPO example shape: 13 channels, 2 classes.

Think of the 13 channels as the spike outputs of a 13-band filter bank. Every
sequence carries background spikes (``background_rate`` per step and channel)
and one spectro-temporal "word" at a random onset: the keyword (class 1) or a
distractor word (class 0). A word is a ``(13, word_length)`` rate template in
which each active channel bursts at ``burst_rate`` during its own window;
keyword and distractor use the same channels budget and the same mean rate, so
telling them apart needs which channels burst *when*, not how much. Templates
and samples are drawn from ``seed``: every run sees the same task.

Example:
    >>> dm = KeywordSpottingDataModule(n_train=64, n_val=32, n_test=32)
    >>> dm.setup()
    >>> x, y = next(iter(dm.val_dataloader()))
    >>> tuple(x.shape), sorted(set(y.tolist()))
    ((32, 100, 13), [0, 1])
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ._base import InMemoryDataModule, check_fraction, check_positive

__all__ = ["KeywordSpottingDataModule"]


def _word_template(generator: torch.Generator, channels: int, length: int, rate: float, active: float) -> torch.Tensor:
    template = torch.zeros(channels, length)
    n_active = max(1, round(active * channels))
    for channel in torch.randperm(channels, generator=generator)[:n_active].tolist():
        width = int(torch.randint(max(2, length // 6), max(3, length // 3) + 1, (1,), generator=generator))
        start = int(torch.randint(0, length - width + 1, (1,), generator=generator))
        template[channel, start : start + width] = rate
    return template


class KeywordSpottingDataModule(InMemoryDataModule):
    """Keyword (class 1) vs distractor (class 0) spike sequences ``(B, n_steps, 13)``.

    Args:
        n_train: Training sequences.
        n_val: Validation sequences.
        n_test: Test sequences.
        n_steps: Time steps ``T``.
        n_channels: Input channels (the vendor SDK's ``in_ch`` = 13).
        word_length: Steps a word lasts (``< n_steps``).
        burst_rate: Spike probability inside a channel's burst window.
        background_rate: Spike probability of the background noise.
        active_fraction: Fraction of channels a word uses.
        positive_fraction: Fraction of keyword (class 1) sequences in each split.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        seed: Seeds templates, samples and shuffling.
        shuffle: Shuffle the training split every epoch.
    """

    num_classes = 2

    def __init__(
        self,
        n_train: int = 512,
        n_val: int = 128,
        n_test: int = 128,
        n_steps: int = 100,
        n_channels: int = 13,
        word_length: int = 40,
        burst_rate: float = 0.5,
        background_rate: float = 0.05,
        active_fraction: float = 0.6,
        positive_fraction: float = 0.5,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, shuffle)
        owner = type(self).__name__
        for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("n_steps", n_steps), ("n_channels", n_channels), ("word_length", word_length)):
            check_positive(owner, name, value)
        if word_length >= n_steps:
            raise ValueError(f"{owner}: word_length={word_length} must be smaller than n_steps={n_steps}.")
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.n_steps, self.n_channels, self.word_length = n_steps, n_channels, word_length
        self.burst_rate = check_fraction(owner, "burst_rate", burst_rate)
        self.background_rate = check_fraction(owner, "background_rate", background_rate)
        self.active_fraction = check_fraction(owner, "active_fraction", active_fraction)
        self.positive_fraction = check_fraction(owner, "positive_fraction", positive_fraction)

    def build(self) -> dict[str, TensorDataset]:
        generator = torch.Generator().manual_seed(self.seed)
        words = torch.stack(
            [_word_template(generator, self.n_channels, self.word_length, self.burst_rate, self.active_fraction) for _ in range(2)]
        )  # words[0]: distractor (class 0), words[1]: keyword (class 1)
        return {split: self._split(generator, words, n) for split, n in self.sizes.items()}

    def _split(self, generator: torch.Generator, words: torch.Tensor, n: int) -> TensorDataset:
        n_pos = round(self.positive_fraction * n)
        y = torch.cat([torch.ones(n_pos, dtype=torch.long), torch.zeros(n - n_pos, dtype=torch.long)])
        y = y[torch.randperm(n, generator=generator)]
        rates = torch.full((n, self.n_steps, self.n_channels), self.background_rate)
        onsets = torch.randint(0, self.n_steps - self.word_length + 1, (n,), generator=generator)
        steps = onsets[:, None] + torch.arange(self.word_length)[None, :]  # (n, L)
        placed = words[y].transpose(1, 2)  # (n, L, C)
        rows = torch.arange(n)[:, None].expand_as(steps)
        rates[rows, steps] = torch.maximum(rates[rows, steps], placed)
        x = (torch.rand(rates.shape, generator=generator) < rates).float()
        return TensorDataset(x, y)
