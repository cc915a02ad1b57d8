"""An HPOWrapper trial without Ray: built objects, reports, best checkpoint, TensorBoard keys."""

import os
import shutil

import pytest
import torch
from tbparse import SummaryReader

from nwave_lightning.hpo.results import MetricNotReportedError, TuneEpochReport
from nwave_lightning.layers.sign import install_sign_parametrization
from nwave_lightning.hpo.trial import Builders, NamedLoss, TrialRun, build_trial_context, train_one_trial
from nwave_lightning.training.contract import ContractError

from . import sdk_template as sdk
from ._toys import build_toy_acc, build_toy_data, build_toy_loss, build_toy_model


class FakeTune:
    """Stands in for ``ray.tune.report``: keeps each report and a copy of its checkpoint."""

    def __init__(self, root):
        self.root, self.reports, self.checkpoints = root, [], []

    def __call__(self, metrics, checkpoint=None):
        self.reports.append(dict(metrics))
        if checkpoint is not None:
            self.checkpoints.append(checkpoint.to_directory(os.path.join(self.root, f"ckpt_{len(self.reports)}")))
        else:
            self.checkpoints.append(None)


SDK_CONFIG = {
    "model.in_ch": 13, "model.num_classes": 2, "model.neurons_per_class": 4, "model.hidden_1": 8,
    "model.dt": 2e-3, "model.tau_l1": 10e-3, "model.tau_l2": 20e-3, "model.tau_l3": 40e-3, "model.device": "cpu",
    "optim.name": "adamax", "optim.lr": 5e-3,
    "loss.main.num_classes": 2, "loss.main.neurons_per_class": 4, "loss.main.correct_rate": 0.35,
    "loss.main.incorrect_rate": 0.05, "loss.main.offsets_fr": [0.05, 0.08, 0.10], "loss.main.multipliers_fr": [1, 2, 3],
    "loss.main.w_hardware": 1e-3,
    "metric.acc.num_classes": 2, "metric.recall.num_classes": 2, "metric.recall.positive_class": 1,
    "sched.cfg": {"name": "step", "step_size": 1, "gamma": 0.5},
    "early_stop.policy": "patience", "early_stop.metric": "val_loss", "early_stop.mode": "min", "early_stop.patience": 5,
    "nwave.surrogate.policy": "linear", "nwave.surrogate.start_value": 10.0, "nwave.surrogate.end_value": 20.0,
    "nwave.surrogate.total_steps": 3,
    "nwave.sign_annealing.alpha_start": 1.0, "nwave.sign_annealing.alpha_end": 10.0, "nwave.sign_annealing.total_epochs": 3,
    "trainer.epochs": 3, "trainer.device": "cpu", "trainer.seed": 0,
    "data.train_file": "train.pt", "data.val_file": "val.pt",
}


def sdk_spec(metric="val_recall", mode="max", **kwargs):
    return Builders(
        model_builder=sdk.build_model, dataset_builder=sdk.build_datasets, train_fn=train_one_trial,
        loss_builders={"main": sdk.build_main_loss},
        metric_builders={"acc": sdk.build_acc_metric, "recall": sdk.build_recall_metric},
        metric=metric, mode=mode, **kwargs,
    )


@pytest.fixture(scope="module")
def sdk_trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("trial")
    data = sdk.write_sdk_dataset(str(root / "data"), n_train=12, n_val=6, steps=8)
    fake = FakeTune(str(root))
    ctx = build_trial_context(SDK_CONFIG, sdk_spec(dataset_path=data), run=TrialRun(str(root / "trial"), report_fn=fake))
    train_one_trial(ctx)
    return ctx, fake


def test_context_holds_the_built_pieces(sdk_trial):
    ctx, _ = sdk_trial
    assert isinstance(ctx.model, sdk.SurrogateSNN) and tuple(ctx.model.s2.weight.shape) == (16, 8)
    assert set(ctx.losses) == {"main"} and set(ctx.metrics) == {"acc", "recall"}
    assert type(ctx.optimizer).__name__ == "Adamax" and ctx.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    assert type(ctx.scheduler).__name__ == "StepLR"
    assert [type(cb).__name__ for cb in ctx.callbacks] == [
        "SurrogateScheduler", "SignAnnealing", "NWaveEarlyStopping", "BestModelCheckpoint"]


