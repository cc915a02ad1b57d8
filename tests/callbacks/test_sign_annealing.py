import dataclasses
import warnings

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from nwave_lightning.callbacks import SignAnnealing, export_hard_signed, install_sign_parametrization, set_sign_alpha, sign_coherence_pct
from nwave_lightning.hardware import H1V2, weights_out_of_range
from nwave_lightning.layers.walk import dense_weights
from nwave_lightning.layers.sign import coherence_pct, hard_signed

from ._tiny import TinyModule, TinyNet, loaders, make_trainer, scalars

CHIP2 = dataclasses.replace(H1V2, sign_block=2)  # blocks of two rows make the sign constraint non-trivial


def test_alpha_schedules_by_hand():
    linear = SignAnnealing(alpha_start=1.0, alpha_end=10.0, total_epochs=3)
    assert [linear.alpha_at(e) for e in range(5)] == pytest.approx([1.0, 4.0, 7.0, 10.0, 10.0])
    geometric = SignAnnealing(alpha_start=1.0, alpha_end=100.0, total_epochs=2, schedule="geometric")
    assert [geometric.alpha_at(e) for e in range(4)] == pytest.approx([1.0, 10.0, 100.0, 100.0])
    with pytest.raises(ValueError, match=r"alpha_start=0.0 must be a finite number > 0"):
        SignAnnealing(alpha_start=0.0)
    with pytest.raises(ValueError, match=r"schedule='cubic' is unknown"):
        SignAnnealing(schedule="cubic")


def test_install_is_idempotent_and_covers_recurrent_weights():
    net = TinyNet()
    first = install_sign_parametrization(net)
    install_sign_parametrization(net)
    assert [(d.module_name, d.attr) for d in first] == [("s1", "weight"), ("l1", "recurrent_weights"), ("s2", "weight")]
    keys = set(net.state_dict())
    assert {"s1.parametrizations.weight.original", "s1.parametrizations.weight.0.sign_logits",
            "l1.parametrizations.recurrent_weights.0.sign_logits"} <= keys
    assert len(net.s1.parametrizations.weight) == 1


def test_coherence_rises_with_alpha_and_matches_plain_coherence_without_parametrization():
    net = TinyNet(chip=CHIP2)
    plain = coherence_pct(net.s1.weight, 2)
    assert sign_coherence_pct(net.s1, "weight") == pytest.approx(float(plain))
    install_sign_parametrization(net, alpha=0.5)
    seen = []
    for alpha in (0.5, 2.0, 8.0, 1e3):
        set_sign_alpha(net, alpha)
        seen.append(float(sign_coherence_pct(net.s1, "weight")))
        # the parametrised matrix itself is coherent by construction
        assert float(coherence_pct(net.s1.weight, 2)) == pytest.approx(100.0)
    assert seen == sorted(seen) and seen[0] < 90.0 and seen[-1] == pytest.approx(100.0, abs=1e-3)


