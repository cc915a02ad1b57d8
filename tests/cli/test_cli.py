"""The nwave command: configs parse, fit logs where it says, resume with --ckpt_path last, subcommands."""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from nwave_lightning.cli import NWaveCLI, main
from nwave_lightning.cli.app import _best_model_lines

from ._quickstart import CONFIGS, QUICKSTART, TINY


def _experiments():
    return sorted(str(p) for p in (CONFIGS / "experiment").glob("*.yaml")) + [QUICKSTART]


def _print_config(args, capsys) -> dict:
    with pytest.raises(SystemExit) as info:
        main(args + ["--print_config"])
    assert info.value.code in (None, 0)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("path", _experiments(), ids=lambda p: Path(p).name)
def test_every_experiment_config_parses(path, capsys, tmp_path, monkeypatch):
    config = _print_config(["fit", "--config", path], capsys)
    assert config["model"]["class_path"] == "nwave_lightning.training.SNNModule"
    assert config["model"]["init_args"]["loss"]["class_path"].startswith("nwave_lightning.")
    assert config["data"]["class_path"].startswith("nwave_lightning.data.")
    # Parsing is not enough: the objects build, and the net trains on the data's first batch.
    monkeypatch.chdir(tmp_path)  # nothing the build writes lands in the checkout
    cli = main(["--config", path], run=False, save_config_callback=None)
    assert type(cli.model.net) is _class(config["model"]["init_args"]["net"])
    assert type(cli.datamodule) is _class(config["data"])
    assert cli.trainer.max_epochs == config["trainer"]["max_epochs"]
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    loss = cli.model.training_step(next(iter(cli.datamodule.train_dataloader())), 0)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in cli.model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(bool(g.abs().sum() > 0) for g in grads), "no parameter gets a gradient from the loss"
    capsys.readouterr()


