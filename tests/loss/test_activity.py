"""firing_rate_target_mse_loss against a numpy reference and its analytic gradient."""

import numpy as np
import pytest
import torch

from nwave_lightning.loss import firing_rate_target_mse_loss


def _layers():
    return [(torch.rand(3, 7, n) < p).float() for n, p in ((4, 0.1), (6, 0.3), (2, 0.6))]


def test_value_matches_numpy_reference():
    spikes, offsets, multipliers = _layers(), [0.05, 0.08, 0.10], [10, 5, 1]
    expected = sum(m * (s.numpy().mean() - o) ** 2 for s, o, m in zip(spikes, offsets, multipliers))
    got = firing_rate_target_mse_loss(spikes, offsets, multipliers)
    assert got.dim() == 0
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_gradient_matches_analytic_derivative():
    spikes = [torch.rand(2, 5, n, dtype=torch.float64, requires_grad=True) for n in (3, 4)]
    offsets, multipliers = [0.2, 0.7], [2.0, 0.5]
    firing_rate_target_mse_loss(spikes, offsets, multipliers).backward()
    for s, o, m in zip(spikes, offsets, multipliers):
        expected = 2 * m * (s.detach().mean() - o) / s.numel()
        torch.testing.assert_close(s.grad, torch.full_like(s, float(expected)))


def test_tensor_and_tuple_targets_are_accepted():
    spikes = _layers()
    a = firing_rate_target_mse_loss(spikes, torch.tensor([0.1, 0.2, 0.3]), (1, 2, 3))
    b = firing_rate_target_mse_loss(spikes, [0.1, 0.2, 0.3], [1, 2, 3])
    assert float(a) == pytest.approx(float(b))


@pytest.mark.parametrize(
    "offsets,multipliers,match",
    [
        ([0.1, 0.2], [1, 2, 3], "offsets has 2 entries but spikes_list has 3 layers"),
        ([0.1, 0.2, 0.3], [1, 2, 3, 4], "multipliers has 4 entries but spikes_list has 3 layers"),
        (0.1, [1, 2, 3], "must be a list with one number per layer"),
        ([0.1, float("inf"), 0.3], [1, 2, 3], r"offsets\[1\]=inf must be a finite number"),
    ],
)
def test_bad_targets_raise(offsets, multipliers, match):
    with pytest.raises(ValueError, match=match):
        firing_rate_target_mse_loss(_layers(), offsets, multipliers)


def test_empty_spikes_list_raises():
    with pytest.raises(ValueError, match="non-empty list"):
        firing_rate_target_mse_loss([], [], [])
    with pytest.raises(ValueError, match="non-empty list"):
        firing_rate_target_mse_loss(torch.zeros(2, 3, 4), [0.1], [1.0])
