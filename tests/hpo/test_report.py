"""Experiment report: table and figures from per-trial TensorBoard events (tbparse)."""

import json
import os

import pandas as pd
import pytest
from torch.utils.tensorboard import SummaryWriter

from nwave_lightning.cli.report import main
from nwave_lightning.hpo.report import experiment_table, load_scalars, markdown_table, tuned_columns, write_report
from nwave_lightning.hpo.results import MetricNotReportedError, best_epoch_metrics, chip_twin, describe_best

CURVES = {  # trial -> (config, val_acc per epoch)
    "trial_a": ({"model.hidden": 16, "optim.lr": 1e-3, "optim.name": "adam", "trainer.epochs": 4}, [0.5, 0.7, 0.6, 0.65]),
    "trial_b": ({"model.hidden": 32, "optim.lr": 1e-2, "optim.name": "adamax", "trainer.epochs": 4}, [0.6, 0.8, 0.9, 0.85]),
    "trial_c": ({"model.hidden": 16, "optim.lr": 3e-3, "optim.name": "adam", "trainer.epochs": 4}, [0.4, 0.45]),
}


@pytest.fixture
def experiment(tmp_path):
    for name, (config, accs) in CURVES.items():
        trial = tmp_path / name
        writer = SummaryWriter(str(trial / "tensorboard"))
        for epoch, acc in enumerate(accs, start=1):
            writer.add_scalar("val_acc", acc, epoch)
            writer.add_scalar("val_loss", 1 - acc, epoch)
        writer.close()
        (trial / "params.json").write_text(json.dumps(config))
        (trial / "outcome.txt").write_text("ok")
    (tmp_path / "trial_c" / "outcome.txt").write_text("error")
    return str(tmp_path)


def test_scalars_are_read_per_trial(experiment):
    scalars = load_scalars(experiment)
    assert set(scalars["trial"]) == set(CURVES) and set(scalars["tag"]) == {"val_acc", "val_loss"}
    got = scalars[(scalars["trial"] == "trial_b") & (scalars["tag"] == "val_acc")].sort_values("step")
    assert got["value"].tolist() == pytest.approx(CURVES["trial_b"][1])


@pytest.mark.parametrize("mode", ["max", "min"])
def test_table_ranks_trials_by_their_best_epoch(experiment, mode):
    table = experiment_table(experiment, "val_acc", mode)
    pick = max if mode == "max" else min
    expected = {name: pick(accs) for name, (_, accs) in CURVES.items()}
    order = sorted(expected, key=expected.get, reverse=(mode == "max"))
    assert table["trial"].tolist() == order
    for row in table.itertuples():
        accs = CURVES[row.trial][1]
        assert row.best_value == pytest.approx(expected[row.trial])
        assert row.best_epoch == accs.index(pick(accs)) + 1
        assert row.last_value == pytest.approx(accs[-1]) and row.epochs == len(accs)
    assert table.set_index("trial").loc["trial_c", "status"] == "error"
    assert table.set_index("trial").loc["trial_a", "status"] == "ok"
    assert tuned_columns(table) == ["model.hidden", "optim.lr", "optim.name"]  # trainer.epochs is constant


def test_a_resumed_trial_counts_the_values_it_logged_last(tmp_path):
    """Killed after epoch 3 and resumed from epoch 2: epoch 3 is logged twice; the rerun (a NaN here) counts."""
    import time

    trial = tmp_path / "trial_r"
    for run, accs in enumerate(([0.5, 0.6, 0.95], [None, None, float("nan"), 0.7])):
        writer = SummaryWriter(str(trial / "tensorboard"), filename_suffix=f".run{run}")
        for epoch, acc in enumerate(accs, start=1):
            if acc is not None:
                writer.add_scalar("val_acc", acc, epoch)
                writer.add_scalar("val_chip_acc", acc - 0.1, epoch)
        writer.close()
        time.sleep(0.05)
    (trial / "params.json").write_text(json.dumps({"model.hidden": 8}))
    row = experiment_table(str(tmp_path), "val_acc", "max").iloc[0]
    assert row.best_value == pytest.approx(0.7) and row.best_epoch == 4 and row.epochs == 4
    assert row.val_chip_acc_at_best_epoch == pytest.approx(0.6) and row.last_value == pytest.approx(0.7)


