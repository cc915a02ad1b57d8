"""H1 building blocks: frontend, synapse, LIF layer (FF / RC) and ``prepare_net``.

Example:
    >>> import torch
    >>> from nwave_lightning.layers import H1v2Frontend, H1v2Synapse, H1v2Layer
    >>> frontend, synapse = H1v2Frontend(8), H1v2Synapse(8, 4)
    >>> layer = H1v2Layer(4, taus=20e-3, dt=1e-3)
    >>> spikes, membranes = layer(synapse(frontend((torch.rand(2, 30, 8) < 0.4).float())))
    >>> spikes.shape
    torch.Size([2, 30, 4])
"""

from .frontend import H1v1Frontend, H1v2Frontend
from .lif import TOPOLOGIES, H1v1Layer, H1v2Layer
from .prepare import prepare_net
from .synapse import H1v1Synapse, H1v2Synapse

#: Frontend, synapse and layer classes of each chip, by chip name.
CHIP_BLOCKS = {
    "H1v1": (H1v1Frontend, H1v1Synapse, H1v1Layer),
    "H1v2": (H1v2Frontend, H1v2Synapse, H1v2Layer),
}

__all__ = [
    "CHIP_BLOCKS",
    "H1v1Frontend",
    "H1v1Layer",
    "H1v1Synapse",
    "H1v2Frontend",
    "H1v2Layer",
    "H1v2Synapse",
    "TOPOLOGIES",
    "prepare_net",
]
