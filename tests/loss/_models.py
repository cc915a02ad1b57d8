"""A small version of the vendor SDK's ``SurrogateSNN`` (frontend + 3 synapse/layer pairs)."""

from __future__ import annotations

import torch
from torch import nn

from nwave_lightning.layers import H1v2Frontend, H1v2Layer, H1v2Synapse, prepare_net


class TinySurrogateSNN(nn.Module):
    """Seed layout with tiny widths; ``rc=True`` makes the hidden layer recurrent."""

    def __init__(self, in_ch=5, hidden=(6, 8), num_classes=2, neurons_per_class=3, dt=1e-3, rc=False):
        super().__init__()
        n1, n2 = hidden
        n3 = num_classes * neurons_per_class
        self.f0 = H1v2Frontend(in_ch)
        self.s1 = H1v2Synapse(in_ch, n1, init=nn.init.xavier_uniform_)
        self.l1 = H1v2Layer(n1, taus=torch.full((n1,), 10e-3), dt=dt, layer_topology="FF")
        self.s2 = H1v2Synapse(n1, n2, init=nn.init.xavier_uniform_)
        self.l2 = H1v2Layer(n2, taus=torch.full((n2,), 20e-3), dt=dt, layer_topology="RC" if rc else "FF")
        self.s3 = H1v2Synapse(n2, n3, init=nn.init.xavier_uniform_)
        self.l3 = H1v2Layer(n3, taus=torch.full((n3,), 30e-3), dt=dt, layer_topology="FF")

    def forward(self, x):
        prepare_net(self)
        s1, m1 = self.l1(self.s1(self.f0(x)))
        s2, m2 = self.l2(self.s2(s1))
        s3, m3 = self.l3(self.s3(s2))
        return [s1, s2, s3], [m1, m2, m3]