def test_a_trial_that_did_not_end_is_incomplete_never_ok(experiment):
    """A trial killed with its experiment has no outcome: the report says so (it used to say ok)."""
    os.remove(os.path.join(experiment, "trial_b", "outcome.txt"))
    with open(os.path.join(experiment, "trial_a", "outcome.txt"), "w") as handle:
        handle.write("non-finite: NaN loss")
    status = experiment_table(experiment, "val_acc", "max").set_index("trial")["status"]
    assert status.to_dict() == {"trial_a": "non-finite: NaN loss", "trial_b": "incomplete", "trial_c": "error"}


def test_unknown_metric_lists_the_logged_tags(experiment):
    with pytest.raises(ValueError, match=r"val_recall.*\['val_acc', 'val_loss'\]"):
        experiment_table(experiment, "val_recall")


def test_not_an_experiment(tmp_path):
    with pytest.raises(ValueError, match="no trial folders"):
        experiment_table(str(tmp_path), "val_acc")


def test_write_report_files(experiment, tmp_path):
    out = tmp_path / "out"
    paths = write_report(experiment, "val_acc", "max", out_dir=str(out))
    assert sorted(os.listdir(out)) == ["metric_vs_params.png", "parallel_coordinates.png", "report.csv", "report.md"]
    table = pd.read_csv(paths["csv"])
    assert table["trial"].tolist() == ["trial_b", "trial_a", "trial_c"]
    markdown = open(paths["markdown"]).read()
    assert "| trial_b | ok | 0.9 | 3 |" in markdown and "trainer.epochs" not in markdown
    for name in ("metric_vs_params", "parallel_coordinates"):
        with open(paths[name], "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_command_line(experiment, capsys):
    paths = main([experiment, "--metric", "val_loss", "--mode", "min", "--top", "2"])
    assert os.path.dirname(paths["csv"]) == os.path.join(experiment, "report")
    out = capsys.readouterr().out
    assert out.index("trial_b") < out.index("trial_a")


def test_markdown_table_escapes_and_formats():
    text = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [float("nan")], "c": [1 / 3]}))
    assert text.splitlines()[2] == "| x\\|y |  | 0.3333 |"


def test_a_choice_holding_none_is_a_category_of_its_own():
    # tune.choice(["xavier_uniform", None]) lands in params.json as a string or null.
    from nwave_lightning.hpo.report import _numeric

    codes, labels = _numeric(pd.Series(["xavier_uniform", None, "xavier_uniform", None], dtype=object))
    assert labels == ["None", "xavier_uniform"]
    assert codes.tolist() == [1.0, 0.0, 1.0, 0.0]


# trial -> chip-ready accuracy per epoch (the float curves are CURVES'); trial_b's chip-ready
# copy peaks at epoch 4, its float network at epoch 3, and the chip-ready curves tie at their best.
CHIP_CURVES = {"trial_a": [0.5, 0.55, 0.7, 0.7], "trial_b": [0.5, 0.7, 0.6, 0.8], "trial_c": [0.45, 0.4]}


@pytest.fixture
def chip_experiment(tmp_path):
    for name, (config, accs) in CURVES.items():
        trial = tmp_path / name
        writer = SummaryWriter(str(trial / "tensorboard"))
        for epoch, (acc, chip) in enumerate(zip(accs, CHIP_CURVES[name]), start=1):
            writer.add_scalar("val_acc", acc, epoch)
            writer.add_scalar("val_chip_acc", chip, epoch)
        writer.close()
        (trial / "params.json").write_text(json.dumps(config))
        (trial / "outcome.txt").write_text("ok")
    return str(tmp_path)