def test_training_updates_magnitudes_and_sign_logits_and_logs_keys(tmp_path):
    pl.seed_everything(0)
    module = TinyModule()
    callback = SignAnnealing(alpha_start=1.0, alpha_end=5.0, total_epochs=2)
    trainer = make_trainer(tmp_path, 3, [callback])
    captured = {}

    class Snapshot(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            captured.update({k: v.detach().clone() for k, v in pl_module.net.named_parameters()})

    trainer.callbacks.append(Snapshot())
    trainer.fit(module, *loaders())
    after = dict(module.net.named_parameters())
    for key in ("s1.parametrizations.weight.original", "s1.parametrizations.weight.0.sign_logits",
                "l1.parametrizations.recurrent_weights.0.sign_logits", "s2.parametrizations.weight.0.sign_logits"):
        assert not torch.equal(captured[key], after[key].detach()), key
    assert module.net.s1.parametrizations.weight[0].alpha == 5.0
    logged = scalars(trainer.log_dir)
    assert [v for _, v in logged["sign_alpha"]] == [1.0, 3.0, 5.0]
    for layer, attr in (("s1", "weight"), ("l1", "recurrent_weights"), ("s2", "weight")):
        values = [v for _, v in logged[f"sign_topology/{layer}/{attr}_coherence_pct"]]
        assert len(values) == 3 and all(0.0 < v <= 100.0 for v in values)


def test_coherence_logged_increases_over_annealing(tmp_path):
    pl.seed_everything(0)
    module = TinyModule(lr=1e-4)  # small steps: the rise comes from alpha, not from the optimiser
    trainer = make_trainer(tmp_path, 3, [SignAnnealing(alpha_start=0.5, alpha_end=8.0, total_epochs=2)])
    trainer.fit(module, *loaders())
    values = [v for _, v in scalars(trainer.log_dir)["sign_topology/s1/weight_coherence_pct"]]
    assert values[0] < values[1] < values[2]


def test_export_is_hard_signed_in_range_and_loads_into_a_plain_net():
    torch.manual_seed(1)
    net = TinyNet(chip=CHIP2)
    install_sign_parametrization(net)
    with torch.no_grad():  # push a magnitude out of the chip's range: the export must clamp it
        net.s1.parametrizations.weight.original[0, 0] = 5.0
    exported = export_hard_signed(net)
    assert not any("parametrizations" in key for key in exported)
    for entry in dense_weights(net):
        w = exported[f"{entry.module_name}.{entry.attr}"]
        assert torch.equal(hard_signed(w, 2), w)  # every row block carries one sign
        assert weights_out_of_range(w, CHIP2) == 0
        # alpha -> inf limit: |V| clamped, with the sign of the block's logit
        param = getattr(entry.module, "parametrizations")[entry.attr]
        rows = torch.arange(w.shape[0]) // 2
        expected = param.original.abs().clamp(max=CHIP2.weight_limit) * torch.where(param[0].sign_logits < 0, -1.0, 1.0)[rows]
        torch.testing.assert_close(w, expected)
    plain = TinyNet(chip=CHIP2)
    plain.load_state_dict(exported)
    # with a huge alpha (and in-range magnitudes) the parametrised net computes what the export computes
    with torch.no_grad():
        net.s1.parametrizations.weight.original[0, 0] = 1.0
    set_sign_alpha(net, 1e6)
    plain.load_state_dict(export_hard_signed(net))
    x = (torch.rand(2, 10, 4) < 0.5).float()
    for a, b in zip(net(x)[1], plain(x)[1]):
        torch.testing.assert_close(a, b)


def test_unparametrized_export_zeroes_minority_weights():
    net = TinyNet(chip=CHIP2)
    exported = export_hard_signed(net)
    torch.testing.assert_close(exported["s1.weight"], hard_signed(net.s1.weight, 2).clamp(*CHIP2.weight_range))


def test_optimizer_built_before_setup_is_detected(tmp_path):
    class Early(TinyModule):
        def __init__(self):
            super().__init__()
            self.frozen_params = list(self.net.parameters())

        def configure_optimizers(self):
            return torch.optim.SGD(self.frozen_params, lr=0.1)

    with pytest.raises(RuntimeError, match="optimiser does not hold the sign-parametrisation parameters"):
        make_trainer(tmp_path, 1, [SignAnnealing()], logger=False).fit(Early(), *loaders())


def test_checkpoint_round_trip_restores_parametrization_and_alpha(tmp_path):
    pl.seed_everything(0)
    module = TinyModule()
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    trainer = make_trainer(tmp_path, 2, [SignAnnealing(1.0, 3.0, total_epochs=1), ckpt], logger=False, enable_checkpointing=True)
    trainer.fit(module, *loaders())
    fresh, callback = TinyModule(), SignAnnealing(1.0, 3.0, total_epochs=1)
    make_trainer(tmp_path, 2, [callback], logger=False).validate(fresh, loaders()[1], ckpt_path=ckpt.last_model_path, verbose=False)
    assert callback.alpha == 3.0 and fresh.net.s1.parametrizations.weight[0].alpha == 3.0
    for key, value in module.net.state_dict().items():
        torch.testing.assert_close(fresh.net.state_dict()[key], value)


def test_state_dict_and_from_config():
    callback = SignAnnealing.from_config({"alpha_start": 0.5, "alpha_end": 20.0, "total_epochs": 60})
    callback.epoch, callback.alpha = 4, 2.0
    other = SignAnnealing()
    other.load_state_dict(callback.state_dict())
    assert (other.epoch, other.alpha) == (4, 2.0)
    assert SignAnnealing.from_config({}) is None
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['alpha'\]"):
        SignAnnealing.from_config({"alpha": 1.0})


def test_a_resume_to_more_epochs_keeps_its_ramp_and_says_so():
    """The ramp scaled by max_epochs stays the first run's: resumed to more epochs, the run is not a straight one."""
    first = SignAnnealing(alpha_start=1.0, alpha_end=10.0, total_epochs=None, ramp_fraction=0.5)
    first.ramp_epochs = 3  # what setup made of max_epochs=6
    resumed = SignAnnealing(alpha_start=1.0, alpha_end=10.0, total_epochs=None, ramp_fraction=0.5)
    resumed.ramp_epochs = 6  # setup of the resumed run, max_epochs=12
    with pytest.warns(UserWarning, match=r"keeps the sign-annealing ramp of 3 epochs .* would make it 6"):
        resumed.load_state_dict(first.state_dict())
    assert resumed.ramp_epochs == 3 and resumed.alpha_at(3) == 10.0
    same = SignAnnealing(alpha_start=1.0, alpha_end=10.0, total_epochs=None, ramp_fraction=0.5)
    same.ramp_epochs = 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_state_dict(first.state_dict())  # the same length: nothing to say
