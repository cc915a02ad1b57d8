"""Tutorial 7's recurrent H1v2 pattern generator.

One dense H1v2 synapse from ``n_inputs`` spike channels into one recurrent
(``RC``) H1v2 layer of ``n_neurons`` output neurons plus ``n_hidden`` helper
neurons; the output neurons' spike rates are trained to follow a target rate
pattern (see :class:`nwave_lightning.data.PatternDataModule`). Unlike the
vendor SDK's class it returns lists, as the model contract asks.

Why helper neurons: on the chip every neuron is excitatory or inhibitory for
all its targets (one sign per row of the recurrent matrix). The float network
of the vendor SDK's tutorial (8 neurons, ``n_hidden=0``) learns a rotating
"bump": each neuron excites its neighbours and inhibits the opposite side of
the ring, a mixed-sign row the chip cannot store. With ``n_hidden`` extra
neurons in the same layer, the chip-legal network can split the two roles
between excitatory and inhibitory neurons (``docs/pattern-generation.md``).
The helpers' spikes stay inside the layer: ``forward`` returns the first
``n_neurons`` columns; exports (NIR, chip file) hold the whole layer.

Example:
    >>> import torch
    >>> net = PatternGenerator()
    >>> spikes, membranes = net((torch.rand(2, 100, 8) < 0.4).float())
    >>> len(spikes), tuple(spikes[0].shape)
    (1, (2, 100, 8))
    >>> chip_ready = PatternGenerator(n_hidden=8)   # 16 neurons in the layer, 8 outputs
    >>> chip_ready.lif.n_neurons, tuple(chip_ready((torch.rand(2, 100, 8) < 0.4).float())[0][0].shape)
    (16, (2, 100, 8))
"""

from __future__ import annotations

from typing import Union, Sequence

import torch
from torch import nn

from ..layers import H1v2Layer, H1v2Synapse, prepare_net
from .classifier import make_surrogate

__all__ = ["PatternGenerator"]


class PatternGenerator(nn.Module):
    """Recurrent H1v2 network for temporal pattern generation (tutorial 7).

    Args:
        n_inputs: Input spike channels (8: H1v2's low gain needs distributed charge).
        n_neurons: Output neurons (the pattern's channels).
        n_hidden: Extra recurrent neurons in the same layer whose spikes are
            not part of the output (0: the vendor SDK's network). They give a
            chip-legal network room for separate excitatory and inhibitory
            neurons.
        taus: Membrane time constant(s) in seconds.
        dt: Simulation step in seconds.
        layer_topology: ``"RC"`` (the tutorial) or ``"FF"``.
        surrogate: Surrogate name; the tutorial uses ``fast_sigmoid``.
        surrogate_value: Its slope (the tutorial's 25.0).
    """

    def __init__(
        self,
        n_inputs: int = 8,
        n_neurons: int = 8,
        taus: Union[float, Sequence[float]] = 25e-3,
        dt: float = 1e-3,
        layer_topology: str = "RC",
        surrogate: str = "fast_sigmoid",
        surrogate_value: float = 25.0,
        n_hidden: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(n_hidden, bool) or not isinstance(n_hidden, int) or n_hidden < 0:
            raise ValueError(f"PatternGenerator: n_hidden={n_hidden!r} must be an integer >= 0 (extra recurrent neurons; 0 for none).")
        self.n_outputs = n_neurons
        self.synapse = H1v2Synapse(nb_inputs=n_inputs, nb_outputs=n_neurons + n_hidden)
        self.lif = H1v2Layer(
            n_neurons=n_neurons + n_hidden,
            taus=taus,
            dt=dt,
            layer_topology=layer_topology,
            spike_grad=make_surrogate(surrogate, surrogate_value),
        )
        self.layer_pairs = [(self.synapse, self.lif)]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x (B, T, n_inputs)`` -> ``([spikes], [membranes])`` of the ``n_neurons`` output neurons."""
        prepare_net(self)
        spikes, membranes = self.lif(self.synapse(x))
        if spikes.shape[-1] != self.n_outputs:
            spikes, membranes = spikes[..., : self.n_outputs], membranes[..., : self.n_outputs]
        return [spikes], [membranes]