def test_chip_twins_pair_float_and_chip_ready_keys():
    assert [chip_twin(k) for k in ("val_acc", "val_chip_acc", "val_loss", "val_chip_loss", "test_recall", "test_chip_recall")] == [
        "val_chip_acc", "val_acc", "val_chip_loss", "val_loss", "test_chip_recall", "test_recall"]
    assert [chip_twin(k) for k in ("train_loss", "best_selected_metric", "val/acc", "val_", "val_chip_", "epoch")] == [None] * 6


@pytest.mark.parametrize("metric, twin", [("val_chip_acc", "val_acc"), ("val_acc", "val_chip_acc")])
def test_table_holds_the_twin_at_the_best_epoch(chip_experiment, metric, twin):
    """Whichever of the pair is selected, the other is read at the selected one's best epoch."""
    table = experiment_table(chip_experiment, metric, "max").set_index("trial")
    column = f"{twin}_at_best_epoch"
    chosen = CHIP_CURVES if metric == "val_chip_acc" else {name: accs for name, (_, accs) in CURVES.items()}
    other = {name: accs for name, (_, accs) in CURVES.items()} if metric == "val_chip_acc" else CHIP_CURVES
    for trial, values in chosen.items():
        epoch = values.index(max(values)) + 1  # the first best epoch, the one best_model.pt holds
        assert table.loc[trial, "best_epoch"] == epoch
        assert table.loc[trial, column] == pytest.approx(other[trial][epoch - 1])
    assert column not in tuned_columns(table.reset_index())


def test_report_shows_the_chip_ready_twin(chip_experiment, tmp_path):
    paths = write_report(chip_experiment, "val_chip_acc", "max", out_dir=str(tmp_path / "out"))
    table = pd.read_csv(paths["csv"])
    assert list(table.columns[:5]) == ["trial", "status", "best_value", "best_epoch", "val_acc_at_best_epoch"]
    markdown = open(paths["markdown"]).read()
    # trial_b: best chip-ready 0.8 at epoch 4, where the float network scored 0.85
    assert "| trial_b | ok | 0.8 | 4 | 0.85 |" in markdown
    assert "`val_acc_at_best_epoch`: the float network's `val_acc`" in markdown


def test_report_without_twin_keeps_its_columns(experiment, tmp_path):
    """Runs that log no chip-ready metric (chip_eval=False, no H1 layer) get no empty twin column."""
    table = pd.read_csv(write_report(experiment, "val_acc", "max", out_dir=str(tmp_path / "out"))["csv"])
    assert not any(c.endswith("_at_best_epoch") for c in table.columns)


class _Result:
    def __init__(self, frame):
        self.metrics_dataframe = frame


def test_best_epoch_metrics_and_summary_line():
    frame = pd.DataFrame({"epoch": [1, 2, 3, 4], "training_iteration": [1, 2, 3, 4],
                          "val_chip_acc": [0.5, 0.9, 0.7, 0.9], "val_acc": [0.6, 0.95, 1.0, 0.9]})
    best = best_epoch_metrics(_Result(frame), "val_chip_acc", "max")
    assert best["epoch"] == 2 and best["val_chip_acc"] == 0.9 and best["val_acc"] == 0.95  # first best epoch
    assert describe_best(best, "val_chip_acc", "trial_x") == (
        "Best val_chip_acc: 0.9 at epoch 2 (trial trial_x); the float network's val_acc at that epoch: 0.95")
    floats = best_epoch_metrics(_Result(frame), "val_acc", "max")
    assert describe_best(floats, "val_acc").endswith("; the chip-ready (to_chip(net)) val_chip_acc at that epoch: 0.7")
    assert best_epoch_metrics(_Result(frame), "val_chip_acc", "min")["epoch"] == 1
    assert "val_chip_acc was not reported" in describe_best({"val_acc": 1.0, "epoch": 1.0}, "val_acc")
    with pytest.raises(MetricNotReportedError, match=r"'val_chip_recall' not reported.*\['epoch', 'val_acc', 'val_chip_acc'\]"):
        best_epoch_metrics(_Result(frame), "val_chip_recall", "max")
