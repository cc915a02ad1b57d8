"""SNNModule's chip-ready twin: val_chip_* is what the chip-legal network scores."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from nwave_lightning.callbacks import SignAnnealing, SignPruning
from nwave_lightning.metrics import PopulationAccuracy
from nwave_lightning.training import SNNModule

from ._tiny import seeded_fluct_init, CLASSES, IN_CH, PER_CLASS, fit_and_read, loader, make_module, tiny_loss, tiny_net, tiny_tensors, trainer


def _hand_made_chip_weights(net) -> dict[str, torch.Tensor]:
    """What the chip stores, computed here without the library: the sign of each row's
    logit (the sign annealing's alpha -> inf limit) times the stored magnitude, clamped."""
    weights = {}
    low, high = net.lifs[0].chip.weight_range
    for i, synapse in enumerate(net.synapses):
        plist = synapse.parametrizations["weight"]
        logits = plist[0].sign_logits.detach()  # (rows, 1) with sign_block = 1
        signs = torch.where(logits < 0, -1.0, 1.0)
        weights[f"synapses.{i}.weight"] = (plist.original.detach().abs() * signs).clamp(low, high)
    return weights


def _population_accuracy(spk_out: torch.Tensor, y: torch.Tensor) -> float:
    votes = spk_out.sum(dim=1).reshape(len(y), CLASSES, PER_CLASS).sum(dim=2)
    return (votes.argmax(dim=1) == y).float().mean().item()


def test_defaults_log_val_chip_acc_equal_to_the_chip_legal_network(tmp_path):
    module = make_module(net=tiny_net((6,)))  # every default: sign annealing, clamping, chip evaluation
    val_x, val_y = tiny_tensors(9, seed=3)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(val_x, val_y), batch_size=4)
    _, scalars = fit_and_read(tmp_path, module, epochs=3, val=val)
    assert {"val_chip_acc", "val_chip_loss", "sign_alpha"} <= set(scalars)
    assert sorted(scalars["val_chip_acc"]) == [1, 2, 3]

    # An independent chip network: the same architecture without any parametrisation,
    # loaded with hand-computed chip weights.
    plain = tiny_net((6,))
    plain.load_state_dict(_hand_made_chip_weights(module.net), strict=False)
    plain.eval()
    with torch.no_grad():
        spikes, _ = plain(val_x)
    expected = _population_accuracy(spikes[-1], val_y)
    assert scalars["val_chip_acc"][3] == pytest.approx(expected, abs=1e-6)
    full = tiny_loss()(spk_out=spikes[-1], y=val_y, spikes_list=spikes).total.item()
    assert scalars["val_chip_loss"][3] == pytest.approx(full, rel=1e-5)


