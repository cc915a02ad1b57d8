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
    means.update({"x": 1.0, "y": 10.0}, 2)
    means.update({"x": 4.0}, 1)
    seen = []
    # Another rank saw x = 7 on 3 samples and y = 0 on 5: the collective adds its sums and weights.
    other = torch.tensor([7.0 * 3, 0.0 * 5, 3.0, 5.0], dtype=torch.float64)

    def reduce_sum(packed):
        seen.append(packed.clone())
        return packed + other

    got = {key: float(value) for key, value in means.compute(reduce_sum).items()}
    # One collective; keys sorted, sums first then weights: [sum_x, sum_y, w_x, w_y].
    assert len(seen) == 1
    assert seen[0].tolist() == [1.0 * 2 + 4.0 * 1, 10.0 * 2, 3.0, 2.0]
    assert got == pytest.approx({"x": (2.0 + 4.0 + 21.0) / (3 + 3), "y": (20.0 + 0.0) / (2 + 5)})
    assert {key: float(value) for key, value in means.compute().items()} == pytest.approx({"x": 2.0, "y": 10.0})
    means.reset()
    assert means.compute() == {}
    means.update({"z": 3.0}, 4)  # after reset nothing of the old epoch leaks into the new one
    assert {key: float(value) for key, value in means.compute().items()} == {"z": 3.0}
