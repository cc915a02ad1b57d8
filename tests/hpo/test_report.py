"""Experiment report: table and figures from per-trial TensorBoard events (tbparse)."""

import json
import os

import pandas as pd
import pytest
from torch.utils.tensorboard import SummaryWriter

from nwave_lightning.hpo.report import experiment_table, load_scalars, main, markdown_table, tuned_columns, write_report

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
    (tmp_path / "trial_c" / "error.txt").write_text("RuntimeError: boom")
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
    assert tuned_columns(table) == ["model.hidden", "optim.lr", "optim.name"]  # trainer.epochs is constant


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