def test_every_epoch_reports_the_sdk_keys(sdk_trial):
    _, fake = sdk_trial
    assert [r["epoch"] for r in fake.reports] == [1.0, 2.0, 3.0]
    for report in fake.reports:
        for key in ("train_loss", "val_loss", "lr", "best_selected_metric", "val_recall", "val_acc", "train_acc",
                    "val/recall", "train/main/population/mse", "train/main/total", "train/total", "val/main/total",
                    "train/layer_2/firing_rate", "val/layer_0/dead_neurons_fraction", "surrogate_value", "sign_alpha",
                    "early_stop_bad_epochs",
                    # the chip-ready twins (SNNModule's default chip_eval: the same loss and metrics on to_chip(net))
                    "val_chip_loss", "val_chip_acc", "val_chip_recall"):
            assert key in report, key
        assert report["train_loss"] == pytest.approx(report["train/total"])
    # lr halves every epoch (StepLR step_size=1); the surrogate goes 10 -> 20 linearly
    assert [r["lr"] for r in fake.reports] == pytest.approx([5e-3, 2.5e-3, 1.25e-3])
    best_so_far = [max(r["val_recall"] for r in fake.reports[: i + 1]) for i in range(3)]
    assert [r["best_selected_metric"] for r in fake.reports] == pytest.approx(best_so_far)


def test_checkpoints_hold_the_best_model(sdk_trial):
    ctx, fake = sdk_trial
    last = fake.checkpoints[-1]
    assert sorted(os.listdir(last)) == ["best_model.pt", "trial_state.ckpt"]
    payload = torch.load(os.path.join(last, "best_model.pt"), map_location="cpu", weights_only=True)
    recalls = [r["val_recall"] for r in fake.reports]
    best_epoch = recalls.index(max(recalls)) + 1
    assert payload["epoch"] == best_epoch and payload["best_selected_metric"] == pytest.approx(max(recalls))
    # the BestModelCheckpoint of ctx.callbacks is the one that trained (a custom train_fn may read it)
    tracker = next(cb for cb in ctx.callbacks if type(cb).__name__ == "BestModelCheckpoint")
    assert tracker.best_epoch == best_epoch and tracker.best_model_path.startswith(ctx.best_dir)
    # the weights restore into the trained model (sign annealing added its parametrisations to it)
    assert payload["state_dict"].keys() == ctx.model.state_dict().keys()
    ctx.model.load_state_dict(payload["state_dict"])
    # and into a fresh one built from the trial's config, once it carries the same parametrisation
    assert any(key.endswith(".sign_logits") for key in payload["state_dict"])
    fresh = sdk.build_model(dict(ctx.cfg.model))
    with pytest.raises(RuntimeError, match="sign_logits"):
        fresh.load_state_dict(payload["state_dict"])
    install_sign_parametrization(fresh)
    fresh.load_state_dict(payload["state_dict"])
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, payload["state_dict"][key]), key
    state = torch.load(os.path.join(last, "trial_state.ckpt"), map_location="cpu", weights_only=False)
    assert state["epoch"] == 2 and "optimizer_states" in state  # Lightning's 0-based epoch of the last report


def test_tensorboard_events_in_trial_folder(sdk_trial):
    ctx, _ = sdk_trial
    scalars = SummaryReader(ctx.log_dir).scalars
    tags = set(scalars["tag"])
    assert {"val_recall", "train/main/population/mse", "best_selected_metric", "sign_alpha"} <= tags
    assert sorted(scalars[scalars["tag"] == "val_loss"]["step"]) == [1, 2, 3]  # the epoch is the step


def _trial_state(checkpoint_dir):
    return torch.load(os.path.join(checkpoint_dir, "trial_state.ckpt"), map_location="cpu", weights_only=False)


def _best_payload(checkpoint_dir):
    return torch.load(os.path.join(checkpoint_dir, "best_model.pt"), map_location="cpu", weights_only=True)


def _assert_same_tensors(mine, theirs, what):
    assert sorted(mine) == sorted(theirs) and len(mine) > 0, what
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), f"{what}: {key} differs"


def _assert_same_report(mine, theirs, epoch):
    assert sorted(mine) == sorted(theirs), epoch
    differ = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k] and not (mine[k] != mine[k] and theirs[k] != theirs[k])}
    assert not differ, f"epoch {epoch}: {differ}"


