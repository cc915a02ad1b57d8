"""One NaN stops training with the stage, epoch, batch and tensor named; the files on disk stay finite."""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from nwave_lightning.callbacks import BestModelCheckpoint, NonFiniteError, NonFiniteGuard

from tests.training._tiny import make_module, tiny_tensors, trainer


class PoisonAfterFirstEpoch(Dataset):
    """Clean in epoch 1; from epoch 2 on, sample ``index`` carries one NaN (set by the callback below)."""

    def __init__(self, x, y, index):
        self.x, self.y, self.index, self.poisoned = x, y, index, False

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i].clone()
        if self.poisoned and i == self.index:
            x[3, 1] = float("nan")
        return x, self.y[i]


class Snapshot(Callback):
    """Weights at the end of every training epoch (what the checkpoints must still hold)."""

    def __init__(self, dataset=None):
        self.dataset, self.weights = dataset, []

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})
        if self.dataset is not None:
            self.dataset.poisoned = True


def _fit(tmp_path, module, train, callbacks):
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    best = BestModelCheckpoint(metric="train_loss", mode="min", dirpath=str(tmp_path / "best"))
    run = trainer(tmp_path, max_epochs=3, enable_checkpointing=True, callbacks=[*callbacks, ckpt, best], limit_val_batches=0)
    with pytest.raises(NonFiniteError) as info:
        run.fit(module, train)
    return str(info.value), ckpt, best


def _assert_files_hold(tmp_path, expected):
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    best = torch.load(tmp_path / "best" / "best_model.pt", weights_only=True)["state_dict"]
    for key, value in expected.items():
        assert torch.isfinite(value).all() if value.is_floating_point() else True
        assert torch.equal(last[f"net.{key}"], value), key
        assert torch.equal(best[key], value), key


def test_a_nan_in_the_data_stops_training_naming_the_batch_and_keeps_finite_checkpoints(tmp_path):
    x, y = tiny_tensors(16)
    data = PoisonAfterFirstEpoch(x, y, index=9)  # batch 2 of 4 (batch_size 4, no shuffle)
    snap = Snapshot(data)
    pl.seed_everything(0)
    message, _, _ = _fit(tmp_path, make_module(), DataLoader(data, batch_size=4), [snap])
    assert "input batch batch[0]" in message and "stage train, epoch 2, batch index 2" in message, message
    assert len(snap.weights) == 1
    _assert_files_hold(tmp_path, snap.weights[0])


class NanGradientLoss:
    """A finite loss whose gradient is NaN from epoch 2 on: d sqrt(u)/du at u = 0 is infinite, times 0."""

    def __init__(self, base):
        self.base, self.on = base, False

    def __call__(self, spk_out, y, spikes_list, membranes_list, model):
        out = self.base(spk_out=spk_out, y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model)
        if self.on:
            weight = next(model.parameters())
            return out.total + (weight.sum() * 0.0).sqrt()
        return out.total


class SwitchOn(Callback):
    def __init__(self, loss):
        self.loss = loss

    def on_train_epoch_end(self, trainer, pl_module):
        self.loss.on = True


def test_a_nan_gradient_names_the_parameter_and_the_step_never_runs(tmp_path):
    from tests.training._tiny import tiny_loss

    loss = NanGradientLoss(tiny_loss())
    snap = Snapshot()
    x, y = tiny_tensors(16)
    pl.seed_everything(0)
    module = make_module(loss=loss)
    message, _, _ = _fit(tmp_path, module, DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4), [snap, SwitchOn(loss)])
    first = next(name for name, _ in module.named_parameters())
    assert f"gradient of {first}" in message and "stage train, epoch 2, batch index 0" in message, message
    for key, value in module.net.named_parameters():  # the trained weights in memory are still those of epoch 1
        assert torch.equal(value.detach(), snap.weights[0][key]), key
    _assert_files_hold(tmp_path, snap.weights[0])


def test_a_non_finite_loss_is_named():
    guard = NonFiniteGuard()
    with pytest.raises(NonFiniteError, match=r"in the loss training loss .* at stage train, epoch 3, batch index 7"):
        guard.check_tensors({"training loss": torch.tensor(float("inf"))}, "loss", stage="train", epoch=2, batch_idx=7)


def test_the_guard_can_be_switched_off():
    guard = NonFiniteGuard(enabled=False)
    guard.check_tensors({"x": torch.tensor([float("nan")])}, "input batch", stage="train", epoch=0, batch_idx=0)
    with pytest.raises(ValueError, match="enabled='yes' must be True or False"):
        NonFiniteGuard(enabled="yes")


def test_best_model_checkpoint_refuses_non_finite_weights(tmp_path):
    best = BestModelCheckpoint(metric="val_acc", mode="max", dirpath=str(tmp_path))
    with pytest.raises(ValueError, match=r"refusing to write best_model.pt with non-finite weights \(w\)"):
        best.save({"state_dict": {"w": torch.tensor([1.0, float("nan")])}})
    assert not (tmp_path / "best_model.pt").exists()
