"""Handwritten digits (scikit-learn's bundled 8x8 set) as spike-encoder input sequences.

Each 8x8 image becomes a sequence whose time steps are the image rows (top to
bottom), each row held for ``steps_per_row`` steps: ``x`` has shape
``(B, 8 * steps_per_row, 8)`` with pixel intensities in ``[0, 1]``, the
analog input an H1 frontend turns into spikes. 1797 images, 10 classes, no
download (the data ship with scikit-learn). Splits are stratified and seeded.

Example:
    >>> dm = DigitsDataModule(steps_per_row=2, batch_size=8)
    >>> dm.setup()
    >>> x, y = next(iter(dm.train_dataloader()))
    >>> tuple(x.shape), float(x.max()) <= 1.0, len(dm.datasets["val"])
    ((8, 16, 8), True, 359)
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ._base import InMemoryDataModule, check_fraction, check_positive

__all__ = ["DigitsDataModule"]


class DigitsDataModule(InMemoryDataModule):
    """``sklearn.datasets.load_digits`` with rows as time steps, 10 classes.

    Args:
        steps_per_row: Time steps each image row lasts (``T = 8 * steps_per_row``).
        val_fraction: Fraction of images in the validation split.
        test_fraction: Fraction of images in the test split.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        seed: Seeds the split and the shuffling.
        shuffle: Shuffle the training split every epoch.
        augment: Add four copies of every training image shifted by one pixel
            (up, down, left, right; zeros fill in): 5x the training data, the
            classic remedy for 1078 images. Validation and test stay untouched.
    """

    num_classes = 10
    num_features = 8

    def __init__(
        self,
        steps_per_row: int = 4,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        augment: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, seed, shuffle)
        owner = type(self).__name__
        self.augment = bool(augment)
        self.steps_per_row = check_positive(owner, "steps_per_row", steps_per_row)
        self.val_fraction = check_fraction(owner, "val_fraction", val_fraction, 0.0, 0.9)
        self.test_fraction = check_fraction(owner, "test_fraction", test_fraction, 0.0, 0.9)
        if self.val_fraction + self.test_fraction >= 0.95 or self.val_fraction == 0:
            raise ValueError(f"{owner}: val_fraction={val_fraction} must be > 0 and val_fraction + test_fraction < 0.95.")

    def build(self) -> dict[str, TensorDataset]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # (1797, 8, 8), rows first
        y = torch.as_tensor(digits.target, dtype=torch.long)
        index = torch.arange(len(y)).numpy()
        held_out = self.val_fraction + self.test_fraction
        train_idx, rest_idx = train_test_split(index, test_size=held_out, stratify=y.numpy(), random_state=self.seed)
        splits = {"train": train_idx}
        if self.test_fraction > 0:
            val_idx, test_idx = train_test_split(
                rest_idx, test_size=self.test_fraction / held_out, stratify=y.numpy()[rest_idx], random_state=self.seed
            )
            splits.update(val=val_idx, test=test_idx)
        else:
            splits.update(val=rest_idx, test=rest_idx)
        out = {}
        for name, idx in splits.items():
            split_images, split_y = images[torch.as_tensor(idx)], y[torch.as_tensor(idx)]
            if name == "train" and self.augment:
                split_images = torch.cat([split_images, *(shift(split_images, dy, dx) for dy, dx in SHIFTS)])
                split_y = split_y.repeat(1 + len(SHIFTS))
            out[name] = TensorDataset(split_images.repeat_interleave(self.steps_per_row, dim=1), split_y)
        return out


SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images ``(N, H, W)`` moved by ``(dy, dx)`` pixels, zeros where nothing moves in.

    Example:
        >>> shift(torch.arange(4.0).reshape(1, 2, 2), 0, 1)[0].tolist()
        [[0.0, 0.0], [0.0, 2.0]]
    """
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out
