"""A tiny H1v2 network and a LightningModule of our own, independent of SNNModule."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from nwave_lightning.layers import H1v2Layer, H1v2Synapse, prepare_net
from nwave_lightning.surrogate import atan, fast_sigmoid

IN_CH, HIDDEN, OUT, STEPS = 4, 6, 3, 12


class TinyNet(nn.Module):
    """Synapse -> RC layer -> synapse -> FF readout; ``stepwise`` runs the time loop in Python."""

    def __init__(self, chip=None, stepwise: bool = False) -> None:
        super().__init__()
        self.stepwise = stepwise
        self.s1 = H1v2Synapse(IN_CH, HIDDEN, chip=chip)
        self.l1 = H1v2Layer(HIDDEN, 20e-3, 1e-3, layer_topology="RC", spike_grad=fast_sigmoid(10.0), chip=chip)
        self.s2 = H1v2Synapse(HIDDEN, OUT, chip=chip)
        self.l2 = H1v2Layer(OUT, 20e-3, 1e-3, spike_grad=atan(2.0), chip=chip)

    def forward(self, x):
        if not self.stepwise:
            spk1, mem1 = self.l1(self.s1(x))
            spk2, mem2 = self.l2(self.s2(spk1))
            return [spk1, spk2], [mem1, mem2]
        prepare_net(self)
        out = [[], [], [], []]
        for t in range(x.shape[1]):
            spk1, mem1 = self.l1(self.s1(x[:, t]))
            spk2, mem2 = self.l2(self.s2(spk1))
            for store, value in zip(out, (spk1, spk2, mem1, mem2)):
                store.append(value)
        spk1, spk2, mem1, mem2 = (torch.stack(v, dim=1) for v in out)
        return [spk1, spk2], [mem1, mem2]


class TinyModule(pl.LightningModule):
    """Rate regression on the readout. ``scores`` scripts a logged ``val_score`` per epoch."""

    def __init__(self, lr: float = 0.05, scores=None, chip=None, stepwise: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["chip"])
        self.net = TinyNet(chip=chip, stepwise=stepwise)
        self.scores = scores
        self.surrogate_seen: list[tuple[float, float]] = []

    def forward(self, x):
        return self.net(x)

    def _loss(self, batch):
        x, y = batch
        spikes, membranes = self.net(x)
        # The membrane term keeps gradients alive when the readout is silent.
        return nn.functional.mse_loss(spikes[-1].mean(dim=1), y) + 0.1 * membranes[-1].mean().pow(2)

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.surrogate_seen.append((self.net.l1.spike_grad.value, self.net.l2.spike_grad.value))
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True)

    def on_validation_epoch_end(self):
        if self.scores is not None and not self.trainer.sanity_checking:
            self.log("val_score", float(self.scores[self.current_epoch]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def loaders(n: int = 16, batch_size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, STEPS, IN_CH, generator=g) < 0.5).float()
    y = 0.5 * torch.rand(n, OUT, generator=g)
    data = torch.utils.data.TensorDataset(x, y)
    train = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    val = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    return train, val


def make_trainer(tmp_path, max_epochs: int, callbacks=(), logger=True, **kwargs) -> pl.Trainer:
    if logger is True:
        logger = TensorBoardLogger(str(tmp_path), name="tb")
    options = dict(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars read back with tbparse: tag -> [(step, value)]."""
    from tbparse import SummaryReader

    frame = SummaryReader(str(log_dir)).scalars
    out: dict[str, list[tuple[int, float]]] = {}
    for tag, step, value in zip(frame["tag"], frame["step"], frame["value"]):
        out.setdefault(tag, []).append((int(step), float(value)))
    return out
