"""Kernel sums, inverse efficacy, input statistics and the two conditions of the theory."""

import math

import pytest
import torch

from nwave_lightning.hardware import H1V1, H1V2, efficacy
from nwave_lightning.init.theory import InputStats, input_stats, inverse_efficacy, kernel_sums, solve_moments
from nwave_lightning.layers import H1v1Layer, H1v2Layer


def impulse_response(layer_cls, taus, dt, steps):
    """Membrane after one unit of current at step 0, from the layer itself (no spikes: huge threshold)."""
    layer = layer_cls(len(taus), taus=torch.tensor(taus), dt=dt, threshold=1e12)
    current = torch.zeros(1, steps, len(taus), dtype=torch.float32)
    current[0, 0] = 1.0
    return layer(current)[1][0].double(), layer


@pytest.mark.parametrize("layer_cls", [H1v2Layer, H1v1Layer])
def test_kernel_sums_equal_the_layers_own_impulse_response(layer_cls):
    # 5 ms equals H1v1's tau_syn, which exercises the beta == a limit of the closed form.
    taus = [2e-3, 5e-3, 20e-3, 80e-3]
    response, layer = impulse_response(layer_cls, taus, 1e-3, 3000)
    bar, hat = kernel_sums(layer.beta, layer.syn_decay)
    torch.testing.assert_close(bar, response.sum(dim=0), rtol=2e-4, atol=0)
    torch.testing.assert_close(hat, (response**2).sum(dim=0), rtol=2e-4, atol=0)


def test_kernel_sums_delta_closed_form():
    bar, hat = kernel_sums(torch.tensor([0.9], dtype=torch.float64))
    assert float(bar) == pytest.approx(10.0)
    assert float(hat) == pytest.approx(1 / (1 - 0.81))


@pytest.mark.parametrize("chip", [H1V1, H1V2])
def test_inverse_efficacy_round_trips_and_is_odd_and_monotone(chip):
    w = torch.linspace(-2.0, 2.0, 81, dtype=torch.float64)
    torch.testing.assert_close(inverse_efficacy(efficacy(w, chip), chip), w)
    c = efficacy(w, chip)
    torch.testing.assert_close(inverse_efficacy(-c, chip), -inverse_efficacy(c, chip))
    assert bool((inverse_efficacy(c, chip).diff() > 0).all())


def test_inverse_efficacy_maps_the_gain_to_unit_weight_on_h1v1():
    assert float(inverse_efficacy(torch.tensor(H1V1.synaptic_gain, dtype=torch.float64), H1V1)) == pytest.approx(1.0)


def test_input_stats_of_bernoulli_spikes():
    generator = torch.Generator().manual_seed(1)
    p = torch.tensor([0.1, 0.4])
    x = (torch.rand(400, 200, 2, generator=generator) < p).float()
    stats = input_stats(x)
    torch.testing.assert_close(stats.rate, p.double(), atol=0.01, rtol=0)
    torch.testing.assert_close(stats.var, (p * (1 - p)).double(), atol=0.01, rtol=0)


def test_input_stats_ignore_a_deterministic_onset_and_fall_back_to_time_for_one_sample():
    x = torch.zeros(5, 4, 1)
    x[:, 0] = 1.0  # every sample spikes at step 0: no fluctuation across samples
    assert float(input_stats(x).var) == 0.0
    assert float(input_stats(x[:1]).var) == pytest.approx(0.25)


def _stats(rate, n):
    rates = torch.full((n,), rate, dtype=torch.float64)
    return InputStats(rates, rates * (1 - rates))


def test_dense_input_meets_both_conditions():
    stats = _stats(0.4, 8)
    bar, hat = kernel_sums(torch.tensor([0.96, 0.9], dtype=torch.float64))
    m = solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0)
    assert not bool(m.centered.any())
    torch.testing.assert_close((1.0 - m.mu_u) / m.sigma_u, torch.full((2,), 2.0, dtype=torch.float64))
    # Predictions recomputed from the formulas of hardware-model.md.
    torch.testing.assert_close(m.mu_u, 8 * 0.4 * m.mu * bar)
    torch.testing.assert_close(m.sigma_u**2, 8 * 0.24 * (m.sigma_ff**2 + m.mu**2) * hat)
    scatter = bar * m.sigma_ff * math.sqrt(8 * 0.4**2)
    torch.testing.assert_close(scatter, m.sigma_u)


def test_sparse_input_keeps_centred_weights():
    stats = _stats(0.01, 50)
    bar, hat = kernel_sums(torch.tensor([0.9], dtype=torch.float64))
    m = solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0)
    assert bool(m.centered.all()) and float(m.mu) == 0.0
    assert float(m.sigma_u) == pytest.approx(0.5)  # theta / xi
    assert float(bar * m.sigma_ff * math.sqrt(50 * 0.01**2)) < float(m.sigma_u)


def test_centred_limit_keeps_balanced_weights_up_to_its_scatter():
    # 13 channels at 0.08 spikes per step, tau = 10 ms: centred weights would scatter the
    # neurons' own means by sqrt(eps_bar^2 sum nu^2 / (eps_hat sum v)) ~ 1.3 sigma_U.
    stats = _stats(0.08, 13)
    bar, hat = kernel_sums(torch.tensor([math.exp(-0.1)], dtype=torch.float64))
    ratio = float(torch.sqrt(bar**2 * (stats.rate**2).sum() / (hat * stats.var.sum())))
    assert 1.0 < ratio < 2.0
    strict = solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0)
    assert not bool(strict.centered.any()) and float(strict.mu) > 0  # the 1-sigma diversity rule
    loose = solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0, centred_limit=2.0)
    assert bool(loose.centered.all()) and float(loose.mu) == 0.0
    assert float(loose.sigma_u) == pytest.approx(0.5)  # theta / xi, the first condition with mu_U = 0
    scatter = float(bar * loose.sigma_ff * (stats.rate**2).sum().sqrt())
    assert scatter == pytest.approx(ratio * float(loose.sigma_u))  # within the limit of 2 sigma_U
    assert scatter <= 2.0 * float(loose.sigma_u)
    with pytest.raises(ValueError, match="centred_limit=0.5 must be >= diversity=1.0"):
        solve_moments(stats, bar, hat, threshold=1.0, xi=2.0, alpha=1.0, diversity=1.0, centred_limit=0.5)


def test_recurrent_weights_carry_one_minus_alpha_of_the_variance():
    stats = _stats(0.3, 10)
    bar, hat = kernel_sums(torch.tensor([0.95], dtype=torch.float64))
    m = solve_moments(stats, bar, hat, 1.0, 2.0, alpha=0.8, rc_rate=0.02, n_recurrent=6, diversity=1.0)
    ff_var = hat * 10 * 0.21 * (m.sigma_ff**2 + m.mu**2)
    rc_var = hat * 6 * 0.02 * 0.98 * m.sigma_rc**2
    torch.testing.assert_close(ff_var / (ff_var + rc_var), torch.tensor([0.8], dtype=torch.float64))
    torch.testing.assert_close(ff_var + rc_var, m.sigma_u**2)


def test_input_without_fluctuation_is_infeasible():
    stats = InputStats(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    bar, hat = kernel_sums(torch.tensor([0.9], dtype=torch.float64))
    with pytest.raises(ValueError, match="no fluctuation"):
        solve_moments(stats, bar, hat, 1.0, 2.0, 1.0)
