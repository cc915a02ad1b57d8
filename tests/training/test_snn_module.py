"""SNNModule: the exact TensorBoard keys, their values, hyper-parameters, resume."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from nwave_lightning.metrics import PopulationAccuracy
from nwave_lightning.training import SNNModule

from ._tiny import seeded_fluct_init, CLASSES, PER_CLASS, fit_and_read, loader, make_module, read_scalars, tiny_loss, tiny_net, tiny_tensors, trainer

ACTIVITY = ("firing_rate", "dead_neurons", "dead_neurons_fraction", "membrane_mean", "membrane_var")
LOSS_COMPONENTS = ("population/mse", "population/total", "total")


def _mean_target(y, **unused):
    return y.float().mean()


def _first_layer_rate(spikes_list, **unused):
    return spikes_list[0].float().mean()


def expected_keys(n_layers: int, metrics=("acc", "mean_y")) -> set[str]:
    """The vendor SDK's HPO guide table ("Signals worth checking"), spelled out independently."""
    keys = {"epoch", "train_loss", "val_loss", "lr"}
    for stage in ("train", "val"):
        keys |= {f"{stage}/{c}" for c in LOSS_COMPONENTS}
        keys |= {f"{stage}/{m}" for m in metrics} | {f"{stage}_{m}" for m in metrics}
        keys |= {f"{stage}/layer_{i}/{s}" for i in range(n_layers) for s in ACTIVITY}
    return keys | chip_keys(n_layers, metrics)


def chip_keys(n_layers: int, metrics=()) -> set[str]:
    """What the hardware-aware defaults add: the chip-ready twins and the sign annealing's keys."""
    keys = {"val_chip_loss", "sign_alpha"} | {f"val_chip_{m}" for m in metrics}
    return keys | {f"sign_topology/synapses.{i}/weight_coherence_pct" for i in range(n_layers)}


def test_tensorboard_holds_exactly_the_sdk_keys_once_per_epoch(tmp_path):
    module = make_module(metrics={"acc": PopulationAccuracy(num_classes=CLASSES), "mean_y": _mean_target}, net=tiny_net((5, 4)))
    _, scalars = fit_and_read(tmp_path, module, epochs=3)
    assert set(scalars) == expected_keys(n_layers=3)
    for tag, values in scalars.items():
        assert sorted(values) == [1, 2, 3], tag  # one point per epoch, the epoch as step
    assert scalars["epoch"] == {1: 1.0, 2: 2.0, 3: 3.0}
    for stage in ("train", "val"):
        assert scalars[f"{stage}_loss"] == scalars[f"{stage}/total"]
        assert scalars[f"{stage}_acc"] == scalars[f"{stage}/acc"]
    assert scalars["lr"] == pytest.approx({1: 1e-2, 2: 1e-2, 3: 1e-2})


