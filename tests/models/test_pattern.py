"""PatternGenerator: tutorial 7's network, returned as lists (the contract)."""

import pytest
import torch

from nwave_lightning.models import PatternGenerator
from nwave_lightning.training import validate_contract


def test_pattern_generator_is_the_tutorial_network():
    net = PatternGenerator()
    assert net.synapse.weight.shape == (8, 8) and net.lif.recurrent_weights.shape == (8, 8)
    assert float(net.lif.taus[0]) == pytest.approx(25e-3) and net.lif.dt == 1e-3 and net.lif.spike_grad.value == 25.0
    x = (torch.rand(3, 100, 8) < 0.4).float()
    outputs = net(x)
    validate_contract(outputs, x)
    spikes, membranes = net.lif(net.synapse(x))
    assert torch.equal(outputs[0][0], spikes) and torch.equal(outputs[1][0], membranes)
    assert net.layer_pairs == [(net.synapse, net.lif)]


def test_helper_neurons_run_in_the_layer_and_stay_out_of_the_output():
    torch.manual_seed(0)
    net = PatternGenerator(n_hidden=8)
    assert net.synapse.weight.shape == (8, 16) and net.lif.recurrent_weights.shape == (16, 16)
    with torch.no_grad():  # strong helper -> output coupling, so the helpers visibly shape the outputs
        net.synapse.weight.uniform_(0.0, 1.5)
        net.lif.recurrent_weights.uniform_(-1.5, 1.5)
    x = (torch.rand(4, 60, 8) < 0.4).float()
    (spikes,), (membranes,) = net(x)
    # Reference: the whole 16-neuron layer run step by step with numpy-free torch ops, first 8 columns kept.
    w_in, w_rc = net.synapse.weight.detach(), net.lif.recurrent_weights.detach()
    beta = torch.exp(-net.lif.dt / net.lif.taus.detach())
    u = torch.zeros(4, 16)
    s = torch.zeros(4, 16)
    ref_s, ref_v = [], []
    for t in range(60):
        v = beta * u + 0.25 * (x[:, t] @ w_in) + 0.25 * (s @ w_rc)
        s = (v >= 1.0).float()
        u = v * (1 - s)
        ref_s.append(s[:, :8]), ref_v.append(v[:, :8])
    assert torch.equal(spikes, torch.stack(ref_s, 1))
    torch.testing.assert_close(membranes, torch.stack(ref_v, 1))
    assert spikes.sum() > 0
    silent_helpers = PatternGenerator(n_hidden=8)
    silent_helpers.load_state_dict(net.state_dict())
    with torch.no_grad():
        silent_helpers.lif.recurrent_weights[8:] = 0.0  # helpers no longer reach anyone
    assert not torch.equal(silent_helpers(x)[0][0], spikes)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_helper_count_is_named(bad):
    with pytest.raises(ValueError, match="n_hidden"):
        PatternGenerator(n_hidden=bad)
