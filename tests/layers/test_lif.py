import math

import numpy as np
import pytest
import torch

from nwave_lightning.hardware import H1V1, H1V2, efficacy
from nwave_lightning.layers import H1v1Layer, H1v2Layer, prepare_net
from nwave_lightning.surrogate import atan, fast_sigmoid

from . import numpy_reference as ref

LAYERS = {"H1v1": (H1v1Layer, H1V1), "H1v2": (H1v2Layer, H1V2)}


def _make(chip_name, topology, n=5, slope=5.0, detach_reset=False):
    cls, chip = LAYERS[chip_name]
    taus = torch.linspace(5e-3, 40e-3, n)
    layer = cls(n, taus=taus, dt=1e-3, layer_topology=topology, spike_grad=fast_sigmoid(slope), detach_reset=detach_reset)
    if topology == "RC":
        with torch.no_grad():
            layer.recurrent_weights.uniform_(-0.9, 0.9)
    return layer.double(), chip


def _numpy_args(layer, chip):
    # The layer stores beta in float32; its value is checked against exp(-dt/tau) below.
    beta = layer.beta.numpy()
    np.testing.assert_allclose(beta, np.exp(-1e-3 / layer.taus.numpy()), rtol=1e-7)
    w_rc = None
    if layer.recurrent_weights is not None:
        w_rc = efficacy(layer.recurrent_weights.detach(), chip).numpy()
    syn_decay = math.exp(-1e-3 / chip.tau_syn) if chip.tau_syn else 0.0
    return beta, w_rc, syn_decay


def _step_loop(layer, model, current):
    prepare_net(model)
    out = [layer(current[:, t]) for t in range(current.shape[1])]
    return torch.stack([o[0] for o in out], 1), torch.stack([o[1] for o in out], 1)


