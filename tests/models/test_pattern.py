"""PatternGenerator: tutorial 7's network, returned as lists (the contract)."""

import pytest
import torch

from nwave_lightning.models import PatternGenerator
from nwave_lightning.module import validate_contract


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
