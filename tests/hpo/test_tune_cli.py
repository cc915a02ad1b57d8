"""``nwave tune``: YAML search spaces through the same CLI and engine."""

import json
import os
import shlex

import pandas as pd
import pytest
import torch
import yaml
from tbparse import SummaryReader

from nwave_lightning.cli import NWaveCLI, main
from nwave_lightning.hpo.space import apply_overrides

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tune_keyword_spotting.yaml")


def shrunk_config(tmp_path, model_args=None, **changes):
    with open(CONFIG) as handle:
        config = yaml.safe_load(handle)
    config["model"]["init_args"].update(model_args or {})
    config["data"]["init_args"].update(n_train=32, n_val=16, n_test=16, n_steps=20, word_length=8, batch_size=16)
    config["trainer"]["max_epochs"] = 2
    config.update(num_samples=2, storage_path=str(tmp_path / "ray_results"), experiment_name="kws")
    config.update(changes)
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_tune_is_a_subcommand():
    assert NWaveCLI.subcommands()["tune"] == {"model", "datamodule"}


def test_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--config", CONFIG, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    with open(CONFIG) as handle:
        shipped = yaml.safe_load(handle)
    assert printed["search_space"] == shipped["search_space"]  # every domain, as written in the file
    assert printed["search_space"]["model.init_args.lr"] == {"loguniform": [5.0e-3, 3.0e-2]}
    # the shipped example selects on the chip-ready accuracy (the hardware-aware default)
    assert printed["metric"] == "val_chip_acc" and printed["mode"] == "max"
    assert printed["num_samples"] == 8 and printed["scheduler"]["name"] == "asha"
    assert printed["model"]["init_args"]["net"]["class_path"] == "nwave_lightning.models.H1Classifier"


def test_apply_overrides():
    config = {"model": {"init_args": {"lr": 0.1}}, "trainer": {"callbacks": [{"init_args": {"a": 1}}]}}
    apply_overrides(config, {"model.init_args.lr": 0.5, "trainer.callbacks.0.init_args.a": 2, "data.init_args.x": 3})
    assert config == {"model": {"init_args": {"lr": 0.5}}, "trainer": {"callbacks": [{"init_args": {"a": 2}}]},
                      "data": {"init_args": {"x": 3}}}
    with pytest.raises(ValueError, match="not an index"):
        apply_overrides(config, {"trainer.callbacks.3.init_args.a": 1})


def test_bad_search_space_path_fails_before_launch(tmp_path):
    path = shrunk_config(tmp_path, search_space={"model.init_args.net.init_args.hiden": {"choice": [[8]]}})
    with pytest.raises(ValueError, match="hiden"):
        main(["tune", "--config", path])
    assert not os.path.exists(tmp_path / "ray_results" / "kws" / "tuner.pkl")


def test_chip_metric_of_a_model_that_never_logs_it_fails_before_launch(tmp_path):
    path = shrunk_config(tmp_path, model_args={"chip_eval": False})
    with pytest.raises(ValueError, match=r"metric='val_chip_acc'.*chip_eval is false.*metric: val_acc"):
        main(["tune", "--config", path])
    assert not os.path.exists(tmp_path / "ray_results" / "kws" / "tuner.pkl")


def _chip_scores_of_restored_best(config_path, params, state_dict):
    """Rebuild the trial's network from its config, load best_model.pt into it and score to_chip(net) on val.

    Returns ``(accuracy, loss)``: the loss is the trial's own loss (its sampled correct_rate), averaged
    over the validation set weighted by batch size, as SNNModule logs ``val_chip_loss``.
    """
    from nwave_lightning.deploy import to_chip
    from nwave_lightning.layers.sign import install_sign_parametrization
    from nwave_lightning.loss.output import as_loss_output
    from nwave_lightning.metrics import PopulationAccuracy
    from nwave_lightning.training.contract import unpack_batch

    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    config = {key: config[key] for key in ("seed_everything", "model", "data", "trainer")}
    config["trainer"].update(logger=False, enable_checkpointing=False)
    cli = main(args=apply_overrides(config, params), run=False)
    net = cli.model.net
    install_sign_parametrization(net)  # the run trained with sign annealing: its keys are parametrised
    net.load_state_dict(state_dict)
    chip = to_chip(net).eval()
    cli.datamodule.setup("fit")
    accuracy = PopulationAccuracy(num_classes=net.num_classes)
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for batch in cli.datamodule.val_dataloader():
            x, y, _ = unpack_batch(batch)
            spk_out = chip(x)[0][-1]
            accuracy.update(spk_out, y)
            loss_sum += float(as_loss_output(cli.model.loss(spk_out=spk_out, y=y, model=chip)).total) * len(y)
            count += len(y)
    return float(accuracy.compute()), loss_sum / count


