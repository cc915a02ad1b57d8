"""The measurement convention: burn-in, xi, linear membrane response, variance split."""

import math

import pytest
import torch

from nwave_lightning.init.measure import (
    burn_in_steps,
    ensemble_variance,
    free_membrane,
    membrane_xi,
    slowest_time_constant,
    stationary,
    variance_split,
)
from nwave_lightning.layers import H1v1Layer, H1v2Layer

from ._models import linear_response, xi_of


def test_membrane_xi_matches_a_direct_computation():
    generator = torch.Generator().manual_seed(3)
    v = 0.3 + 0.2 * torch.randn(12, 30, 5, generator=generator) + torch.linspace(0, 0.5, 5)
    assert membrane_xi(v, 1.0) == pytest.approx(xi_of(v, 1.0, 0), rel=1e-9)
    assert membrane_xi(v, 1.0, burn_in=12) == pytest.approx(xi_of(v, 1.0, 12), rel=1e-9)


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


def test_the_burn_in_leaves_out_the_rise_from_the_zero_state():
    # A membrane that rises over the first 10 steps, then fluctuates around 0.5.
    generator = torch.Generator().manual_seed(0)
    v = 0.5 + 0.1 * torch.randn(40, 50, 3, generator=generator)
    v[:, :10] *= torch.linspace(0.0, 1.0, 10).view(1, 10, 1)
    stationary_part = v[:, 10:]
    assert membrane_xi(v, 1.0, burn_in=10) == pytest.approx(membrane_xi(stationary_part, 1.0), rel=1e-12)
    assert membrane_xi(v, 1.0) > 1.1 * membrane_xi(v, 1.0, burn_in=10)  # the rise lowers the mean: xi too high
    assert ensemble_variance(v, burn_in=10) == pytest.approx(float(stationary_part.double().var(dim=0).mean()))


def test_variance_split_filters_from_step_zero_and_cuts_afterwards():
    # The FF current flows in the burn-in only: its membrane response still decays into the
    # measured steps, which cutting the current first would miss.
    beta = torch.tensor([0.9])
    current = torch.randn(20, 40, 1, generator=torch.Generator().manual_seed(1))
    ff = current.clone()
    ff[:, 10:] = 0.0
    rc = current.clone()
    rc[:, :10] = 0.0
    share = variance_split(ff, rc, beta, burn_in=10)
    var_ff = free_membrane(ff, beta)[:, 10:].var(dim=0).mean()
    var_rc = free_membrane(rc, beta)[:, 10:].var(dim=0).mean()
    assert 0.0 < share == pytest.approx(float(var_ff / (var_ff + var_rc)))
    assert variance_split(ff[:, 10:], rc[:, 10:], beta) == 0.0  # cut first: the FF part is lost


def test_burn_in_steps_and_slowest_time_constant():
    assert burn_in_steps(25e-3, 1e-3, 3.0) == 75  # not 76 from 75.00000000000001
    assert burn_in_steps(float(torch.tensor(25e-3)), 1e-3, 3.0) == 75  # nor from the float32 taus of a layer
    assert burn_in_steps(45e-3, 2e-3, 3.0) == 68  # 67.5 rounds up
    assert burn_in_steps(40e-3, 2e-3, 0.0) == 0
    assert slowest_time_constant(H1v2Layer(3, taus=torch.tensor([4e-3, 30e-3, 10e-3]), dt=1e-3)) == pytest.approx(30e-3)
    layer = H1v1Layer(3, taus=torch.tensor([4e-3, 30e-3, 10e-3]), dt=1e-3)
    assert slowest_time_constant(layer) == pytest.approx(30e-3 + layer.chip.tau_syn)


def test_a_burn_in_that_leaves_nothing_is_refused():
    v = torch.zeros(2, 5, 1)
    with pytest.raises(ValueError, match="burn_in=5 steps leaves nothing of a 5-step recording"):
        membrane_xi(v, 1.0, burn_in=5)
    with pytest.raises(ValueError, match="burn_in=-1 must be a non-negative integer"):
        stationary(v, -1)
    with pytest.raises(ValueError, match="burn_in=2.0 must be a non-negative integer"):
        ensemble_variance(v, 2.0)
