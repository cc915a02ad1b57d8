"""Interrupt-and-resume equals an uninterrupted run, with every stateful callback on."""

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from nwave_lightning.callbacks import BestModelCheckpoint, SignAnnealing, SurrogateScheduler
from nwave_lightning.callbacks.examples import MovingAverageEarlyStopping

from ._tiny import TinyModule, loaders, make_trainer, scalars

SCORES = [0.4, 0.6, 0.5, 0.7]


def callbacks():
    return [
        SurrogateScheduler("cosine", start_value=5.0, end_value=20.0, total_steps=3),
        SignAnnealing(alpha_start=1.0, alpha_end=6.0, total_epochs=3),
        MovingAverageEarlyStopping(window=2, metric="val_score", mode="max", patience=10),
        BestModelCheckpoint(metric="val_score", mode="max"),
    ]


def fit(tmp_path, name, max_epochs, ckpt_path=None):
    pl.seed_everything(0)
    module, cbs = TinyModule(scores=SCORES), callbacks()
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / name / "ckpt"), save_last=True)
    trainer = make_trainer(tmp_path / name, max_epochs, cbs + [ckpt], enable_checkpointing=True, deterministic=True)
    trainer.fit(module, *loaders(), ckpt_path=ckpt_path)
    return module, cbs, trainer, ckpt


def test_resume_equals_uninterrupted(tmp_path):
    whole, whole_cbs, whole_trainer, _ = fit(tmp_path, "whole", 4)
    _, _, _, half_ckpt = fit(tmp_path, "half", 2)
    resumed, resumed_cbs, resumed_trainer, _ = fit(tmp_path, "resumed", 4, ckpt_path=half_ckpt.last_model_path)

    for key, value in whole.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key
    assert resumed.surrogate_seen == whole.surrogate_seen[2:]
    for a, b in zip(whole_cbs, resumed_cbs):
        state_a, state_b = a.state_dict(), b.state_dict()
        state_a.pop("best_model_path", None), state_b.pop("best_model_path", None)
        assert state_a == state_b, type(a).__name__
    whole_logs, resumed_logs = scalars(whole_trainer.log_dir), scalars(resumed_trainer.log_dir)
    keys = [k for k in whole_logs if k not in ("hp_metric", "epoch")]
    assert {"surrogate_value", "sign_alpha", "early_stop_bad_epochs", "best_selected_metric"} <= set(keys)
    for key in keys:
        assert resumed_logs[key] == whole_logs[key][2:], key
    best_whole = torch.load(whole_cbs[-1].best_model_path, weights_only=True)
    best_resumed = torch.load(resumed_cbs[-1].best_model_path, weights_only=True)
    assert best_whole["epoch"] == best_resumed["epoch"] == 4
    for key, value in best_whole["state_dict"].items():
        assert torch.equal(best_resumed["state_dict"][key], value), key


def test_callback_states_survive_weights_only_checkpoint_loading(tmp_path):
    _, _, _, ckpt = fit(tmp_path, "run", 2)
    checkpoint = torch.load(ckpt.last_model_path, weights_only=True)
    names = " ".join(checkpoint["callbacks"])
    for cls in (SurrogateScheduler, SignAnnealing, MovingAverageEarlyStopping, BestModelCheckpoint):
        assert cls.__name__ in names