def test_validation_values_match_an_independent_pass_over_the_whole_split(tmp_path):
    # 7 samples in batches of 3, 3, 1: a plain mean over batches would be wrong. Two plain-callable
    # metrics: each must be averaged over the samples once (not over samples x metrics).
    val_x, val_y = tiny_tensors(7, seed=5)
    val = DataLoader(TensorDataset(val_x, val_y), batch_size=3)
    metrics = {"acc": PopulationAccuracy(num_classes=CLASSES), "mean_y": _mean_target, "rate_0": _first_layer_rate}
    module = make_module(metrics=metrics)
    _, scalars = fit_and_read(tmp_path, module, epochs=2, val=val)
    module.eval()
    with torch.no_grad():
        spikes, membranes = module.net(val_x)
    last = 2
    assert scalars["val_mean_y"][last] == pytest.approx(val_y.float().mean().item(), abs=1e-6)
    assert scalars["val_rate_0"][last] == pytest.approx(spikes[0].mean().item(), rel=1e-5, abs=1e-7)
    votes = spikes[-1].sum(dim=1).reshape(7, CLASSES, PER_CLASS).sum(dim=2)
    assert scalars["val_acc"][last] == pytest.approx((votes.argmax(dim=1) == val_y).float().mean().item(), abs=1e-6)
    # the population MSE is a per-sample mean, so the batch-size-weighted epoch mean equals the full-split value
    full = tiny_loss()(spk_out=spikes[-1], y=val_y, spikes_list=spikes).total.item()
    assert scalars["val_loss"][last] == pytest.approx(full, rel=1e-5)
    for i, (spk, mem) in enumerate(zip(spikes, membranes)):
        assert scalars[f"val/layer_{i}/firing_rate"][last] == pytest.approx(spk.mean().item(), rel=1e-5)
        dead = int((spk.sum(dim=(0, 1)) == 0).sum())
        assert scalars[f"val/layer_{i}/dead_neurons"][last] == dead
        assert scalars[f"val/layer_{i}/dead_neurons_fraction"][last] == pytest.approx(dead / spk.shape[-1])
        assert scalars[f"val/layer_{i}/membrane_mean"][last] == pytest.approx(mem.mean().item(), rel=1e-4, abs=1e-6)
        assert scalars[f"val/layer_{i}/membrane_var"][last] == pytest.approx(mem.var(unbiased=False).item(), rel=1e-4, abs=1e-6)


def test_without_metrics_and_activity_only_loss_keys_remain(tmp_path):
    _, scalars = fit_and_read(tmp_path, make_module(metrics=None, activity=False), epochs=1)
    plain = {"epoch", "lr", "train_loss", "val_loss"} | {f"{s}/{c}" for s in ("train", "val") for c in LOSS_COMPONENTS}
    assert set(scalars) == plain | chip_keys(n_layers=2)


def test_meta_batches_train_and_test_keys(tmp_path):
    module = make_module()
    fitter, _ = fit_and_read(tmp_path, module, epochs=1, train=loader(8, 4, with_meta=True), val=loader(4, 4, with_meta=True))
    result = fitter.test(module, loader(4, 2, with_meta=True), verbose=False)[0]
    assert {"test_loss", "test/total", "test_acc", "test/acc", "test/layer_0/firing_rate"} <= set(result)
    predictions = fitter.predict(module, DataLoader(tiny_tensors(4)[0], batch_size=2))
    assert predictions[0]["spk_out"].shape == (2, 12, CLASSES * PER_CLASS) and predictions[0]["y"] is None


def test_loss_is_required_and_metrics_are_checked():
    with pytest.raises(ValueError, match="a loss is required and none is assumed"):
        SNNModule(tiny_net())
    with pytest.raises(ValueError, match="metric name 'a.b'"):
        make_module(metrics={"a.b": _mean_target})
    with pytest.raises(ValueError, match=r"metrics\['acc'\] is a int"):
        make_module(metrics={"acc": 3})
    with pytest.raises(ValueError, match="net must be a torch.nn.Module"):
        SNNModule("net", loss=tiny_loss())


def test_metric_and_loss_receive_only_the_arguments_they_name(tmp_path):
    seen = {}

    def metric(spk_out, model):
        seen["metric"] = (spk_out.requires_grad, isinstance(model, torch.nn.Module))
        return 0.0

    def loss(spk_out, y, spikes_list, membranes_list, model):
        seen["loss"] = len(spikes_list) == len(membranes_list) == 2
        return ((spk_out.mean() - 0.2) ** 2) + 0 * y.sum()

    fit_and_read(tmp_path, make_module(loss=loss, metrics={"m": metric}, net=tiny_net((5,))), epochs=1)
    assert seen == {"metric": (False, True), "loss": True}