@pytest.mark.parametrize("chip_name", sorted(LAYERS))
@pytest.mark.parametrize("topology", ["FF", "RC"])
def test_forward_matches_independent_loop_through_both_paths(chip_name, topology):
    layer, chip = _make(chip_name, topology)
    current = torch.rand(3, 60, 5, dtype=torch.float64) * (0.8 if chip_name == "H1v2" else 0.35)
    beta, w_rc, syn_decay = _numpy_args(layer, chip)
    expected_spikes, expected_mem = ref.forward(current.numpy(), beta, 1.0, w_rc, syn_decay)
    assert expected_spikes.mean() > 0.05, "test drive too weak to exercise the reset"
    spk_seq, mem_seq = layer(current)
    spk_step, mem_step = _step_loop(layer, layer, current)
    np.testing.assert_allclose(mem_seq.detach().numpy(), expected_mem, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(spk_seq.detach().numpy(), expected_spikes)
    assert torch.equal(spk_seq, spk_step) and torch.equal(mem_seq, mem_step)


@pytest.mark.parametrize("chip_name", sorted(LAYERS))
@pytest.mark.parametrize("topology", ["FF", "RC"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_gradients_match_hand_derived_bptt(chip_name, topology, detach_reset):
    layer, chip = _make(chip_name, topology, slope=3.0, detach_reset=detach_reset)
    current = (torch.rand(2, 25, 5, dtype=torch.float64) * 0.7).requires_grad_(True)
    grad_spikes = torch.randn(2, 25, 5, dtype=torch.float64)
    grad_mem = torch.randn(2, 25, 5, dtype=torch.float64)
    spikes, membranes = layer(current)
    ((spikes * grad_spikes).sum() + (membranes * grad_mem).sum()).backward()
    beta, w_rc, syn_decay = _numpy_args(layer, chip)
    expected_current, expected_w = ref.backward(
        current.detach().numpy(), beta, 1.0, 3.0, grad_spikes.numpy(), grad_mem.numpy(), w_rc, syn_decay, detach_reset
    )
    np.testing.assert_allclose(current.grad.numpy(), expected_current, rtol=1e-9, atol=1e-10)
    if topology == "RC":
        # d efficacy / d w chains the recurrent-matrix gradient back to the stored weight.
        w = layer.recurrent_weights.detach().numpy()
        if chip.efficacy == "linear":
            chain = chip.synaptic_gain * np.ones_like(w)
        else:
            chain = chip.synaptic_gain * chip.kappa * np.exp(chip.kappa * np.abs(w)) / math.expm1(chip.kappa)
        np.testing.assert_allclose(layer.recurrent_weights.grad.numpy(), expected_w * chain, rtol=1e-9, atol=1e-10)


def test_two_step_gradient_equals_the_analytic_expression():
    # V1 = I1, S1 = H(V1 - 1), U1 = V1 (1 - S1), V2 = beta U1 + I2, S2 = H(V2 - 1):
    # dS2/dI1 = sg'(V2 - 1) * beta * ((1 - S1) - V1 * sg'(V1 - 1)).
    slope, tau = 4.0, 20e-3
    layer = H1v2Layer(1, taus=tau, dt=1e-3, spike_grad=fast_sigmoid(slope)).double()
    current = torch.tensor([[[1.3], [0.4]]], dtype=torch.float64, requires_grad=True)
    spikes, _ = layer(current)
    spikes[0, 1, 0].backward()
    beta = math.exp(-1e-3 / tau)
    sg = lambda x: 1.0 / (slope * abs(x) + 1.0) ** 2
    v1, s1 = 1.3, 1.0
    v2 = beta * v1 * (1 - s1) + 0.4
    assert current.grad[0, 0, 0].item() == pytest.approx(sg(v2 - 1) * beta * ((1 - s1) - v1 * sg(v1 - 1)))
    assert current.grad[0, 1, 0].item() == pytest.approx(sg(v2 - 1))


def test_h1v2_ff_equals_snntorch_leaky_zero_reset():
    snntorch = pytest.importorskip("snntorch")
    n, tau = 6, 15e-3
    layer = H1v2Layer(n, taus=tau, dt=1e-3)
    leaky = snntorch.Leaky(beta=float(layer.beta[0]), threshold=1.0, reset_mechanism="zero")
    current = torch.rand(4, 80, n) * 0.6
    spikes, membranes = layer(current)
    mem = leaky.init_leaky()
    snn_spikes, snn_mem = [], []
    for t in range(current.shape[1]):
        spk, mem = leaky(current[:, t], mem)
        snn_spikes.append(spk)
        snn_mem.append(mem)
    torch.testing.assert_close(membranes, torch.stack(snn_mem, 1))
    torch.testing.assert_close(spikes, torch.stack(snn_spikes, 1))


def test_rc_step_without_prepare_net_says_what_to_do():
    layer = H1v2Layer(3, taus=20e-3, dt=1e-3, layer_topology="RC")
    with pytest.raises(RuntimeError, match=r"Call prepare_net\(model\)"):
        layer(torch.rand(2, 3))


def test_rc_step_with_stale_prepared_matrix_is_refused():
    layer = H1v2Layer(3, taus=20e-3, dt=1e-3, layer_topology="RC")
    prepare_net(layer)
    layer(torch.rand(2, 3))
    with torch.no_grad():
        layer.recurrent_weights.add_(0.1)  # what an optimiser step does
    with pytest.raises(RuntimeError, match="stale"):
        layer(torch.rand(2, 3))


def test_prepare_net_resets_state_between_sequences():
    layer = H1v2Layer(2, taus=30e-3, dt=1e-3)
    x = torch.full((1, 2), 0.6)
    prepare_net(layer)
    first = [layer(x)[1] for _ in range(3)]
    prepare_net(layer)
    again = [layer(x)[1] for _ in range(3)]
    for a, b in zip(first, again):
        assert torch.equal(a, b)


def test_batch_size_change_mid_sequence_is_an_error():
    layer = H1v2Layer(2, taus=30e-3, dt=1e-3)
    prepare_net(layer)
    layer(torch.rand(3, 2))
    with pytest.raises(RuntimeError, match="batch size changed from 3 to 4"):
        layer(torch.rand(4, 2))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(n_neurons=4, taus=0.9, dt=1e-3), r"H1v2Layer: taus\[0\]=0.9 s is outside the H1v2 range \[0.001, 0.5\]"),
        (dict(n_neurons=4, taus=2e-3, dt=2e-3), "dt=0.002 s must be smaller than every tau"),
        (dict(n_neurons=4, taus=20e-3, dt=1e-3, layer_topology="XX"), r"layer_topology='XX' is unknown; choose one of \('FF', 'RC'\)"),
        (dict(n_neurons=0, taus=20e-3, dt=1e-3), "n_neurons=0 must be a positive integer"),
        (dict(n_neurons=4, taus=[0.02, 0.03], dt=1e-3), r"expected a scalar or shape \(4,\)"),
        (dict(n_neurons=4, taus=20e-3, dt=1e-3, spike_grad=torch.sigmoid), "spike_grad=.* must be a surrogate"),
        (dict(n_neurons=4, taus=20e-3, dt=1e-3, backend="cuda-magic"), "backend='cuda-magic' is not a known backend"),
    ],
)
def test_construction_errors_name_module_value_and_range(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        H1v2Layer(**kwargs)


def test_h1v1_dt_must_be_below_the_synaptic_time_constant():
    with pytest.raises(ValueError, match="tau_syn"):
        H1v1Layer(2, taus=50e-3, dt=6e-3)


@pytest.mark.parametrize(
    "x, fragment",
    [
        (torch.rand(2, 5, 3), r"input has 3 features .* n_neurons \(the synapse's nb_outputs must match\) is 4"),
        (torch.rand(4), r"rank 1.*expected \(B, 4\) for one step or \(B, T, 4\)"),
        (torch.ones(2, 4, dtype=torch.long), "must be floating point"),
    ],
)
def test_input_errors(x, fragment):
    with pytest.raises(ValueError, match=fragment):
        H1v2Layer(4, taus=20e-3, dt=1e-3)(x)


def test_forward_gpu_is_the_sequence_path_and_checks_rank():
    layer = H1v2Layer(3, taus=20e-3, dt=1e-3, spike_grad=atan(2.0))
    x = torch.rand(2, 10, 3)
    assert torch.equal(layer.forward_gpu(x)[1], layer(x)[1])
    with pytest.raises(ValueError, match=r"forward_gpu expects a \(B, T, N\) sequence"):
        layer.forward_gpu(x[:, 0])


def test_seed_device_flags_fall_back_to_cpu_with_a_warning():
    if torch.cuda.is_available():
        pytest.skip("the fallback only applies without CUDA")
    with pytest.warns(UserWarning, match="no CUDA device is available"):
        layer = H1v2Layer(3, taus=20e-3, dt=1e-3, device="gpu")
    assert layer.beta.device.type == "cpu"
    with pytest.warns(UserWarning, match="staying on the CPU"):
        layer.to_gpu()
    with pytest.raises(ValueError, match="device='tpu'"):
        H1v2Layer(3, taus=20e-3, dt=1e-3, device="tpu")


def test_collect_metrics_accumulates_activity():
    layer = H1v2Layer(3, taus=20e-3, dt=1e-3)
    prepare_net(layer, collect_metrics=True)
    spikes, membranes = layer(torch.rand(2, 7, 3))
    assert int(layer.activity["samples"]) == spikes.numel()
    assert float(layer.activity["spike_count"]) == float(spikes.sum())
    torch.testing.assert_close(layer.activity["membrane_sum"], membranes.sum().detach())
    prepare_net(layer)
    assert layer.activity is None