@pytest.mark.parametrize("old_best_file", ["kept", "gone"])
def test_a_resumed_trial_equals_the_uninterrupted_one(sdk_trial, tmp_path, old_best_file):
    """Stopped after epoch 1 and resumed from its reported checkpoint, a trial reports the same values
    every epoch and ends with the same weights, optimizer state and best_model.pt as the trial that ran
    through -- also when the first run's best_model.pt is gone (its temp folder cleaned, another machine)."""
    from ray.tune import Checkpoint

    ctx0, _ = sdk_trial
    data = os.path.join(os.path.dirname(ctx0.trial_dir), "data")
    # val_acc stays at chance on this silent network: the best epoch is epoch 1, before the interruption,
    # so after the resume best_model.pt can only come from the checkpoint.
    spec = sdk_spec(metric="val_acc", mode="max", dataset_path=data)
    whole = FakeTune(str(tmp_path / "whole"))
    first = build_trial_context(SDK_CONFIG, spec, run=TrialRun(str(tmp_path / "whole"), report_fn=whole))
    train_one_trial(first)
    assert _best_payload(whole.checkpoints[-1])["epoch"] == 1
    saved = tmp_path / "saved"
    shutil.copytree(whole.checkpoints[0], saved)  # as if the trial stopped after epoch 1
    if old_best_file == "gone":
        shutil.rmtree(first.best_dir)
    resumed = FakeTune(str(tmp_path / "resumed"))
    ctx = build_trial_context(
        SDK_CONFIG, spec, run=TrialRun(str(tmp_path / "resumed"), Checkpoint.from_directory(str(saved)), resumed),
    )
    train_one_trial(ctx)

    assert [r["epoch"] for r in resumed.reports] == [2.0, 3.0]
    for mine, theirs in zip(resumed.reports, whole.reports[1:]):
        _assert_same_report(mine, theirs, mine["epoch"])
    for mine, theirs in zip(resumed.checkpoints, whole.checkpoints[1:]):
        state, reference = _trial_state(mine), _trial_state(theirs)
        _assert_same_tensors(state["state_dict"], reference["state_dict"], "weights")
        for group, (a, b) in enumerate(zip(state["optimizer_states"][0]["state"].values(),
                                           reference["optimizer_states"][0]["state"].values())):
            _assert_same_tensors(a, b, f"optimizer state {group}")
        best, best_reference = _best_payload(mine), _best_payload(theirs)
        assert (best["epoch"], best["best_selected_metric"]) == (best_reference["epoch"], best_reference["best_selected_metric"])
        _assert_same_tensors(best["state_dict"], best_reference["state_dict"], "best_model.pt")


