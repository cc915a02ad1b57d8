"""The acceptance check of fluct_init, measured independently: stationary xi within 15 % of xi_target.

The design contract (``docs/fluct_init.md``): on the initialised net, over the
init batches, ``(theta - mean V) / std V`` measured after a burn-in of a few
membrane time constants (the rise from the zero initial state is not part of
the theory), with the mean over samples, steps and neurons and the variance
across samples at a fixed (step, neuron), averaged, is within 15 % of
``xi_target``. Everything here is measured on the recorded membranes by the
tests' own helpers (``xi_of`` and ``ff_share`` in ``_models.py``), never by
``nwave_lightning.init.measure``, and the burn-ins are written out from the
set-ups' own time constants, not taken from the library.
"""

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.data import PatternDataModule
from nwave_lightning.init import fluct_init
from nwave_lightning.models import PatternGenerator

from ._models import StackNet, ff_share, spike_trains, xi_of

TOLERANCE = 0.15  # the acceptance check of the design contract


def test_tutorial_seven_is_at_the_stationary_xi_target():
    # Tutorial 7 exactly: 8 channels at p = 0.4, one RC H1v2 layer of 8 neurons,
    # tau = 25 ms, dt = 1 ms, fluct_init(xi_target=2.0, alpha=0.85, n_batches=4).
    torch.manual_seed(42)
    data = PatternDataModule(seed=42, n_val=64)
    net = PatternGenerator(n_inputs=8, n_neurons=8, taus=25e-3, dt=1e-3, layer_topology="RC")
    batches = [batch for _, batch in zip(range(4), data.train_dataloader())]  # the init batches, fixed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the tutorial's set-up must not warn
        fluct_init(net, batches, xi_target=2.0, alpha=0.85, n_batches=4)
    x = torch.cat([b[0] for b in batches])
    burn_in = 75  # 3 x 25 ms at 1 ms per step: the first 75 of 100 steps
    with torch.no_grad():
        spikes, membranes = net(x)
        share = ff_share(net.lif, net.synapse(x), spikes[0], burn_in)
    assert xi_of(membranes[0], net.lif.threshold, burn_in) == pytest.approx(2.0, rel=TOLERANCE)
    assert share == pytest.approx(0.85, rel=TOLERANCE)


# StackNet: 13 channels -> 16 -> 24 -> 4 neurons, taus 20 / 40 / 40 ms, dt = 1 ms,
# 200-step sequences. Burn-in: 3 x the slowest time constant of the whole stack
# (a layer's input rises with the layers before it), plus tau_syn = 5 ms on
# H1v1: 3 x 40 / 1 = 120 and 3 x 45 / 1 = 135 steps, leaving 80 and 65.
STACK_TAUS, STACK_DT, STACK_STEPS = (20e-3, 40e-3, 40e-3), 1e-3, 200
STACK_BURN_IN = {"H1v2": 120, "H1v1": 135}


@pytest.mark.parametrize(
    "chip,topologies",
    [("H1v1", ("FF", "FF", "FF")), ("H1v2", ("FF", "FF", "FF")), ("H1v2", ("FF", "RC", "FF")), ("H1v1", ("FF", "RC", "FF"))],
    ids=["H1v1-FF", "H1v2-FF", "H1v2-FF/RC", "H1v1-FF/RC"],
)
def test_three_layer_stacks_are_at_the_stationary_xi_target(chip, topologies):
    torch.manual_seed(0)
    net = StackNet(chip=chip, topologies=topologies, taus=STACK_TAUS, dt=STACK_DT)
    x = spike_trains(64, STACK_STEPS, 13, 0.2, 0.4, seed=1)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fluct_init(net, loader, xi_target=2.0, alpha=0.85, n_batches=4)
    assert not [str(w.message) for w in caught if "reached" in str(w.message)]  # every layer converged
    burn_in = STACK_BURN_IN[chip]
    with torch.no_grad():
        spikes, membranes = net(x)  # the same 64 samples the init used
    for number, (layer, membrane) in enumerate(zip(net.layers, membranes)):
        assert xi_of(membrane, layer.threshold, burn_in) == pytest.approx(2.0, rel=TOLERANCE), f"layer {number}"
    if "RC" in topologies:
        with torch.no_grad():
            share = ff_share(net.layers[1], net.synapses[1](spikes[0]), spikes[1], burn_in)
        assert share == pytest.approx(0.85, rel=TOLERANCE)