@pytest.mark.slow
def test_tune_yaml_runs_the_experiment(ray_local, tmp_path, capsys):
    # fluct_init and the longer time constants make the readout fire from the first epoch, so that the
    # chip-ready loss differs between epochs and weights (a silent readout scores the same whatever the weights).
    with open(CONFIG) as handle:
        space = yaml.safe_load(handle)["search_space"]
    space["model.init_args.net.init_args.taus"] = {"uniform": [0.03, 0.05]}
    path = shrunk_config(tmp_path, model_args={"fluct_init": {"xi_target": 2.0, "alpha": 0.85, "n_batches": 1}},
                         search_space=space)
    main(["tune", "--config", path])
    out = capsys.readouterr().out
    assert "Best config:" in out and "Report csv:" in out
    # the summary gives the selected chip-ready accuracy and, at the same epoch, the float one
    assert "Best val_chip_acc: " in out and "the float network's val_acc at that epoch: " in out
    experiment = tmp_path / "ray_results" / "kws"
    trials = sorted(p for p in os.listdir(experiment) if p.startswith("trial_"))
    assert len(trials) == 2
    # each trial: its own sampled values, TensorBoard events with the vendor SDK's keys, best_model.pt
    table = pd.read_csv(experiment / "report" / "report.csv").set_index("trial")
    distinct_losses = []
    assert len(table) == 2 and table["best_value"].between(0, 1).all()
    assert table["model.init_args.lr"].between(5e-3, 3e-2).all()
    for trial in trials:
        scalars = SummaryReader(str(experiment / trial / "tensorboard")).scalars
        assert {"val_acc", "val_loss", "val_chip_acc", "val_chip_loss", "train_loss", "lr",
                "best_selected_metric"} <= set(scalars["tag"])
        checkpoint = sorted(p for p in os.listdir(experiment / trial) if p.startswith("checkpoint_"))[-1]
        payload = torch.load(experiment / trial / checkpoint / "best_model.pt", weights_only=True)
        chip = scalars[scalars["tag"] == "val_chip_acc"].sort_values("step")
        floats = scalars[scalars["tag"] == "val_acc"].set_index("step")["value"]
        chip_loss = scalars[scalars["tag"] == "val_chip_loss"].set_index("step")["value"]
        best_epoch = int(chip.loc[chip["value"].idxmax(), "step"])  # the first best epoch
        assert payload["metric"] == "val_chip_acc"
        assert payload["best_selected_metric"] == pytest.approx(chip["value"].max()) and payload["epoch"] == best_epoch
        assert table.loc[trial, "best_epoch"] == best_epoch
        assert table.loc[trial, "val_acc_at_best_epoch"] == pytest.approx(floats[best_epoch])
        # the best weights, restored into a fresh network, give that epoch's chip-ready accuracy and loss
        # on the chip-legal copy (the loss tells epochs and weights apart where accuracies tie at chance)
        with open(experiment / trial / "params.json") as handle:
            params = yaml.safe_load(handle)
        accuracy, loss = _chip_scores_of_restored_best(path, params, payload["state_dict"])
        assert accuracy == pytest.approx(payload["best_selected_metric"], abs=1e-6)
        assert loss == pytest.approx(chip_loss[best_epoch], rel=1e-5)
        distinct_losses.append(chip_loss.nunique() == len(chip_loss))
    assert any(distinct_losses)  # in some trial every epoch's weights score differently: the check can fail
    assert (experiment / "tune_config.yaml").exists()
    for name in ("metric_vs_params.png", "parallel_coordinates.png", "report.md"):
        assert (experiment / "report" / name).stat().st_size > 0
    # The printed export command takes the best trial to the chip: its fit config rebuilds the trial's network.
    (command,) = [line.split("to the chip: ", 1)[1] for line in out.splitlines() if "to the chip: " in line]
    args = shlex.split(command)[1:]
    args[args.index("--output") + 1] = str(tmp_path / "best.npz")
    main(args)
    best_trial = table.index[0]
    with open(experiment / best_trial / "params.json") as handle:
        assert yaml.safe_load(open(experiment / "best_config.yaml"))["model"]["init_args"]["lr"] == json.load(handle)["model.init_args.lr"]
    from nwave_lightning.deploy import load_chip

    assert load_chip(tmp_path / "best.npz") is not None


def test_config_groups_compose(capsys):
    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    with pytest.raises(SystemExit):
        main(["tune", "--config", os.path.join(root, "experiment", "keyword_spotting.yaml"),
              "--config", os.path.join(root, "hpo", "space_keyword_spotting.yaml"),
              "--config", os.path.join(root, "hpo", "asha_cpu.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    # the HPO group selects on the chip-ready recall, as the experiment groups monitor val_chip_*
    assert printed["metric"] == "val_chip_recall" and printed["scheduler"]["name"] == "asha"
    assert printed["search_space"]["model.init_args.optimizer"] == {"choice": ["adam", "adamax"]}
    assert printed["model"]["init_args"]["metrics"]["recall"]["class_path"] == "nwave_lightning.metrics.PopulationRecall"