def test_contract_checked_before_training(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x, x

    spec = Builders(
        model_builder=lambda cfg: Broken(), dataset_builder=build_toy_data, train_fn=train_one_trial,
        loss_builders={"main": build_toy_loss}, metric_builders={}, metric="val_loss", mode="min",
    )
    with pytest.raises(ContractError, match="rule 2"):
        build_trial_context({}, spec, run=TrialRun(str(tmp_path)))


def test_default_train_fn_needs_main_loss(tmp_path):
    spec = Builders(
        model_builder=build_toy_model, dataset_builder=build_toy_data, train_fn=train_one_trial,
        loss_builders={"aux": build_toy_loss}, metric_builders={}, metric="val_loss", mode="min",
    )
    ctx = build_trial_context({}, spec, run=TrialRun(str(tmp_path)))
    with pytest.raises(ValueError, match=r"loss_builders\['main'\].*\['aux'\]"):
        train_one_trial(ctx)


def test_metric_not_reported_lists_keys(tmp_path):
    spec = Builders(
        model_builder=build_toy_model, dataset_builder=build_toy_data, train_fn=train_one_trial,
        loss_builders={"main": build_toy_loss}, metric_builders={"acc": build_toy_acc}, metric="val_recall", mode="max",
    )
    ctx = build_trial_context({"trainer.epochs": 1}, spec, run=TrialRun(str(tmp_path), report_fn=FakeTune(str(tmp_path))))
    # whichever callback reads it first (the best-model tracker here) names the logged keys
    with pytest.raises(ValueError, match=r"'val_recall'.*not (logged|reported).*'val_acc'"):
        train_one_trial(ctx)


def test_trial_selects_on_the_chip_ready_metric(sdk_trial, tmp_path):
    """metric="val_chip_acc": reported every epoch, and best_model.pt is the best chip-ready epoch."""
    ctx0, _ = sdk_trial
    fake = FakeTune(str(tmp_path))
    ctx = build_trial_context(
        {**SDK_CONFIG, "trainer.epochs": 2},
        sdk_spec(metric="val_chip_acc", mode="max", dataset_path=os.path.join(os.path.dirname(ctx0.trial_dir), "data")),
        run=TrialRun(str(tmp_path / "trial"), report_fn=fake),
    )
    train_one_trial(ctx)
    chip = [r["val_chip_acc"] for r in fake.reports]
    assert len(chip) == 2 and all("val_acc" in r for r in fake.reports)
    assert [r["best_selected_metric"] for r in fake.reports] == pytest.approx([chip[0], max(chip)])
    payload = torch.load(os.path.join(fake.checkpoints[-1], "best_model.pt"), map_location="cpu", weights_only=True)
    assert payload["metric"] == "val_chip_acc" and payload["epoch"] == chip.index(max(chip)) + 1


def test_chip_metric_of_a_net_without_h1_layers_names_the_cause(tmp_path):
    spec = Builders(
        model_builder=build_toy_model, dataset_builder=build_toy_data, train_fn=train_one_trial,
        loss_builders={"main": build_toy_loss}, metric_builders={"acc": build_toy_acc}, metric="val_chip_acc", mode="max",
    )
    ctx = build_trial_context({"trainer.epochs": 1}, spec, run=TrialRun(str(tmp_path), report_fn=FakeTune(str(tmp_path))))
    with pytest.warns(UserWarning, match="ToySNN holds no H1 layer"):
        with pytest.raises(ValueError, match=r"'val_chip_acc'.*not (logged|reported).*'val_acc'.*chip_eval=False"):
            train_one_trial(ctx)
    from nwave_lightning.hpo.results import check_metric_reported

    with pytest.raises(MetricNotReportedError, match=r"'val_chip_acc' not reported.*nwave_lightning\.layers unless chip_eval=False"):
        check_metric_reported("val_chip_acc", {"val_acc": 1.0, "val_loss": 0.5})


def test_reporter_check_lists_keys():
    from nwave_lightning.hpo.results import check_metric_reported

    with pytest.raises(MetricNotReportedError, match=r"'val_recal' not reported.*\['val_loss', 'val_recall'\]"):
        check_metric_reported("val_recal", {"val_recall": 1.0, "val_loss": 0.5, "training_iteration": 3})


def test_named_loss_prefixes_components():
    loss = NamedLoss("main", build_toy_loss({}))
    spikes = torch.rand(4, 3, 4)
    out = loss(spk_out=spikes, y=torch.tensor([0, 1, 0, 1]), model=None)
    assert sorted(out.components) == ["main/mse", "main/total", "total"]
    assert float(out.components["main/total"]) == pytest.approx(float(out.total))


def test_best_only_checkpointing(tmp_path):
    """checkpoint_every_epoch=False attaches a checkpoint only when best_model.pt changed."""
    import lightning.pytorch as pl

    from nwave_lightning.callbacks import BestModelCheckpoint
    from nwave_lightning.training import SNNModule

    fake = FakeTune(str(tmp_path))
    best = BestModelCheckpoint(metric="val_loss", mode="min", dirpath=str(tmp_path / "best"))
    reporter = TuneEpochReport("val_loss", str(tmp_path / "best" / "best_model.pt"), checkpoint_every_epoch=False,
                               save_trainer_state=False, report_fn=fake)
    train, val = build_toy_data(None, {})
    module = SNNModule(build_toy_model({}), loss=build_toy_loss({}), lr=0.05)
    trainer = pl.Trainer(max_epochs=4, callbacks=[best, reporter], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train, val)
    losses = [r["val_loss"] for r in fake.reports]
    improved = [i == 0 or losses[i] < min(losses[:i]) for i in range(len(losses))]
    assert [c is not None for c in fake.checkpoints] == improved


def _kws_model(cfg):
    from nwave_lightning.models import H1Classifier

    import lightning.pytorch as pl

    pl.seed_everything(cfg["seed"], verbose=False)  # as `nwave tune` does: seed_everything, then the config's classes
    return H1Classifier(in_ch=13, num_classes=2, neurons_per_class=4, hidden=[cfg["hidden"]], dt=0.001, chip="H1v2")


def _kws_data(path, cfg):
    from nwave_lightning.data import KeywordSpottingDataModule

    return KeywordSpottingDataModule(n_train=32, n_val=16, n_test=16, n_steps=30, word_length=10, batch_size=8, seed=0)


def _final_weights(fake):
    state = torch.load(os.path.join(fake.checkpoints[-1], "trial_state.ckpt"), map_location="cpu", weights_only=False)
    return {key: value for key, value in state["state_dict"].items() if key.startswith("net.")}


def test_a_wrapper_trial_and_a_config_trial_with_the_same_settings_train_the_same_weights(tmp_path):
    """HPOWrapper's builders and `nwave tune`'s fit config reach the same SNNModule, data, Trainer and seed."""
    from nwave_lightning.hpo.trial import ConfigTrial
    from nwave_lightning.metrics import PopulationAccuracy
    from nwave_lightning.models import PopulationLoss

    wrapper = Builders(
        model_builder=_kws_model, dataset_builder=_kws_data, train_fn=train_one_trial,
        loss_builders={"main": lambda cfg: PopulationLoss(num_classes=2, neurons_per_class=4)},
        metric_builders={"acc": lambda cfg: PopulationAccuracy(num_classes=2)}, metric="val_acc", mode="max",
    )
    wrapper_fake = FakeTune(str(tmp_path / "wrapper"))
    wrapper({"model.hidden": 8, "model.seed": 0, "optim.name": "adam", "optim.lr": 0.02,
             "trainer.epochs": 2, "trainer.device": "cpu"},
            TrialRun(str(tmp_path / "wrapper"), report_fn=wrapper_fake))

    base = {
        "seed_everything": 0,
        "model": {"class_path": "nwave_lightning.training.SNNModule", "init_args": {
            "net": {"class_path": "nwave_lightning.models.H1Classifier", "init_args": {
                "in_ch": 13, "num_classes": 2, "neurons_per_class": 4, "hidden": [16], "dt": 0.001, "chip": "H1v2"}},
            "loss": {"class_path": "nwave_lightning.models.PopulationLoss", "init_args": {"num_classes": 2, "neurons_per_class": 4}},
            "metrics": {"acc": {"class_path": "nwave_lightning.metrics.PopulationAccuracy", "init_args": {"num_classes": 2}}},
            "optimizer": "adam", "lr": 0.02}},
        "data": {"class_path": "nwave_lightning.data.KeywordSpottingDataModule", "init_args": {
            "n_train": 32, "n_val": 16, "n_test": 16, "n_steps": 30, "word_length": 10, "batch_size": 8, "seed": 0}},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "num_sanity_val_steps": 0},
    }
    config_fake = FakeTune(str(tmp_path / "config"))
    ConfigTrial(base, "val_acc", "max")({"model.init_args.net.init_args.hidden": [8]},
                                        TrialRun(str(tmp_path / "config"), report_fn=config_fake))

    assert [r["epoch"] for r in wrapper_fake.reports] == [r["epoch"] for r in config_fake.reports] == [1.0, 2.0]
    mine, theirs = _final_weights(wrapper_fake), _final_weights(config_fake)
    assert sorted(mine) == sorted(theirs) and len(mine) > 0
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key
    assert wrapper_fake.reports[-1]["val_acc"] == config_fake.reports[-1]["val_acc"]


def test_a_wrapper_trial_keeps_plain_hyper_parameters(sdk_trial):
    """The built net, loss and metrics travel through the fit config as objects: the checkpoint and TensorBoard
    keep the plain arguments, not placeholders for the objects (which nothing could rebuild)."""
    ctx, fake = sdk_trial
    hparams = torch.load(os.path.join(fake.checkpoints[-1], "trial_state.ckpt"), map_location="cpu",
                         weights_only=False)["hyper_parameters"]
    assert "net" not in hparams and "loss" not in hparams and "metrics" not in hparams
    assert hparams["lr_scheduler"] == {"name": "step", "step_size": 1, "gamma": 0.5}
    for text in (repr(hparams), open(os.path.join(ctx.log_dir, "hparams.yaml")).read()):
        assert "Unable to serialize" not in text
