"""Tiny builders and trainables shared by the HPO tests (fast on 2 CPU cores)."""

from __future__ import annotations

import os
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.metrics import accuracy_population

IN_CH, CLASSES, PER_CLASS, STEPS = 4, 2, 2, 6


class ToySNN(nn.Module):
    """Honours the contract: x (B, T, F) -> ([spikes (B, T, N)], [membranes (B, T, N)])."""

    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg.get("in_ch", IN_CH), CLASSES * PER_CLASS)
        self.gain = float(cfg.get("gain", 1.0))

    def forward(self, x):
        mem = self.gain * self.fc(x)
        return [torch.sigmoid(4 * mem)], [mem]


def build_toy_model(cfg):
    if cfg.get("run_marker"):
        # Counts trial executions: one file per build, named after the trial, holding the Ray node id.
        import ray

        try:
            trial_id = ray.tune.get_context().get_trial_id()
        except Exception:  # on a Ray Train worker there is no Tune session
            trial_id = None
        trial_id = trial_id or f"rank{ray.train.get_context().get_world_rank()}"
        handle, _ = tempfile.mkstemp(dir=cfg["run_marker"], prefix=f"{trial_id}__")
        os.write(handle, ray.get_runtime_context().get_node_id().encode())
        os.close(handle)
    if cfg.get("fail_marker"):
        # The failing-trial test: each attempt leaves a file behind, then the trial raises.
        handle, _ = tempfile.mkstemp(dir=cfg["fail_marker"], prefix="attempt_")
        os.close(handle)
        raise RuntimeError("toy model refuses to build (fail=True)")
    return ToySNN(cfg)


def toy_tensors(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    x = torch.randn(n, STEPS, IN_CH, generator=g) + (2 * y - 1).view(-1, 1, 1).float()
    return x, y


def build_toy_data(dataset_path, data_cfg):
    if dataset_path is not None and not os.path.isdir(dataset_path):  # relative paths: from the launch folder
        raise FileNotFoundError(f"dataset_path {dataset_path!r} not found from {os.getcwd()!r}")
    batch = int(data_cfg.get("batch_size", 8))
    train = DataLoader(TensorDataset(*toy_tensors(32, 0)), batch_size=batch, shuffle=True)
    val = DataLoader(TensorDataset(*toy_tensors(16, 1)), batch_size=batch)
    return train, val


def build_toy_loss(loss_cfg):
    target = float(loss_cfg.get("target", 1.0))

    def loss(spk_out, y, **kwargs):
        votes = spk_out.mean(dim=1).view(spk_out.shape[0], CLASSES, PER_CLASS).mean(dim=2)
        one_hot = torch.nn.functional.one_hot(y, CLASSES).float() * target
        return {"mse": ((votes - one_hot) ** 2).mean()}

    return loss


def build_toy_acc(metric_cfg):
    def metric(spk_out, y, **kwargs):
        return accuracy_population(spk_out, y, num_classes=metric_cfg.get("num_classes", CLASSES))

    return metric


def quick_train_fn(ctx):
    """A custom ``train_fn``: a plain PyTorch loop reporting through ``ctx.report`` every epoch."""
    loss_fn, acc_fn = ctx.losses["main"], ctx.metrics["acc"]
    best = None
    for epoch in range(1, int(ctx.cfg.trainer.get("epochs", 3)) + 1):
        time.sleep(float(ctx.cfg.model.get("hold", 0.0)))  # makes concurrent trials overlap
        ctx.model.train()
        for x, y in ctx.train_loader:
            ctx.optimizer.zero_grad()
            spikes, _ = ctx.model(x)
            loss = loss_fn(spk_out=spikes[-1], y=y)["mse"]
            loss.backward()
            ctx.optimizer.step()
        ctx.model.eval()
        with torch.no_grad():
            losses, accs = [], []
            for x, y in ctx.val_loader:
                spikes, _ = ctx.model(x)
                losses.append(float(loss_fn(spk_out=spikes[-1], y=y)["mse"]))
                accs.append(float(acc_fn(spikes[-1], y)))
        metrics = {"epoch": epoch, "val_loss": sum(losses) / len(losses), "val_acc": sum(accs) / len(accs)}
        if ctx.metric not in metrics:
            ctx.report(metrics)  # raises, listing the reported keys
        score = metrics[ctx.metric] if ctx.mode == "max" else -metrics[ctx.metric]
        with tempfile.TemporaryDirectory() as directory:
            if best is None or score > best:
                best = score
                torch.save(
                    {"epoch": epoch, "best_selected_metric": metrics[ctx.metric], "state_dict": ctx.model.state_dict()},
                    os.path.join(directory, "best_model.pt"),
                )
            ctx.report(metrics, checkpoint_dir=directory if os.listdir(directory) else None)
