"""The vendor SDK's end-to-end HPO template, imports renamed, sizes shrunk.

Everything below ``# --- vendor SDK code ---`` is the vendor SDK's own code (SurrogateSNN,
loss terms, ``build_main_loss``, metric builders, ``build_model``,
``build_datasets``); the only edits are the imports and, because the vendor SDK's
``forward`` moves ``x`` to CUDA, a CPU dispatch at its start (the vendor SDK keeps
``forward_cpu`` for exactly this case). ``write_sdk_dataset`` writes the pickled
DataLoaders that the vendor SDK's ``build_datasets`` loads with ``weights_only=False``.
"""

import os

import torch
import torch.nn as nn

from nwave_lightning.layers import H1v2Frontend, H1v2Layer, H1v2Synapse, prepare_net
from nwave_lightning.loss import (
    CompositeLoss,
    balanced_population_mse,
    firing_rate_target_mse_loss,
    topology_loss,
    weight_magnitude_loss,
)
from nwave_lightning.metrics import accuracy_population


def write_sdk_dataset(path, n_train=24, n_val=12, steps=12, in_ch=13, batch_size=6, seed=0):
    """Two classes of spike trains (class 1 fires the first channels more) as pickled DataLoaders."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % 2
        rate = torch.full((n, steps, in_ch), 0.1)
        rate[y == 1, :, : in_ch // 2] = 0.6
        rate[y == 0, :, in_ch // 2 :] = 0.6
        return torch.utils.data.TensorDataset((torch.rand(n, steps, in_ch, generator=g) < rate).float(), y)

    os.makedirs(path, exist_ok=True)
    torch.save(torch.utils.data.DataLoader(split(n_train), batch_size=batch_size, shuffle=True), os.path.join(path, "train.pt"))
    torch.save(torch.utils.data.DataLoader(split(n_val), batch_size=batch_size), os.path.join(path, "val.pt"))
    return path


# --- vendor SDK code ---
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
        if self.device_flag == "cpu":  # the one edit: the vendor SDK's forward below moves x to CUDA
            return self.forward_cpu(x)
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


def balanced_pop_term(spk_out, y, config, **kwargs):
    return {
        "mse": balanced_population_mse(
            spk_out,
            y,
            num_classes=config["num_classes"],
            neurons_per_class=config["neurons_per_class"],
            correct_rate=config["correct_rate"],
            incorrect_rate=config["incorrect_rate"],
        )
    }


def firing_rate_term(spikes_list, config, **kwargs):
    return {
        "firing_rate": firing_rate_target_mse_loss(
            spikes_list=spikes_list,
            offsets=config["offsets_fr"],
            multipliers=config["multipliers_fr"],
        )
    }

def hardware_reg_term(model, config, **kwargs):
    return {
        "weight_mag": weight_magnitude_loss(model, limit=config["limit"]),
        "topology": topology_loss(model, lam=config["lambda_topo"]),
    }

def build_main_loss(loss_cfg):
    return (
        CompositeLoss()
        .add_loss_term(
            "population",
            balanced_pop_term,
            config={
                "num_classes": loss_cfg["num_classes"],
                "neurons_per_class": loss_cfg["neurons_per_class"],
                "correct_rate": loss_cfg["correct_rate"],
                "incorrect_rate": loss_cfg["incorrect_rate"],
            },
            weight=loss_cfg.get("w_population", 1.0),
        )
        .add_loss_term(
            "activity",
            firing_rate_term,
            config={
                "offsets_fr": loss_cfg["offsets_fr"],
                "multipliers_fr": loss_cfg["multipliers_fr"],
            },
            weight=loss_cfg.get("w_activity", 1.0),
        )
        .add_loss_term(
            "hardware",
            hardware_reg_term,
            config={
                "limit": loss_cfg.get("weight_limit", 0.9),
                "lambda_topo": loss_cfg.get("lambda_topology", 1e-3),
            },
            weight=loss_cfg.get("w_hardware", 1.0),
        )
    )


def build_acc_metric(metric_cfg):
    def metric_fn(spk_out, y, **kwargs):
        return accuracy_population(
            spk_out,
            y,
            num_classes=metric_cfg.get("num_classes", 2),
        )
    return metric_fn

def build_recall_metric(metric_cfg):
    positive_class = metric_cfg.get("positive_class", 1)
    num_classes = metric_cfg.get("num_classes", 2)

    def metric_fn(spk_out, y, **kwargs):
        # replace with your own population-vote recall implementation
        preds = spk_out.sum(dim=1).view(spk_out.shape[0], num_classes, -1).sum(dim=2).argmax(dim=1)
        tp = ((preds == positive_class) & (y == positive_class)).float().sum().item()
        fn = ((preds != positive_class) & (y == positive_class)).float().sum().item()
        return tp / max(1.0, tp + fn)
    return metric_fn


def build_model(model_cfg):
    return SurrogateSNN(model_cfg)


def build_datasets(dataset_path, data_cfg):
    train_loader = torch.load(os.path.join(dataset_path, data_cfg["train_file"]), weights_only=False)
    val_loader = torch.load(os.path.join(dataset_path, data_cfg["val_file"]), weights_only=False)
    return train_loader, val_loader
