"""Tutorial 7's recurrent H1v2 pattern generator.

One dense H1v2 synapse from ``n_inputs`` spike channels into one recurrent
(``RC``) H1v2 layer of ``n_neurons``; its spike rates are trained to follow a
target rate pattern (see :class:`nwave_lightning.data.PatternDataModule`).
Unlike the vendor SDK's class it returns lists, as the model contract asks.

Example:
    >>> import torch
    >>> net = PatternGenerator()
    >>> spikes, membranes = net((torch.rand(2, 100, 8) < 0.4).float())
    >>> len(spikes), tuple(spikes[0].shape)
    (1, (2, 100, 8))
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
        n_neurons: Output neurons.
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
    ) -> None:
        super().__init__()
        self.synapse = H1v2Synapse(nb_inputs=n_inputs, nb_outputs=n_neurons)
        self.lif = H1v2Layer(
            n_neurons=n_neurons,
            taus=taus,
            dt=dt,
            layer_topology=layer_topology,
            spike_grad=make_surrogate(surrogate, surrogate_value),
        )
        self.layer_pairs = [(self.synapse, self.lif)]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x (B, T, n_inputs)`` -> ``([spikes], [membranes])``."""
        prepare_net(self)
        spikes, membranes = self.lif(self.synapse(x))
        return [spikes], [membranes]
