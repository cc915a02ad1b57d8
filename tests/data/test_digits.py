"""Digits as sequences: exactly scikit-learn's pixels, rows as time, stratified disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nwave_lightning.data import DigitsDataModule


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _find(images, image):
    matches = np.where((images == image).all(axis=(1, 2)))[0]
    return matches


def test_rows_become_time_steps(digits):
    dm = DigitsDataModule(steps_per_row=3)
    x, y = dm.dataset("train").tensors
    assert x.shape[1:] == (24, 8) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    image = x[0, ::3].numpy() * 16.0  # undo the hold and the scaling
    assert np.allclose(x[0, 0], x[0, 2]) and np.allclose(x[0, 21], x[0, 23])
    matches = _find(digits.images, image)
    assert len(matches) >= 1 and int(digits.target[matches[0]]) == int(y[0])


def test_splits_are_disjoint_complete_and_stratified(digits):
    dm = DigitsDataModule(steps_per_row=1, val_fraction=0.2, test_fraction=0.2, seed=1)
    sizes = {split: len(dm.dataset(split)) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == len(digits.target) == 1797
    flat = {split: {tuple(row) for row in dm.dataset(split).tensors[0].reshape(-1, 64).tolist()} for split in sizes}
    # duplicate images exist in the dataset; unique rows must not leak beyond those duplicates
    overlap = len(flat["train"] & flat["val"]) + len(flat["train"] & flat["test"])
    unique_total = len({tuple(row) for row in (digits.images / 16.0).reshape(-1, 64).tolist()})
    assert overlap <= 1797 - unique_total
    counts = torch.bincount(dm.dataset("val").tensors[1], minlength=10).float()
    assert counts.min() >= 33 and counts.max() <= 38  # ~36 per class in 359 images


def test_seeded_and_no_test_split():
    a, b = DigitsDataModule(seed=2), DigitsDataModule(seed=2)
    assert torch.equal(a.dataset("val").tensors[0], b.dataset("val").tensors[0])
    c = DigitsDataModule(test_fraction=0.0)
    assert len(c.dataset("train")) + len(c.dataset("val")) == 1797


@pytest.mark.parametrize("kwargs, fragment", [({"steps_per_row": 0}, "steps_per_row=0"), ({"val_fraction": 0.0}, "val_fraction=0.0"), ({"val_fraction": 0.6, "test_fraction": 0.4}, "val_fraction")])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DigitsDataModule(**kwargs)


def test_augment_adds_four_one_pixel_shifts_of_the_training_images_only():
    plain, augmented = DigitsDataModule(steps_per_row=1, seed=3), DigitsDataModule(steps_per_row=1, seed=3, augment=True)
    x, y = plain.dataset("train").tensors
    ax, ay = augmented.dataset("train").tensors
    n = len(y)
    assert len(ay) == 5 * n and torch.equal(ax[:n], x) and torch.equal(ay, y.repeat(5))
    up = ax[n : 2 * n]  # dy = -1: row r of the copy is row r + 1 of the original
    assert torch.equal(up[:, :7], x[:, 1:]) and float(up[:, 7].abs().sum()) == 0.0
    right = ax[4 * n :]  # dx = +1
    assert torch.equal(right[:, :, 1:], x[:, :, :7]) and float(right[:, :, 0].abs().sum()) == 0.0
    assert torch.equal(augmented.dataset("val").tensors[0], plain.dataset("val").tensors[0])
