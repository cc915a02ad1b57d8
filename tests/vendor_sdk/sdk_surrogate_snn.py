# The vendor SDK's SurrogateSNN, verbatim except for the renamed import
# (nwavesdk.layers -> nwave_lightning.layers). Do not edit: it is the contract.
import torch
import torch.nn as nn
from nwave_lightning.layers import H1v2Frontend, H1v2Synapse, H1v2Layer, prepare_net


class SurrogateSNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.in_ch = cfg["in_ch"]
        self.num_classes = cfg["num_classes"]
        self.neurons_per_class = cfg["neurons_per_class"]
        self.out_neurons = self.num_classes * self.neurons_per_class
        self.dt = cfg["dt"]
        self.device_flag = cfg.get("device", "gpu")
        n1 = 16

        # Fixed depth, tunable width
        n2 = cfg["hidden_1"]   # tune.choice([32, 64])
        n3 = self.out_neurons

        self.f0 = H1v2Frontend(self.in_ch, device=self.device_flag)

        self.s1 = H1v2Synapse(self.in_ch, n1, device=self.device_flag, init=nn.init.xavier_uniform_, lif_threshold=1.0)
        self.l1 = H1v2Layer(n1, taus=torch.full((n1,), cfg["tau_l1"]), dt=self.dt, device=self.device_flag, layer_topology="FF")

        self.s2 = H1v2Synapse(n1, n2, device=self.device_flag, init=nn.init.xavier_uniform_, lif_threshold=1.0)
        self.l2 = H1v2Layer(n2, taus=torch.full((n2,), cfg["tau_l2"]), dt=self.dt, device=self.device_flag, layer_topology="FF")

        self.s3 = H1v2Synapse(n2, n3, device=self.device_flag, init=nn.init.xavier_uniform_, lif_threshold=1.0)
        self.l3 = H1v2Layer(n3, taus=torch.full((n3,), cfg["tau_l3"]), dt=self.dt, device=self.device_flag, layer_topology="FF")

        if self.device_flag == "gpu":
            self.to_gpu()

    def to_gpu(self):
        for m in [self.f0, self.s1, self.l1, self.s2, self.l2, self.s3, self.l3]:
            if hasattr(m, "to_gpu"):
                m.to_gpu()

    def forward_cpu(self, x):
        # x: (B, T, F)
        prepare_net(self)

        spk1, spk2, spk3 = [], [], []
        mem1, mem2, mem3 = [], [], []

        for t in range(x.shape[1]):
            q0 = self.f0(x[:, t, :])

            q1 = self.s1(q0)
            s1, m1 = self.l1(q1)

            q2 = self.s2(s1)
            s2, m2 = self.l2(q2)

            q3 = self.s3(s2)
            s3, m3 = self.l3(q3)

            spk1.append(s1); mem1.append(m1)
            spk2.append(s2); mem2.append(m2)
            spk3.append(s3); mem3.append(m3)

        spikes_list = [
            torch.stack(spk1, dim=1),
            torch.stack(spk2, dim=1),
            torch.stack(spk3, dim=1),
        ]
        membranes_list = [
            torch.stack(mem1, dim=1),
            torch.stack(mem2, dim=1),
            torch.stack(mem3, dim=1),
        ]
        return spikes_list, membranes_list

    def forward(self, x):
        # x: (B, T, F)
        prepare_net(self)

        x = x.to("cuda", non_blocking=True).contiguous().to(torch.float32)

        q0 = self.f0(x)

        q1 = self.s1(q0)
        s1, m1 = self.l1(q1)

        q2 = self.s2(s1)
        s2, m2 = self.l2(q2)

        q3 = self.s3(s2)
        s3, m3 = self.l3(q3)

        return [s1, s2, s3], [m1, m2, m3]
