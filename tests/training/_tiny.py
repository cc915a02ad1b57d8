"""Tiny models, data and a short-run helper shared by the SNNModule tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.metrics import PopulationAccuracy
from nwave_lightning.models import H1Classifier, PopulationLoss
from nwave_lightning.training import SNNModule

IN_CH, CLASSES, PER_CLASS, STEPS = 3, 2, 2, 12


def tiny_net(hidden=(5,)) -> H1Classifier:
    return H1Classifier(in_ch=IN_CH, num_classes=CLASSES, neurons_per_class=PER_CLASS, hidden=list(hidden), taus=10e-3)


def tiny_loss() -> PopulationLoss:
    return PopulationLoss(num_classes=CLASSES, neurons_per_class=PER_CLASS, correct_rate=0.4, incorrect_rate=0.05)


def tiny_tensors(n: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, STEPS, IN_CH, generator=generator) < 0.5).float()
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    return x, y


def loader(n: int = 10, batch_size: int = 4, seed: int = 0, with_meta: bool = False) -> DataLoader:
    x, y = tiny_tensors(n, seed)
    tensors = (x, y, torch.arange(n)) if with_meta else (x, y)
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size)


def make_module(**kwargs) -> SNNModule:
    kwargs.setdefault("loss", tiny_loss())
    kwargs.setdefault("metrics", {"acc": PopulationAccuracy(num_classes=CLASSES)})
    kwargs.setdefault("lr", 1e-2)
    return SNNModule(kwargs.pop("net", None) or tiny_net(), **kwargs)


def trainer(tmp_path=None, max_epochs: int = 2, **kwargs) -> pl.Trainer:
    logger = TensorBoardLogger(str(tmp_path), name="run", default_hp_metric=False) if tmp_path is not None else False
    options = dict(
        max_epochs=max_epochs,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        log_every_n_steps=1,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def read_scalars(log_dir) -> dict[str, dict[int, float]]:
    """TensorBoard scalars as {tag: {step: value}}, read back with tbparse."""
    from tbparse import SummaryReader

    frame = SummaryReader(str(log_dir)).scalars
    out: dict[str, dict[int, float]] = {}
    for tag, step, value in zip(frame["tag"], frame["step"], frame["value"]):
        out.setdefault(tag, {})[int(step)] = float(value)
    return out


def fit_and_read(tmp_path, module, epochs=2, train=None, val=None, **kwargs):
    """Fit ``module`` on tiny data with a TensorBoard logger; returns (trainer, scalars)."""
    fitter = trainer(tmp_path, max_epochs=epochs, **kwargs)
    fitter.fit(module, train or loader(10, 4, seed=0), val or loader(6, 4, seed=1))
    return fitter, read_scalars(fitter.logger.log_dir)


def seeded_fluct_init(fluct_init, monkeypatch):
    """fluct_init from a fixed random state, in the test and in the module (which runs it at on_train_start)."""
    import nwave_lightning.init

    def seeded(*args, **kwargs):
        torch.manual_seed(11)
        return fluct_init(*args, **kwargs)

    monkeypatch.setattr(nwave_lightning.init, "fluct_init", seeded)
    return seeded
