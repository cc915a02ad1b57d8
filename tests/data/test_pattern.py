"""Tutorial 7's pattern data: the target formula, spike statistics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nwave_lightning.data import PatternDataModule, generate_temporal_targets


def test_targets_follow_the_tutorial_formula():
    targets = generate_temporal_targets(100, 8).numpy()
    t = np.linspace(0, 4 * np.pi, 100)
    for i in range(8):
        np.testing.assert_allclose(targets[:, i], 0.5 + 0.4 * np.sin(t + 2 * np.pi * i / 8), atol=1e-6)
    assert targets.min() >= 0.1 - 1e-6 and targets.max() <= 0.9 + 1e-6
    with pytest.raises(ValueError, match="pattern_type='square'"):
        generate_temporal_targets(10, 2, "square")


def test_splits_shapes_rates_and_targets():
    dm = PatternDataModule()
    dm.setup()
    x, y = dm.dataset("train").tensors
    assert x.shape == (128, 100, 8) and y.shape == (128, 100, 8)
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    assert abs(x.mean().item() - 0.4) < 0.01  # 102400 Bernoulli(0.4) draws: std 0.0015
    assert torch.equal(y[5], generate_temporal_targets(100, 8))
    val_x, _ = dm.dataset("val").tensors
    test_x, _ = dm.dataset("test").tensors
    assert val_x.shape == test_x.shape == (16, 100, 8)
    assert not torch.equal(val_x, test_x) and not torch.equal(val_x, x[:16])  # fresh inputs


def test_same_seed_same_data_other_seed_other_data():
    first, second, other = PatternDataModule(seed=3), PatternDataModule(seed=3), PatternDataModule(seed=4)
    for dm in (first, second, other):
        dm.setup()
    assert torch.equal(first.dataset("train").tensors[0], second.dataset("train").tensors[0])
    assert not torch.equal(first.dataset("train").tensors[0], other.dataset("train").tensors[0])


def test_batches_and_epoch_order():
    dm = PatternDataModule(n_samples=32, batch_size=16)
    loader = dm.train_dataloader()
    order0 = torch.cat([x.sum(dim=(1, 2)) for x, _ in loader])
    loader.sampler.set_epoch(1)
    order1 = torch.cat([x.sum(dim=(1, 2)) for x, _ in loader])
    assert sorted(order0.tolist()) == sorted(order1.tolist()) and not torch.equal(order0, order1)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat([x.sum(dim=(1, 2)) for x, _ in loader]), order0)


@pytest.mark.parametrize("kwargs, fragment", [({"spike_prob": 1.5}, "spike_prob=1.5"), ({"n_steps": 0}, "n_steps=0"), ({"batch_size": 0}, "batch_size=0")])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        PatternDataModule(**kwargs)


def test_target_period():
    targets = generate_temporal_targets(401, 1)[:, 0]
    # two periods over the sequence: maxima at t = pi/2 and 5 pi/2, i.e. steps 50 and 250 of 400
    peaks = [i for i in range(1, 400) if targets[i] >= targets[i - 1] and targets[i] >= targets[i + 1]]
    assert peaks == [50, 250] and math.isclose(float(targets.max()), 0.9, abs_tol=1e-6)
