"""Synthetic keyword spotting: shape, balance, determinism, and that it needs timing to be solved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from nwave_lightning.data import KeywordSpottingDataModule


@pytest.fixture(scope="module")
def task():
    dm = KeywordSpottingDataModule(n_train=400, n_val=200, n_test=100, seed=0)
    dm.setup()
    return dm


def test_shapes_labels_and_balance(task):
    x, y = task.dataset("train").tensors
    assert x.shape == (400, 100, 13) and y.dtype == torch.long
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    assert int(y.sum()) == 200  # positive_fraction = 0.5, exactly
    assert len(task.dataset("val")) == 200 and len(task.dataset("test")) == 100
    assert KeywordSpottingDataModule.num_classes == 2


def test_positive_fraction_and_determinism():
    a = KeywordSpottingDataModule(n_train=50, n_val=10, n_test=10, positive_fraction=0.2, seed=7)
    b = KeywordSpottingDataModule(n_train=50, n_val=10, n_test=10, positive_fraction=0.2, seed=7)
    a.setup(), b.setup()
    assert int(a.dataset("train").tensors[1].sum()) == 10
    for split in ("train", "val", "test"):
        for ta, tb in zip(a.dataset(split).tensors, b.dataset(split).tensors):
            assert torch.equal(ta, tb)


def _features(x, bins):
    n, t, c = x.shape
    return x.reshape(n, bins, t // bins, c).sum(dim=2).reshape(n, -1).numpy()


def test_learnable_from_timing_but_not_from_spike_totals(task):
    x, y = task.dataset("train").tensors
    vx, vy = task.dataset("val").tensors
    # A linear read of per-channel counts in time bins solves it well above chance ...
    binned = LogisticRegression(max_iter=2000).fit(_features(x, 10), y.numpy())
    assert binned.score(_features(vx, 10), vy.numpy()) > 0.75
    # ... while the total spike count of a sequence is no better than chance: both words carry the same mass.
    total = LogisticRegression().fit(x.sum(dim=(1, 2)).numpy()[:, None], y.numpy())
    assert total.score(vx.sum(dim=(1, 2)).numpy()[:, None], vy.numpy()) < 0.65


@pytest.mark.parametrize("kwargs, fragment", [({"word_length": 100}, "word_length=100"), ({"burst_rate": -0.1}, "burst_rate"), ({"n_channels": 0}, "n_channels=0")])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        KeywordSpottingDataModule(**kwargs)
