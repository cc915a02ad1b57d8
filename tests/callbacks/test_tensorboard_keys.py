"""The vendor SDK's conditional TensorBoard keys: present when their callback is configured, absent otherwise."""

import lightning.pytorch as pl
import pytest
import torch

from nwave_lightning.callbacks import callbacks_from_config

from ._tiny import TinyModule, loaders, make_trainer, scalars

SEED_CFG = dict(
    nwave={
        "surrogate": {"policy": "linear", "start_value": 10.0, "end_value": 20.0, "total_steps": 60},
        "sign_annealing": {"alpha_start": 1.0, "alpha_end": 10.0, "total_epochs": 60},
    },
    early_stop={"policy": "patience", "metric": "val_loss", "mode": "min", "patience": 8},
    best={"metric": "val_loss", "mode": "min"},
)
ALWAYS_WITH_CALLBACKS = [
    "surrogate_value",
    "sign_alpha",
    "early_stop_metric_value",
    "early_stop_bad_epochs",
    "early_stop_best_metric",
    "early_stop_triggered",
    "best_selected_metric",
]


def conditional(keys):
    return sorted(k for k in keys if k.startswith(("surrogate_", "sign_", "early_stop_")))


def test_keys_present_when_on_and_absent_when_off(tmp_path):
    on = make_trainer(tmp_path / "on", 2, callbacks_from_config(**SEED_CFG))
    on.fit(TinyModule(), *loaders())
    logged = scalars(on.log_dir)
    for key in ALWAYS_WITH_CALLBACKS:
        assert len(logged[key]) == 2, key  # once per epoch
    coherence = sorted(k for k in logged if k.startswith("sign_topology/"))
    assert coherence == [
        "sign_topology/l1/recurrent_weights_coherence_pct",
        "sign_topology/s1/weight_coherence_pct",
        "sign_topology/s2/weight_coherence_pct",
    ]
    assert "early_stop_target_value" not in logged  # threshold only

    off = make_trainer(tmp_path / "off", 2, callbacks_from_config(best={"metric": "val_loss"}))
    off.fit(TinyModule(), *loaders())
    logged_off = scalars(off.log_dir)
    assert conditional(logged_off) == [] and "best_selected_metric" in logged_off


def test_with_snn_module_and_seed_keys(tmp_path):
    SNNModule = pytest.importorskip("nwave_lightning.training").SNNModule
    models = pytest.importorskip("nwave_lightning.models")
    from nwave_lightning.metrics import PopulationAccuracy

    pl.seed_everything(0)
    net = models.H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[6])
    module = SNNModule(net, loss=models.PopulationLoss(num_classes=2, neurons_per_class=2),
                       metrics={"acc": PopulationAccuracy(num_classes=2)}, lr=1e-2)
    x, y = (torch.rand(16, 10, 4) < 0.4).float(), torch.randint(0, 2, (16,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    cfg = dict(SEED_CFG, early_stop={"policy": "threshold", "metric": "val_acc", "mode": "max", "value": 2.0},
               best={"metric": "val_acc", "mode": "max"}, activity={"every_n_epochs": 1})
    callbacks = callbacks_from_config(**cfg)
    trainer = make_trainer(tmp_path, 2, callbacks)
    trainer.fit(module, loader, loader)
    logged = scalars(trainer.log_dir)
    for key in ("surrogate_value", "sign_alpha", "early_stop_metric_value", "early_stop_target_value",
                "early_stop_triggered", "best_selected_metric", "epoch", "val_acc", "val_loss"):
        assert key in logged, key
    assert [step for step, _ in logged["best_selected_metric"]] == [1, 2]  # SNNModule steps by epoch
    assert any(k.startswith("sign_topology/") and k.endswith("_coherence_pct") for k in logged)
    best = callbacks[-2]
    payload = torch.load(best.best_model_path, weights_only=True)
    assert set(payload["state_dict"]) == set(module.net.state_dict())
    assert payload["best_selected_metric"] == pytest.approx(max(v for _, v in logged["val_acc"]))
