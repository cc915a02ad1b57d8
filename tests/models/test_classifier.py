"""H1Classifier / SurrogateSNN: structure, per-layer options, and forward = the blocks composed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from nwave_lightning.layers import H1v1Layer, H1v1Synapse, H1v2Frontend, H1v2Layer, H1v2Synapse
from nwave_lightning.models import H1Classifier, SurrogateSNN
from nwave_lightning.surrogate import ATan


def test_structure_widths_taus_topologies_and_surrogates():
    net = H1Classifier(in_ch=5, num_classes=3, neurons_per_class=2, hidden=[7, 4], taus=[10e-3, 20e-3, 30e-3], topology=["RC", "FF", "FF"], surrogate="atan", surrogate_value=3.0)
    assert [s.weight.shape for s in net.synapses] == [(5, 7), (7, 4), (4, 6)]
    assert [float(l.taus[0]) for l in net.lifs] == pytest.approx([10e-3, 20e-3, 30e-3])
    assert net.lifs[0].recurrent_weights.shape == (7, 7) and net.lifs[1].recurrent_weights is None
    assert all(isinstance(l.spike_grad, ATan) and l.spike_grad.value == 3.0 for l in net.lifs)
    assert len({id(l.spike_grad) for l in net.lifs}) == 3  # one surrogate per layer: schedulers set each
    assert isinstance(net.frontend, H1v2Frontend) and net.layer_pairs == list(zip(net.synapses, net.lifs))


def test_forward_equals_the_blocks_composed_by_hand():
    torch.manual_seed(1)
    net = H1Classifier(in_ch=4, num_classes=2, neurons_per_class=3, hidden=[6], topology=["RC", "FF"])
    x = (torch.rand(3, 15, 4) < 0.3).float()
    spikes, membranes = net(x)
    h0, m0 = net.lifs[0](net.synapses[0](net.frontend(x)))
    h1, m1 = net.lifs[1](net.synapses[1](h0))
    for got, want in zip(spikes + membranes, [h0, h1, m0, m1]):
        assert torch.equal(got, want)
    assert spikes[-1].shape == (3, 15, 6)


def test_h1v1_chip_and_no_frontend():
    net = H1Classifier(in_ch=3, num_classes=2, hidden=[4], chip="H1v1", frontend=False)
    assert net.frontend is None
    assert isinstance(net.synapses[0], H1v1Synapse) and isinstance(net.lifs[0], H1v1Layer)
    x = torch.rand(2, 5, 3)
    assert torch.equal(net(x)[0][0], net.lifs[0](net.synapses[0](x))[0])


def test_xavier_init_respects_its_bound():
    torch.manual_seed(0)
    net = H1Classifier(in_ch=20, num_classes=2, neurons_per_class=5, hidden=[30], init="xavier_uniform", init_gain=0.5)
    bound = 0.5 * math.sqrt(6.0 / (20 + 30))
    assert float(net.synapses[0].weight.abs().max()) <= bound
    assert float(net.synapses[0].weight.abs().max()) > 0.9 * bound


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"chip": "H2"}, "chip='H2' is unknown"),
        ({"init": "orthogonal"}, "init='orthogonal' is unknown"),
        ({"taus": [0.01, 0.02]}, "taus=[0.01, 0.02] has 2 entries; give one per layer (3)"),
        ({"topology": ["FF"]}, "topology=['FF'] has 1 entries"),
        ({"surrogate": "relu"}, "surrogate='relu' is unknown"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        H1Classifier(in_ch=3, num_classes=2, hidden=[4, 4], **kwargs)
    assert fragment in str(info.value)


def test_seed_surrogate_snn_cfg():
    cfg = dict(in_ch=13, num_classes=2, neurons_per_class=32, dt=2e-3, hidden_1=64, tau_l1=10e-3, tau_l2=20e-3, tau_l3=40e-3, device="gpu")
    net = SurrogateSNN(cfg)
    assert [s.weight.shape for s in net.synapses] == [(13, 16), (16, 64), (64, 64)]
    assert [float(l.taus[0]) for l in net.lifs] == pytest.approx([10e-3, 20e-3, 40e-3])
    assert all(isinstance(l, H1v2Layer) for l in net.lifs) and all(isinstance(s, H1v2Synapse) for s in net.synapses)
    x = (torch.rand(2, 8, 13) < 0.3).float()
    assert torch.equal(net.forward_cpu(x)[0][-1], net(x)[0][-1])
    with pytest.raises(ValueError, match=r"missing \['tau_l3'\]"):
        SurrogateSNN({k: v for k, v in cfg.items() if k != "tau_l3"})
