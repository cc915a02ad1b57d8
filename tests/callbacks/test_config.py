"""configs/callbacks/*.yaml through LightningCLI, and the vendor-SDK-style dict builders."""

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.cli import LightningCLI

from nwave_lightning.callbacks import (
    ActivityFigures,
    BestModelCheckpoint,
    NWaveEarlyStopping,
    SignAnnealing,
    SurrogateScheduler,
    callbacks_from_config,
)
from nwave_lightning.callbacks.examples import MovingAverageEarlyStopping, ParticipationFigures, WarmupCosineSurrogate

from ._tiny import TinyModule, loaders

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "callbacks"
EXPECTED = {
    "surrogate_scheduler.yaml": [SurrogateScheduler],
    "sign_annealing.yaml": [SignAnnealing],
    "early_stopping.yaml": [NWaveEarlyStopping],
    "early_stopping_threshold.yaml": [NWaveEarlyStopping],
    "best_checkpoint.yaml": [BestModelCheckpoint],
    "activity_figures.yaml": [ActivityFigures],
    "hardware_aware.yaml": [SurrogateScheduler, SignAnnealing, NWaveEarlyStopping, ActivityFigures],
    "custom_subclasses.yaml": [WarmupCosineSurrogate, MovingAverageEarlyStopping, ParticipationFigures],
}


def cli_callbacks(path, tmp_path, *extra):
    args = ["--config", str(path), f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", *extra]
    cli = LightningCLI(TinyModule, run=False, args=args, save_config_callback=None)
    ours = (SurrogateScheduler, SignAnnealing, NWaveEarlyStopping, BestModelCheckpoint, ActivityFigures)
    return cli, [cb for cb in cli.trainer.callbacks if isinstance(cb, ours)]


def test_callback_groups_append_and_keep_the_monitored_metric(tmp_path):
    # The quick start monitors val_chip_acc in its BestModelCheckpoint; a callbacks group added after
    # it appends its own callbacks and neither drops nor replaces that checkpoint.
    quickstart = CONFIGS.parent / "quickstart.yaml"
    for name in sorted(EXPECTED):
        args = ["--config", str(quickstart), "--config", str(CONFIGS / name), "--print_config"]
        parser_out = _printed_config(args)
        best = [cb for cb in parser_out["trainer"]["callbacks"] if cb["class_path"].endswith("BestModelCheckpoint")]
        assert best[0]["init_args"]["metric"] == "val_chip_acc", name
        assert len(parser_out["trainer"]["callbacks"]) == 1 + len(EXPECTED[name]), name


def _printed_config(args) -> dict:
    import contextlib
    import io

    import yaml

    from nwave_lightning.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(args=["fit", *args])
    return yaml.safe_load(out.getvalue())


def test_every_yaml_file_is_covered():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_yaml_builds_the_callbacks_through_lightning_cli(name, tmp_path):
    _, built = cli_callbacks(CONFIGS / name, tmp_path)
    assert [type(cb) for cb in built] == EXPECTED[name]
    # Every value the YAML sets reaches the callback it names (not just its type).
    entries = yaml.safe_load((CONFIGS / name).read_text())["trainer"]["callbacks+"]
    assert [entry["class_path"].rsplit(".", 1)[1] for entry in entries] == [cls.__name__ for cls in EXPECTED[name]]
    checked = 0
    for entry, callback in zip(entries, built):
        for key, value in (entry.get("init_args") or {}).items():
            if value is None:
                continue  # "use the default": checked by the callbacks' own tests
            got = getattr(callback, key)  # each callback keeps its arguments under their names
            assert got == (pytest.approx(value) if isinstance(value, float) else value), (name, entry["class_path"], key)
            checked += 1
    assert checked > 0


def test_subclass_from_yaml_trains(tmp_path):
    cli, built = cli_callbacks(CONFIGS / "custom_subclasses.yaml", tmp_path, "--trainer.max_epochs=2",
                               "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false")
    warmup, smoothing, _ = built
    assert (warmup.warmup_steps, warmup.policy, smoothing.window, smoothing.patience) == (5, "cosine", 3, 6)
    cli.trainer.fit(cli.model, *loaders())
    assert [a for a, _ in cli.model.surrogate_seen] == [10.0, 10.0]  # still warming up
    assert len(smoothing.history) == 2


def test_callbacks_from_seed_namespaces():
    built = callbacks_from_config(
        nwave={
            "surrogate": {"policy": "step", "start_value": 15.0, "end_value": 30.0, "total_steps": 60, "step_size": 5, "gamma": 2.0},
            "sign_annealing": {"alpha_start": 0.5, "alpha_end": 10.0, "total_epochs": 60},
        },
        early_stop={"policy": "threshold", "metric": "val_acc", "mode": "max", "min_epoch": 8, "value": 0.9, "patience": 4, "min_delta": 0.0},
        best={"metric": "val_recall", "mode": "max"},
        activity={"every_n_epochs": 2},
    )
    assert [type(cb) for cb in built] == [SurrogateScheduler, SignAnnealing, NWaveEarlyStopping, BestModelCheckpoint, ActivityFigures]
    assert built[0].scheduled_value(5) == 30.0 and built[2].value == 0.9
    # unbound namespaces and policy "none" build nothing
    assert callbacks_from_config() == []
    assert callbacks_from_config(nwave={"surrogate": {}}, early_stop={"policy": "none"}) == []
    with pytest.raises(ValueError, match=r"unknown nwave scheduler\(s\) \['surogate'\]"):
        callbacks_from_config(nwave={"surogate": {"policy": "linear"}})
    with pytest.raises(ValueError, match=r"SignAnnealing.from_config: unknown key\(s\) \['alpha_stop'\]"):
        callbacks_from_config(nwave={"sign_annealing": {"alpha_stop": 3.0}})
    with pytest.raises(ValueError, match=r"cfg must be a dict"):
        SurrogateScheduler.from_config(["policy", "linear"])