def test_without_sign_training_the_twin_runs_the_hard_signed_weights(tmp_path):
    # Unconstrained signs: the float network keeps mixed-sign rows, and the chip twin is that
    # network with each row's minority-sign weights zeroed (the sign of the row sum wins).
    module = make_module(net=tiny_net((6,)), sign_annealing=False, lr=0.05)
    val_x, val_y = tiny_tensors(9, seed=3)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(val_x, val_y), batch_size=4)
    _, scalars = fit_and_read(tmp_path, module, epochs=2, val=val)
    assert "sign_alpha" not in scalars
    hard = tiny_net((6,))
    low, high = module.net.lifs[0].chip.weight_range
    mixed_rows = 0
    with torch.no_grad():
        for mine, float_synapse in zip(hard.synapses, module.net.synapses):
            w = float_synapse.weight.detach()
            row_sign = torch.where(w.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
            mixed_rows += int(((w * row_sign) < 0).any(dim=1).sum())
            mine.weight.copy_(torch.where(w * row_sign > 0, w, torch.zeros_like(w)).clamp(low, high))
        spikes, _ = hard.eval()(val_x)
    assert mixed_rows > 0  # the twin really runs other weights than the float network
    full = tiny_loss()(spk_out=spikes[-1], y=val_y, spikes_list=spikes).total.item()
    assert scalars["val_chip_loss"][2] == pytest.approx(full, rel=1e-5)
    assert scalars["val_chip_acc"][2] == pytest.approx(_population_accuracy(spikes[-1], val_y), abs=1e-6)


def test_test_stage_logs_test_chip_keys():
    module = make_module()
    fitter = trainer(max_epochs=1)
    fitter.fit(module, loader(8, 4), loader(4, 4, seed=1))
    result = fitter.test(module, loader(6, 3, seed=2), verbose=False)[0]
    assert {"test_chip_loss", "test_chip_acc", "test_acc"} <= set(result)


def test_chip_eval_false_logs_no_chip_keys(tmp_path):
    _, scalars = fit_and_read(tmp_path, make_module(chip_eval=False), epochs=1)
    assert not [key for key in scalars if "chip" in key]


def test_a_trainer_sign_annealing_replaces_the_default(tmp_path):
    mine = SignAnnealing(alpha_start=2.0, alpha_end=4.0, total_epochs=2)
    _, scalars = fit_and_read(tmp_path, make_module(), epochs=2, callbacks=[mine])
    assert scalars["sign_alpha"] == pytest.approx({1: 2.0, 2: 3.0})


def test_default_ramp_scales_with_max_epochs(tmp_path):
    _, scalars = fit_and_read(tmp_path, make_module(), epochs=5)
    # 60 % of 5 epochs = 3: alpha 1 -> 10 over three epochs, then held.
    assert scalars["sign_alpha"] == pytest.approx({1: 1.0, 2: 4.0, 3: 7.0, 4: 10.0, 5: 10.0})


def test_bad_sign_annealing_argument_names_the_fix():
    with pytest.raises(ValueError, match="sign_annealing='yes'"):
        make_module(sign_annealing="yes")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['alpha_edn'\]"):
        make_module(sign_annealing={"alpha_edn": 20.0})


class _FloatOnly(nn.Module):
    """A contract model without H1 layers: it has no chip twin."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(IN_CH, CLASSES * PER_CLASS)

    def forward(self, x):
        out = torch.sigmoid(self.fc(x))
        return [out], [out]


def test_a_network_without_h1_layers_warns_once_and_logs_no_chip_keys(tmp_path):
    module = SNNModule(_FloatOnly(), loss=tiny_loss(), metrics={"acc": PopulationAccuracy(num_classes=CLASSES)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, scalars = fit_and_read(tmp_path, module, epochs=2)
    messages = [str(w.message) for w in caught if "chip_eval" in str(w.message)]
    assert len(messages) == 1 and "holds no H1 layer" in messages[0]
    assert not [key for key in scalars if "chip" in key]


def test_end_of_fit_warns_when_the_chip_twin_trails():
    # A tolerance of zero makes any difference a gap; unconstrained signs make one.
    module = make_module(net=tiny_net((6,)), sign_annealing=False, chip_gap_tolerance=0.0, metrics={"loss_like": _first_rate})
    with pytest.warns(UserWarning, match=r"val_chip_loss_like=.* vs val_loss_like=.*chip_gap_tolerance=0.0"):
        trainer(max_epochs=1).fit(module, loader(8, 4), loader(6, 3, seed=1))


def _first_rate(membranes_list, **unused):
    # The mean readout membrane: it moves with any change of the weights.
    return membranes_list[-1].float().mean()


def test_fluct_init_under_the_default_sign_annealing_starts_from_its_weights(monkeypatch):
    # SignAnnealing parametrises the signs (in its setup) before SNNModule runs fluct_init; the result
    # must equal fluct_init on the plain network followed by the parametrisation: magnitudes
    # |W| and each row's logit its sum over the mean absolute row sum.
    from nwave_lightning.init import fluct_init

    kwargs = {"xi_target": 2.0, "alpha": 1.0, "n_batches": 2}
    torch.manual_seed(3)
    reference = tiny_net((6,))
    seeded_fluct_init(fluct_init, monkeypatch)(reference, loader(8, 4), **kwargs)
    torch.manual_seed(3)
    # lr=0 and no clamp: the one training batch (fluct_init runs at on_train_start) changes no weight.
    module = make_module(net=tiny_net((6,)), fluct_init=kwargs, lr=0.0, clamp_weights=False)
    trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(module, loader(8, 4))
    for mine, theirs in zip(module.net.synapses, reference.synapses):
        plist, w = mine.parametrizations["weight"], theirs.weight.detach()
        assert torch.equal(plist.original.detach(), w.abs())
        sums = w.sum(dim=1, keepdim=True)
        torch.testing.assert_close(plist[0].sign_logits.detach(), sums / sums.abs().mean())


def test_a_default_module_validates_without_max_epochs_and_names_the_fix_for_max_steps():
    module = make_module()
    result = trainer(max_epochs=None).validate(module, loader(6, 3, seed=1), verbose=False)[0]
    assert {"val_chip_acc", "val_chip_loss"} <= set(result)
    with pytest.raises(ValueError, match=r"max_epochs=-1.*sign_annealing=\{'total_epochs': N\}.*sign_annealing=False"):
        trainer(max_epochs=None, max_steps=2).fit(make_module(), loader(8, 4))


def test_load_from_checkpoint_then_validate_keeps_the_trained_sharpness(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    module = make_module(sign_annealing={"alpha_start": 1.0, "alpha_end": 9.0, "total_epochs": 1})
    fitter = trainer(max_epochs=2, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    fitter.fit(module, loader(8, 4), loader(6, 3, seed=1))
    trained = trainer(max_epochs=1).validate(module, loader(6, 3, seed=1), verbose=False)[0]
    restored = SNNModule.load_from_checkpoint(tmp_path / "last.ckpt", net=tiny_net(), loss=tiny_loss(), metrics={"acc": PopulationAccuracy(num_classes=CLASSES)})
    again = trainer(max_epochs=1).validate(restored, loader(6, 3, seed=1), verbose=False)[0]
    alphas = {m.alpha for m in restored.net.modules() if hasattr(m, "alpha_state")}
    assert alphas == {9.0}
    assert again["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-6)


def test_a_plain_checkpoint_loads_into_a_default_module_with_its_exact_weights(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    plain = make_module(sign_annealing=False)
    fitter = trainer(max_epochs=1, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    fitter.fit(plain, loader(8, 4), loader(6, 3, seed=1))
    default = make_module()  # sign annealing on: its setup parametrises the fresh network
    result = trainer(max_epochs=1).validate(default, loader(6, 3, seed=1), ckpt_path=tmp_path / "last.ckpt", verbose=False)[0]
    for mine, saved in zip(default.net.synapses, plain.net.synapses):
        assert torch.equal(mine.weight, saved.weight)
    assert result["val_loss"] == pytest.approx(trainer(max_epochs=1).validate(plain, loader(6, 3, seed=1), verbose=False)[0]["val_loss"])


def test_the_chip_copy_never_enters_the_modules_state():
    import lightning.pytorch as pl

    seen = []

    class Look(pl.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):  # while the chip copy lives
            seen.append(sorted(k for k in pl_module.state_dict() if "chip" in k))

    trainer(max_epochs=1, callbacks=[Look()]).fit(make_module(), loader(8, 4), loader(6, 3, seed=1))
    assert seen == [[]]


def test_a_trainer_sign_pruning_replaces_the_default_annealing(tmp_path):
    from nwave_lightning.callbacks import SignPruning

    module = make_module(net=tiny_net((6,)), lr=0.05)
    _, scalars = fit_and_read(tmp_path, module, epochs=2, callbacks=[SignPruning(start_fraction=0.0, end_fraction=0.5)])
    assert "sign_alpha" not in scalars and "sign_pruning/shrink" in scalars
    assert not [name for name, _ in module.net.named_parameters() if "sign_logits" in name]
    for synapse in module.net.synapses:  # projected for the second epoch: one sign per row
        w = synapse.weight.detach()
        assert (((w >= 0).all(dim=1)) | ((w <= 0).all(dim=1))).all()


class _EndOfFit:
    """What the end-of-fit check reads from its trainer: the last logged values and the callbacks."""

    def __init__(self, callback_metrics: dict[str, float], callbacks=()) -> None:
        self.callback_metrics = {key: torch.tensor(value) for key, value in callback_metrics.items()}
        self.callbacks = list(callbacks)


def _chip_gap_warnings(module, callback_metrics, callbacks=()) -> list[str]:
    module.trainer = _EndOfFit(callback_metrics, callbacks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.on_fit_end()
    return [str(w.message) for w in caught if "chip_gap_tolerance" in str(w.message)]


class _Error(PopulationAccuracy):
    higher_is_better = False  # a loss-like torchmetrics metric: lower is better


def test_a_chip_twin_that_scores_better_does_not_warn():
    # The user's case: accuracy (higher is better) 0.5333 on the chip-ready copy vs 0.4 float.
    module = make_module(net=tiny_net((6,)))
    assert _chip_gap_warnings(module, {"val_acc": 0.4, "val_chip_acc": 0.5333}, [SignAnnealing()]) == []
    # Lower is better: a chip-ready error below the float one is no gap either ...
    module = make_module(net=tiny_net((6,)), metrics={"err": _Error(num_classes=CLASSES)})
    assert _chip_gap_warnings(module, {"val_err": 0.4, "val_chip_err": 0.1}, [SignAnnealing()]) == []
    # ... and one above it by more than the tolerance is.
    (message,) = _chip_gap_warnings(module, {"val_err": 0.1, "val_chip_err": 0.4}, [SignAnnealing()])
    assert "val_chip_err=0.4 vs val_err=0.1" in message and "scores worse than" in message
    assert "rely on what the chip cannot store" in message


def test_a_metric_without_direction_is_called_different_not_worse():
    """A plain function (the vendor SDK's metric style) has no higher_is_better: a gap either way is named as such."""
    module = make_module(net=tiny_net((6,)), metrics={"score": lambda spk_out, y: spk_out.float().mean()})
    (message,) = _chip_gap_warnings(module, {"val_score": 0.4, "val_chip_score": 0.53}, [SignAnnealing()])
    assert "scores far from" in message and "either may be better" in message
    assert "rely on what the chip cannot store" not in message


def test_a_trailing_twin_within_the_tolerance_does_not_warn():
    module = make_module(net=tiny_net((6,)), chip_gap_tolerance=0.1)
    assert _chip_gap_warnings(module, {"val_acc": 0.8, "val_chip_acc": 0.75}, [SignAnnealing()]) == []
    assert len(_chip_gap_warnings(module, {"val_acc": 0.8, "val_chip_acc": 0.6}, [SignAnnealing()])) == 1


def test_the_chip_gap_advice_names_only_what_is_off():
    gap = {"val_acc": 0.9, "val_chip_acc": 0.5}
    # Every default on: no advice to turn on what is on; the annealing's own knobs instead.
    (message,) = _chip_gap_warnings(make_module(net=tiny_net((6,))), gap, [SignAnnealing()])
    assert "val_chip_acc=0.5 vs val_acc=0.9" in message
    assert "sign_annealing=True" not in message and "clamp_weights=True" not in message
    assert "alpha_end" in message and "SignPruning" in message
    # Signs unconstrained (no SignAnnealing / SignPruning on the trainer), clamping on.
    (message,) = _chip_gap_warnings(make_module(net=tiny_net((6,)), sign_annealing=False), gap, [])
    assert "sign_annealing=True" in message and "clamp_weights=True" not in message
    # Clamping off, signs trained by SignPruning.
    (message,) = _chip_gap_warnings(make_module(net=tiny_net((6,)), clamp_weights=False), gap, [SignPruning()])
    assert "clamp_weights=True" in message and "sign_annealing=True" not in message
    # Both on with SignPruning: its schedule is the advice.
    (message,) = _chip_gap_warnings(make_module(net=tiny_net((6,))), gap, [SignPruning()])
    assert "end_fraction" in message and "sign_annealing=True" not in message
