"""Small H1 networks and independent measurements for the fluct_init tests."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from nwave_lightning.layers import H1v1Frontend, H1v1Layer, H1v1Synapse, H1v2Frontend, H1v2Layer, H1v2Synapse, prepare_net

CHIPS = {"H1v1": (H1v1Frontend, H1v1Synapse, H1v1Layer), "H1v2": (H1v2Frontend, H1v2Synapse, H1v2Layer)}


class StackNet(nn.Module):
    """The vendor SDK's ``SurrogateSNN`` layout, small: frontend, then (synapse -> LIF layer) per width.

    ``stepwise=True`` runs the vendor SDK's CPU time loop (one call per step) instead
    of the sequence path; the forward returns ``(spikes_list, membranes_list)``.
    """

    def __init__(self, chip="H1v2", in_ch=13, widths=(16, 24, 4), taus=(10e-3, 20e-3, 40e-3), dt=2e-3,
                 topologies=("FF", "FF", "FF"), stepwise=False):
        super().__init__()
        frontend, synapse, layer = CHIPS[chip]
        self.f0 = frontend(in_ch)
        sizes = (in_ch,) + tuple(widths)
        self.synapses = nn.ModuleList(synapse(sizes[i], sizes[i + 1]) for i in range(len(widths)))
        self.layers = nn.ModuleList(
            layer(widths[i], taus=taus[i], dt=dt, layer_topology=topologies[i]) for i in range(len(widths))
        )
        self.stepwise = stepwise

    def forward(self, x):
        prepare_net(self)
        if not self.stepwise:
            h, spikes, membranes = self.f0(x), [], []
            for synapse, layer in zip(self.synapses, self.layers):
                h, mem = layer(synapse(h))
                spikes.append(h)
                membranes.append(mem)
            return spikes, membranes
        steps = []
        for t in range(x.shape[1]):
            h, out = self.f0(x[:, t]), []
            for synapse, layer in zip(self.synapses, self.layers):
                h, mem = layer(synapse(h))
                out.append((h, mem))
            steps.append(out)
        spikes = [torch.stack([s[i][0] for s in steps], dim=1) for i in range(len(self.layers))]
        membranes = [torch.stack([s[i][1] for s in steps], dim=1) for i in range(len(self.layers))]
        return spikes, membranes


def spike_trains(n, steps, channels, p_low=0.2, p_high=0.4, seed=0):
    """Bernoulli spikes, channel ``j`` at a probability between ``p_low`` and ``p_high``."""
    generator = torch.Generator().manual_seed(seed)
    p = torch.linspace(p_low, p_high, channels)
    return (torch.rand(n, steps, channels, generator=generator) < p).float()


def xi_of(membrane, threshold, burn_in):
    """(theta - mean V) / std V on steps >= ``burn_in``; std from the variance over samples at fixed (step, neuron), averaged.

    The documented convention (docs/fluct_init.md), written out independently of the library.
    """
    v = membrane.detach().double()[:, burn_in:]
    assert v.shape[1] > 0, f"burn_in={burn_in} leaves none of the {membrane.shape[1]} steps"
    return float((threshold - v.mean()) / v.var(dim=0, unbiased=True).mean().sqrt())


def linear_response(layer, current):
    """The membrane ``layer``'s own dynamics give ``current`` when it never spikes (independent filter)."""
    probe = type(layer)(layer.n_neurons, taus=layer.taus.clone(), dt=layer.dt, threshold=1e12, chip=layer.chip)
    return probe(current)[1]


def ff_share(layer, ff_current, spikes, burn_in):
    """Measured share of membrane variance driven by feed-forward input on steps >= ``burn_in``.

    The linear responses are filtered from step 0, as the layer runs, and cut afterwards.
    """
    previous = torch.zeros_like(spikes)
    previous[:, 1:] = spikes[:, :-1]
    rc_current = previous @ layer.effective_recurrent().detach()
    var_ff = linear_response(layer, ff_current).double()[:, burn_in:].var(dim=0).mean()
    var_rc = linear_response(layer, rc_current).double()[:, burn_in:].var(dim=0).mean()
    return float(var_ff / (var_ff + var_rc))


# The vendor SDK's HPO configuration for SurrogateSNN, small.
SEED_CFG = {"in_ch": 13, "num_classes": 2, "neurons_per_class": 4, "dt": 2e-3, "hidden_1": 32,
            "tau_l1": 10e-3, "tau_l2": 20e-3, "tau_l3": 40e-3, "device": "cpu"}


@contextlib.contextmanager
def cuda_calls_stay_on_cpu():
    """The vendor SDK's forward hard-codes ``x.to("cuda")``; without CUDA, send that one call to the CPU."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and args[0] == "cuda":
            args = ("cpu",) + args[1:]
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original
