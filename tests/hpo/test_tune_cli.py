"""``nwave tune``: YAML search spaces through the same CLI and engine."""

import os

import pandas as pd
import pytest
import torch
import yaml
from tbparse import SummaryReader

from nwave_lightning.cli import NWaveCLI, main
from nwave_lightning.hpo.tune_cli import apply_overrides

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tune_keyword_spotting.yaml")


def shrunk_config(tmp_path, **changes):
    with open(CONFIG) as handle:
        config = yaml.safe_load(handle)
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
    assert printed["search_space"]["model.init_args.lr"] == {"loguniform": [1.0e-3, 3.0e-2]}
    assert printed["metric"] == "val_acc" and printed["num_samples"] == 8 and printed["scheduler"]["name"] == "asha"
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


@pytest.mark.slow
def test_tune_yaml_runs_the_experiment(ray_local, tmp_path, capsys):
    path = shrunk_config(tmp_path)
    main(["tune", "--config", path])
    out = capsys.readouterr().out
    assert "Best config:" in out and "Report csv:" in out
    experiment = tmp_path / "ray_results" / "kws"
    trials = sorted(p for p in os.listdir(experiment) if p.startswith("trial_"))
    assert len(trials) == 2
    # each trial: its own sampled values, TensorBoard events with the seed's keys, best_model.pt
    table = pd.read_csv(experiment / "report" / "report.csv")
    assert len(table) == 2 and table["best_value"].between(0, 1).all()
    assert table["model.init_args.lr"].between(1e-3, 3e-2).all()
    for trial in trials:
        scalars = SummaryReader(str(experiment / trial / "tensorboard")).scalars
        assert {"val_acc", "val_loss", "train_loss", "lr", "best_selected_metric"} <= set(scalars["tag"])
        checkpoint = sorted(p for p in os.listdir(experiment / trial) if p.startswith("checkpoint_"))[-1]
        payload = torch.load(experiment / trial / checkpoint / "best_model.pt", weights_only=True)
        best = scalars[scalars["tag"] == "val_acc"]["value"].max()
        assert payload["best_selected_metric"] == pytest.approx(best)
    assert (experiment / "tune_config.yaml").exists()
    for name in ("metric_vs_params.png", "parallel_coordinates.png", "report.md"):
        assert (experiment / "report" / name).stat().st_size > 0


def test_config_groups_compose(capsys):
    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    with pytest.raises(SystemExit):
        main(["tune", "--config", os.path.join(root, "experiment", "keyword_spotting.yaml"),
              "--config", os.path.join(root, "hpo", "space_keyword_spotting.yaml"),
              "--config", os.path.join(root, "hpo", "asha_cpu.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["metric"] == "val_recall" and printed["scheduler"]["name"] == "asha"
    assert printed["search_space"]["model.init_args.optimizer"] == {"choice": ["adam", "adamax"]}
    assert printed["model"]["init_args"]["metrics"]["recall"]["class_path"] == "nwave_lightning.metrics.PopulationRecall"
