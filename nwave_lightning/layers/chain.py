"""The chain the chips run: frontend, then (synapse -> layer) stages, readout last."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

__all__ = ["forward_chain"]


def forward_chain(
    frontend: Optional[nn.Module], layer_pairs: Sequence[tuple[nn.Module, nn.Module]], x: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run ``x (B, T, F)`` through the optional frontend and each ``(synapse, layer)`` pair.

    Returns the model contract's ``(spikes_list, membranes_list)``, one entry per
    layer, readout last. Call :func:`~nwave_lightning.layers.prepare_net` on the
    model first (once per sequence).

    Example:
        >>> from nwave_lightning.layers import H1v2Layer, H1v2Synapse
        >>> pairs = [(H1v2Synapse(4, 3), H1v2Layer(3, taus=20e-3, dt=1e-3))]
        >>> spikes, membranes = forward_chain(None, pairs, torch.zeros(2, 5, 4))
        >>> [tuple(s.shape) for s in spikes]
        [(2, 5, 3)]
    """
    signal = frontend(x) if frontend is not None else x
    spikes_list, membranes_list = [], []
    for synapse, layer in layer_pairs:
        signal, membrane = layer(synapse(signal))
        spikes_list.append(signal)
        membranes_list.append(membrane)
    return spikes_list, membranes_list
