import os

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from nwave_lightning.callbacks import BestModelCheckpoint

from ._tiny import TinyModule, loaders, make_trainer, scalars


class Snapshots(pl.Callback):
    """Net weights at the end of every epoch, to compare with the saved file."""

    def __init__(self):
        self.by_epoch = {}

    def on_train_epoch_end(self, trainer, pl_module):
        self.by_epoch[trainer.current_epoch + 1] = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}


def test_best_file_holds_the_best_epoch_and_loads_with_weights_only(tmp_path):
    pl.seed_everything(0)
    module = TinyModule(lr=0.02, scores=[0.3, 0.7, 0.6, 0.65])
    best, snaps = BestModelCheckpoint(metric="val_score", mode="max"), Snapshots()
    trainer = make_trainer(tmp_path, 4, [best, snaps])
    trainer.fit(module, *loaders())
    assert best.dirpath == trainer.log_dir  # default: the TensorBoard version directory
    assert best.best_model_path == os.path.join(trainer.log_dir, "best_model.pt")
    payload = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    assert payload["epoch"] == 2 and payload["best_selected_metric"] == pytest.approx(0.7)
    assert (payload["metric"], payload["mode"]) == ("val_score", "max")
    assert payload["hyper_parameters"] == {"lr": 0.02, "scores": [0.3, 0.7, 0.6, 0.65], "stepwise": False}
    assert set(payload["state_dict"]) == set(snaps.by_epoch[2])
    for key, value in snaps.by_epoch[2].items():
        assert torch.equal(payload["state_dict"][key], value), key
    assert not torch.equal(payload["state_dict"]["s1.weight"], snaps.by_epoch[4]["s1.weight"])
    # the file restores the network of the best epoch
    restored = TinyModule().net
    restored.load_state_dict(payload["state_dict"])
    # no temporary files are left behind by the atomic writes
    assert [name for name in os.listdir(trainer.log_dir) if ".tmp" in name] == []
    # best-so-far logged every epoch
    assert [v for _, v in scalars(trainer.log_dir)["best_selected_metric"]] == pytest.approx([0.3, 0.7, 0.7, 0.7])


def test_min_mode_dirpath_and_nan_never_improves(tmp_path):
    target = tmp_path / "best"
    best = BestModelCheckpoint(metric="val_score", mode="min", dirpath=str(target), filename="b.pt")
    trainer = make_trainer(tmp_path, 4, [best], logger=False)
    trainer.fit(TinyModule(scores=[0.5, float("nan"), 0.4, 0.45]), *loaders())
    assert (best.best_score, best.best_epoch, best.improved) == (pytest.approx(0.4), 3, False)
    assert torch.load(target / "b.pt", weights_only=True)["epoch"] == 3


def test_missing_metric_lists_available_keys(tmp_path):
    with pytest.raises(ValueError, match=r"metric='val_recall' was not logged; available keys: \[.*'val_loss'"):
        make_trainer(tmp_path, 1, [BestModelCheckpoint(metric="val_recall")], logger=False).fit(TinyModule(), *loaders())


def test_resume_keeps_the_best_and_carries_the_file_to_the_new_log_dir(tmp_path):
    scores = [0.3, 0.9, 0.5, 0.6]
    pl.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    first = BestModelCheckpoint(metric="val_score", mode="max")
    trainer = make_trainer(tmp_path, 2, [first, ckpt], enable_checkpointing=True)
    trainer.fit(TinyModule(scores=scores), *loaders())
    old_path = first.best_model_path
    second = BestModelCheckpoint(metric="val_score", mode="max")
    resumed = make_trainer(tmp_path, 4, [second, ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)], enable_checkpointing=True)
    resumed.fit(TinyModule(scores=scores), *loaders(), ckpt_path=ckpt.last_model_path)
    assert resumed.log_dir != trainer.log_dir
    assert (second.best_score, second.best_epoch) == (pytest.approx(0.9), 2)
    assert second.best_model_path == os.path.join(resumed.log_dir, "best_model.pt")
    with open(old_path, "rb") as a, open(second.best_model_path, "rb") as b:
        assert a.read() == b.read()
    assert [v for _, v in scalars(resumed.log_dir)["best_selected_metric"]] == pytest.approx([0.9, 0.9])


def test_validation_and_config():
    with pytest.raises(ValueError, match=r"mode='best' is unknown"):
        BestModelCheckpoint(mode="best")
    with pytest.raises(ValueError, match=r"filename='a/b.pt' must be a plain file name"):
        BestModelCheckpoint(filename="a/b.pt")
    assert BestModelCheckpoint.from_config(None) is None
    cb = BestModelCheckpoint.from_config({"metric": "val_recall", "mode": "max"})
    assert (cb.metric, cb.mode, cb.filename) == ("val_recall", "max", "best_model.pt")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['monitor'\]"):
        BestModelCheckpoint.from_config({"monitor": "val_loss"})
    cb.best_score, cb.best_epoch, cb.best_model_path = 0.8, 5, "/x/best_model.pt"
    other = BestModelCheckpoint(metric="val_recall", mode="max")
    other.load_state_dict(cb.state_dict())
    assert (other.best_score, other.best_epoch, other.best_model_path) == (0.8, 5, "/x/best_model.pt")
