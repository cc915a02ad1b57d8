"""The measurement convention: xi, linear membrane response, variance split."""

import math

import pytest
import torch

from nwave_lightning.init.measure import ensemble_variance, free_membrane, membrane_xi, variance_split
from nwave_lightning.layers import H1v1Layer, H1v2Layer

from ._models import linear_response, xi_of


def test_membrane_xi_matches_a_direct_computation():
    generator = torch.Generator().manual_seed(3)
    v = 0.3 + 0.2 * torch.randn(12, 30, 5, generator=generator) + torch.linspace(0, 0.5, 5)
    assert membrane_xi(v, 1.0) == pytest.approx(xi_of(v, 1.0), rel=1e-9)


def test_neuron_offsets_and_onsets_are_not_fluctuations():
    v = torch.zeros(4, 3, 2)
    v[:, :, 1] = 0.8  # a neuron with a different but constant mean
    v[:, 0] = -1.0  # the same onset in every sample
    assert ensemble_variance(v) == 0.0
    assert math.isinf(membrane_xi(v, 1.0))


def test_one_sample_falls_back_to_variance_over_time():
    v = torch.tensor([[[0.0], [1.0]]])
    assert ensemble_variance(v) == pytest.approx(0.5)


@pytest.mark.parametrize("layer_cls", [H1v2Layer, H1v1Layer])
def test_free_membrane_is_the_layers_response_without_spikes(layer_cls):
    layer = layer_cls(3, taus=torch.tensor([4e-3, 10e-3, 30e-3]), dt=1e-3)
    current = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(0))
    expected = linear_response(layer, current).double()
    torch.testing.assert_close(free_membrane(current, layer.beta, layer.syn_decay), expected, rtol=1e-5, atol=1e-5)


def test_variance_split():
    beta = torch.tensor([0.9])
    current = torch.randn(20, 40, 1, generator=torch.Generator().manual_seed(0))
    assert variance_split(current, torch.zeros_like(current), beta) == 1.0
    assert variance_split(current, current, beta) == pytest.approx(0.5)
    assert variance_split(current, 2 * current, beta) == pytest.approx(0.2)