def _class(entry) -> type:
    module, name = entry["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_groups_compose_from_the_command_line(capsys):
    args = ["fit", "--trainer", str(CONFIGS / "trainer/ddp_cpu.yaml"), "--model", str(CONFIGS / "model/keyword_spotting_h1v2.yaml")]
    config = _print_config(args + ["--data", str(CONFIGS / "data/keyword_spotting.yaml"), "--trainer.max_epochs=3"], capsys)
    assert (config["trainer"]["devices"], config["trainer"]["strategy"], config["trainer"]["max_epochs"]) == (2, "ddp", 3)
    assert config["model"]["init_args"]["net"]["init_args"]["in_ch"] == 13
    assert config["trainer"]["logger"]["init_args"]["save_dir"] == "runs"  # the nwave default logger
    for group in ("model", "data", "trainer"):
        for path in (CONFIGS / group).glob("*.yaml"):
            _print_config(["fit", f"--{group}", str(path)] + ([] if group == "model" else ["--model", str(CONFIGS / "model/keyword_spotting_h1v2.yaml")]) + ([] if group == "data" else ["--data", str(CONFIGS / "data/keyword_spotting.yaml")]), capsys)


def _fit(tmp_path, *extra):
    return main(["fit", "--config", QUICKSTART, *TINY, f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", *extra])


def test_fit_logs_the_sdk_keys_and_says_where(tmp_path, capsys):
    from tbparse import SummaryReader

    cli = _fit(tmp_path, "--trainer.max_epochs=2")
    out = capsys.readouterr().out
    log_dir = cli.trainer.logger.log_dir
    assert f"TensorBoard logs: {os.path.abspath(log_dir)}" in out and "tensorboard --logdir" in out
    tags = set(SummaryReader(log_dir).scalars["tag"])
    assert {"epoch", "lr", "train_loss", "val_loss", "train_acc", "val/acc", "val/layer_2/firing_rate", "train/population/mse"} <= tags
    assert "hp_metric" not in tags
    assert os.path.isfile(os.path.join(log_dir, "checkpoints", "last.ckpt"))
    payload = torch.load(os.path.join(log_dir, "checkpoints", "last.ckpt"), weights_only=True)
    assert payload["hyper_parameters"]["net"]["class_path"] == "nwave_lightning.models.H1Classifier"


SEED_CONDITIONAL = {"surrogate_value", "sign_alpha", "early_stop_metric_value", "early_stop_bad_epochs", "early_stop_best_metric", "early_stop_triggered"}


def test_callbacks_group_adds_the_sdk_conditional_keys(tmp_path, capsys):
    from tbparse import SummaryReader

    plain = _fit(tmp_path / "plain", "--trainer.max_epochs=1")
    tags = set(SummaryReader(plain.trainer.logger.log_dir).scalars["tag"])
    assert "best_selected_metric" in tags  # the quick start keeps best_model.pt
    # Hardware-aware by default: sign annealing and the chip-ready twin, but no other conditional key.
    assert {"sign_alpha", "val_chip_acc", "val_chip_loss"} <= tags
    assert not tags & (SEED_CONDITIONAL - {"sign_alpha"})
    extra = ["--config", str(CONFIGS / "callbacks" / "hardware_aware.yaml"), "--trainer.max_epochs=2"]
    full = _fit(tmp_path / "full", *extra)
    tags = set(SummaryReader(full.trainer.logger.log_dir).scalars["tag"])
    assert SEED_CONDITIONAL | {"best_selected_metric", "epoch", "lr", "train_loss", "val_loss"} <= tags
    assert "early_stop_target_value" not in tags  # threshold policy only
    coherence = sorted(t for t in tags if t.startswith("sign_topology/"))
    assert len(coherence) == 3 and all(t.endswith("weight_coherence_pct") for t in coherence)  # three dense synapses
    capsys.readouterr()


def _final(log_dir, tag):
    from tbparse import SummaryReader

    frame = SummaryReader(log_dir).scalars
    rows = frame[frame["tag"] == tag].sort_values("step")
    return dict(zip(rows["step"], rows["value"]))


def test_resume_with_ckpt_path_last_matches_an_uninterrupted_run(tmp_path, capsys):
    straight = _fit(tmp_path / "a", "--trainer.max_epochs=4")
    _fit(tmp_path / "b", "--trainer.max_epochs=2")  # "interrupted" after two epochs
    resumed = _fit(tmp_path / "b", "--trainer.max_epochs=4", "--ckpt_path=last")
    assert resumed.trainer.logger.log_dir == str(tmp_path / "b" / "runs" / "quickstart" / "version_0")  # same folder
    for tag in ("val_loss", "train_loss", "val_acc", "val/layer_1/firing_rate"):
        expected, got = _final(straight.trainer.logger.log_dir, tag), _final(resumed.trainer.logger.log_dir, tag)
        assert got[4] == pytest.approx(expected[4], rel=1e-6, abs=1e-9), tag
    capsys.readouterr()


def test_fit_names_the_best_model_and_the_command_that_exports_it(tmp_path, capsys, monkeypatch):
    cli = _fit(tmp_path, "--trainer.max_epochs=2")
    out = capsys.readouterr().out
    (best,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "BestModelCheckpoint"]
    path = os.path.join(os.path.abspath(cli.trainer.logger.log_dir), "best_model.pt")
    assert os.path.isfile(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)  # what the line reports is what the file holds
    assert f"Best model:       val_chip_acc {saved['best_selected_metric']:.4g} (max) at epoch {saved['epoch']}: {path}" in out
    (command,) = [line.split("export it with: ", 1)[1] for line in out.splitlines() if "export it with: " in line]
    assert command == f"nwave export --config {QUICKSTART} --ckpt_path {path} --output model.json"
    # The printed command works as printed (from a scratch folder: it writes model.json there).
    monkeypatch.chdir(tmp_path)
    main(shlex.split(command)[1:])
    assert os.path.isfile(tmp_path / "model.json")
    capsys.readouterr()


def test_the_export_line_asks_for_the_config_when_it_is_unknown(tmp_path):
    from nwave_lightning.callbacks import BestModelCheckpoint

    best = BestModelCheckpoint(metric="val_acc", mode="max", dirpath=str(tmp_path))
    assert _best_model_lines([best], None) == ""  # nothing written yet: nothing to say
    best.best_score, best.best_epoch = 0.75, 3
    best.save({"epoch": 3, "best_selected_metric": 0.75, "state_dict": {}, "hyper_parameters": {}})
    lines = _best_model_lines([best], None)
    assert f"val_acc 0.75 (max) at epoch 3: {tmp_path / 'best_model.pt'}" in lines
    assert "nwave export --config <your config> --ckpt_path" in lines
    two = _best_model_lines([best], ["a.yaml", "b c.yaml"])
    assert "nwave export --config a.yaml --config 'b c.yaml' --ckpt_path" in two


def _folder_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "exists and is not empty" in str(w.message)]


def test_resuming_into_the_runs_folder_does_not_warn_that_it_is_not_empty(tmp_path, capsys):
    _fit(tmp_path, "--trainer.max_epochs=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(tmp_path, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert _folder_warnings(caught) == []
    # The filter ends with the resumed run: a new run into that folder (no --ckpt_path) is still told.
    assert not [f for f in warnings.filters if f[1] is not None and "exists and is not empty" in f[1].pattern]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(tmp_path, "--trainer.max_epochs=1", "--trainer.logger.init_args.version=0")
    assert len(_folder_warnings(caught)) == 1
    capsys.readouterr()


@pytest.mark.parametrize("entry", ["console_script", "module"])
def test_the_command_prints_the_frameworks_errors_without_a_traceback(entry, tmp_path):
    args = ["export", "--config", QUICKSTART, "--ckpt_path", str(tmp_path / "last.ckpt"), "--output", str(tmp_path / "model.onnx")]
    if entry == "console_script":
        code = f"import sys; from nwave_lightning.cli import console_main; sys.argv = ['nwave', *{args!r}]; console_main()"
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", "nwave_lightning", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(QUICKSTART).parents[1]), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith("nwave: error: ") and "output=" in result.stderr and ".onnx" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "model.onnx").exists()


def test_a_value_error_from_outside_the_framework_keeps_its_traceback(monkeypatch):
    """Only the framework's own checks become one line; a user's datamodule or a library failing keeps the traceback."""
    from nwave_lightning.cli import app

    def users_code(*args, **kwargs):
        raise ValueError("too many values to unpack (expected 2)")

    monkeypatch.setattr(app, "main", users_code)
    with pytest.raises(ValueError, match="too many values to unpack"):
        app.console_main()


def test_validate_and_test_from_a_checkpoint(tmp_path, capsys):
    cli = _fit(tmp_path, "--trainer.max_epochs=1")
    checkpoint = cli.trainer.checkpoint_callback.last_model_path
    validated = main(["validate", "--config", QUICKSTART, *TINY, f"--trainer.logger.init_args.save_dir={tmp_path / 'v'}", f"--ckpt_path={checkpoint}"])
    assert validated.trainer.callback_metrics["val_loss"] == pytest.approx(float(cli.trainer.callback_metrics["val_loss"]), rel=1e-6)
    tested = main(["test", "--config", QUICKSTART, *TINY, f"--trainer.logger.init_args.save_dir={tmp_path / 't'}", f"--ckpt_path={checkpoint}"])
    # The fitted weights (last.ckpt = the end of fit), tested in this process: the same numbers, every one.
    (expected,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    got = {key: float(value) for key, value in tested.trainer.callback_metrics.items()}
    expected = {key: value for key, value in expected.items() if key.startswith("test")}  # not the step counters
    assert {"test_loss", "test_acc"} <= set(expected)
    assert set(got) >= set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    capsys.readouterr()


def test_unknown_optimizer_name_lists_the_supported_ones(tmp_path):
    with pytest.raises(ValueError, match=r"optimizer='sgdx' is not supported; choose one of \['adam', 'adamax'\]"):
        _fit(tmp_path, "--trainer.max_epochs=1", "--model.init_args.optimizer=sgdx")


def test_subcommands_include_the_lightning_ones():
    # further subcommands (e.g. `tune`) plug in through NWaveCLI.subcommands + an NWaveTrainer method
    assert {"fit", "validate", "test", "predict"} <= set(NWaveCLI.subcommands())


def test_module_entry_point_and_console_script():
    result = subprocess.run([sys.executable, "-m", "nwave_lightning", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("fit", "validate", "test", "predict"):
        assert name in result.stdout
    script = shutil.which("nwave")
    if script is None:
        pytest.skip("the nwave console script is not on PATH (package not installed)")
    result = subprocess.run([script, "fit", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--ckpt_path" in result.stdout


class ValueRecorder(__import__("lightning.pytorch", fromlist=["Callback"]).Callback):
    """A callback subclass named in YAML: records what it reads at on_validation_epoch_end."""

    def __init__(self, key: str = "val_acc") -> None:
        self.key, self.seen = key, []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.seen.append(float(trainer.callback_metrics[self.key]))


def test_a_yaml_callback_reads_the_current_epochs_values_at_validation_epoch_end(tmp_path):
    from tbparse import SummaryReader

    config = tmp_path / "recorder.yaml"
    config.write_text(
        "trainer:\n  callbacks:\n"
        f"    - class_path: {__name__}.ValueRecorder\n      init_args: {{key: val_chip_acc}}\n"
        f"    - class_path: {__name__}.ValueRecorder\n      init_args: {{key: val_loss}}\n"
    )
    cli = _fit(tmp_path, "--config", str(config), "--trainer.max_epochs=3")
    recorders = [cb for cb in cli.trainer.callbacks if isinstance(cb, ValueRecorder)]
    scalars = SummaryReader(cli.trainer.logger.log_dir).scalars
    for recorder in recorders:
        logged = scalars[scalars["tag"] == recorder.key].sort_values("step")
        assert list(logged["step"]) == [1, 2, 3]  # the module logs val_* once per epoch, step = epoch
        # what the callback saw at epoch e is what the module logged for epoch e (not e - 1)
        assert recorder.seen == pytest.approx(list(logged["value"]), rel=1e-6)
