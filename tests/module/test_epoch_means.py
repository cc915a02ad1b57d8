"""EpochMeans: batch-size-weighted means per key, however the keys arrive."""

import pytest
import torch

from nwave_lightning.module.epoch_means import EpochMeans


def test_keys_added_in_separate_updates_of_one_batch_average_over_samples():
    means = EpochMeans()
    batches = [(torch.tensor(1.0), torch.tensor(10.0), 3), (torch.tensor(4.0), torch.tensor(20.0), 1)]
    for a, b, size in batches:
        means.update({"a": a}, size)
        means.update({"b": b}, size)
    got = {key: float(value) for key, value in means.compute().items()}
    assert got == pytest.approx({"a": (1.0 * 3 + 4.0) / 4, "b": (10.0 * 3 + 20.0) / 4})


def test_a_key_seen_on_some_batches_only_averages_over_those():
    means = EpochMeans()
    means.update({"loss": 2.0, "extra": 6.0}, 2)
    means.update({"loss": 4.0}, 2)
    got = {key: float(value) for key, value in means.compute().items()}
    assert got == pytest.approx({"loss": 3.0, "extra": 6.0})


def test_reduce_sum_sees_sums_and_weights_and_reset_clears():
    means = EpochMeans()
    means.update({"x": 1.0}, 2)
    # Two identical ranks: summing sums and weights leaves the mean unchanged.
    assert float(means.compute(lambda packed: 2 * packed)["x"]) == pytest.approx(1.0)
    means.reset()
    assert means.compute() == {}