def test_hyperparameters_survive_a_weights_only_checkpoint(tmp_path):
    module = make_module(lr=0.005, optimizer={"name": "adamax"}, lr_scheduler={"name": "step", "step_size": 3, "gamma": 0.5})
    assert module.hparams["lr"] == 0.005 and module.hparams["optimizer"] == {"name": "adamax"}
    assert "net" not in module.hparams and "loss" not in module.hparams  # objects: passed again when loading
    fitter = trainer(tmp_path, max_epochs=1)
    fitter.fit(module, loader(8, 4), loader(4, 4))
    path = tmp_path / "module.ckpt"
    fitter.save_checkpoint(path)
    payload = torch.load(path, weights_only=True)
    assert payload["hyper_parameters"]["lr_scheduler"] == {"name": "step", "step_size": 3, "gamma": 0.5}
    restored = SNNModule.load_from_checkpoint(path, net=tiny_net(), loss=tiny_loss(), weights_only=True)
    assert restored.lr == 0.005
    for key, value in module.net.state_dict().items():
        assert torch.equal(restored.net.state_dict()[key], value)


def test_clamp_weights_projects_onto_the_chip_range(tmp_path):
    net = tiny_net()
    with torch.no_grad():
        net.synapses[0].weight.fill_(3.0)
    module = make_module(net=net, clamp_weights=True, lr=0.5, sign_annealing=False)
    trainer(None, max_epochs=1).fit(module, loader(8, 4))
    low, high = net.synapses[0].chip.weight_range
    for synapse in net.synapses:
        assert float(synapse.weight.min()) >= low and float(synapse.weight.max()) <= high
    assert float(net.synapses[0].weight.max()) == pytest.approx(high)


def _seeded_fit(tmp_path, name, max_epochs, ckpt_path=None):
    pl.seed_everything(123, workers=True)
    # A fixed sign-annealing ramp: the default one scales with max_epochs, which differs between the runs.
    module = make_module(lr=2e-2, sign_annealing={"total_epochs": 3})
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fitter = trainer(tmp_path / name, max_epochs=max_epochs, enable_checkpointing=True, callbacks=[checkpoint])
    # A plain shuffling loader, as users write them: the resumed run must deal the batches the straight one did.
    train = DataLoader(loader(12, 4, seed=0).dataset, batch_size=4, shuffle=True)
    fitter.fit(module, train, loader(6, 3, seed=1), ckpt_path=ckpt_path)
    return read_scalars(fitter.logger.log_dir), module


def test_resuming_from_last_gives_the_uninterrupted_run(tmp_path):
    straight, straight_module = _seeded_fit(tmp_path / "a", "straight", 4)
    _seeded_fit(tmp_path / "b", "first", 2)
    resumed, resumed_module = _seeded_fit(tmp_path / "b", "second", 4, ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    for key in ("val_loss", "train_loss", "val_acc", "lr", "val/layer_0/firing_rate"):
        assert resumed[key][4] == pytest.approx(straight[key][4], rel=1e-6, abs=1e-9), key
    for key, value in straight_module.net.state_dict().items():
        assert torch.allclose(resumed_module.net.state_dict()[key], value, atol=1e-7), key


def test_fluct_init_runs_once_from_the_training_loader(monkeypatch):
    from nwave_lightning.init import fluct_init

    kwargs = {"xi_target": 2.0, "alpha": 1.0, "n_batches": 2}
    torch.manual_seed(3)
    reference = tiny_net((6,))
    seeded_fluct_init(fluct_init, monkeypatch)(reference, loader(8, 4), **kwargs)
    torch.manual_seed(3)
    # lr=0 and no clamp: the one training batch (fluct_init runs at on_train_start) changes no weight.
    module = make_module(net=tiny_net((6,)), fluct_init=kwargs, sign_annealing=False, lr=0.0, clamp_weights=False)
    fitter = trainer(None, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    fitter.fit(module, loader(8, 4))
    for key, value in reference.state_dict().items():
        assert torch.equal(module.net.state_dict()[key], value), key
    assert module._fluct_done and module.hparams["fluct_init"] == kwargs
    with pytest.raises(ValueError, match="fluct_init=3"):
        make_module(fluct_init=3)
