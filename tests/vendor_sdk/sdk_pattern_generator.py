# The vendor SDK's tutorial 7 H2PatternGenerator, verbatim except for the renamed
# imports (nwavesdk.* -> nwave_lightning.*). The module-level globals it reads
# (device_flag, n_inputs, surrogate_slope) are set as in the tutorial; tests
# change device_flag to pick the step or the sequence path.
import torch
import torch.nn as nn
from nwave_lightning.layers import H1v2Synapse, H1v2Layer, prepare_net
from nwave_lightning.surrogate import fast_sigmoid

device_flag = "cpu"
n_inputs = 8
surrogate_slope = 25.0


class H2PatternGenerator(nn.Module):
    """Recurrent H1v2 network for temporal pattern generation."""

    def __init__(self, n_neurons, taus, dt=1e-3):
        super().__init__()
        self.device_flag = device_flag
        self.synapse = H1v2Synapse(
            nb_inputs=n_inputs,
            nb_outputs=n_neurons,
            device=self.device_flag,
        )
        self.lif = H1v2Layer(
            n_neurons=n_neurons,
            taus=taus,
            dt=dt,
            layer_topology="RC",
            spike_grad=fast_sigmoid(slope=surrogate_slope),
            device=self.device_flag,
        )
        self.layer_pairs = [(self.synapse, self.lif)]

    def forward(self, x):
        prepare_net(self, collect_metrics=False)
        cur = self.synapse(x)
        if self.device_flag == "gpu":
            spk, mem = self.lif.forward_gpu(cur)
            return spk, mem
        spikes = []
        membranes = []
        for t in range(x.shape[1]):
            spk_t, mem_t = self.lif(cur[:, t, :])
            spikes.append(spk_t)
            membranes.append(mem_t)
        return torch.stack(spikes, dim=1), torch.stack(membranes, dim=1)
