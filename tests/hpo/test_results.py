"""hpo.results: the console line per finished trial (a resumed trial's whole run) and the one "best"."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from nwave_lightning.callbacks import RandomStateCheckpoint
from nwave_lightning.hpo.results import (
    MetricNotReportedError, TrialLines, TuneEpochReport, best_epoch_metrics, best_result, trial_dirname, write_outcome,
)


def test_a_resumed_trial_line_covers_both_sessions_and_the_unflushed_epoch(tmp_path, capsys):
    trial = SimpleNamespace(trial_id="abc_00001")
    folder = tmp_path / trial_dirname(trial)
    folder.mkdir()
    # Ray's result.json: the first session's epochs 1-2 (best 0.9 at epoch 2) and this session's epoch 3;
    # epoch 4 is still in the JSON logger's buffer.
    rows = [{"epoch": 1.0, "val_acc": 0.5}, {"epoch": 2.0, "val_acc": 0.9}, {"epoch": 3.0, "val_acc": 0.6}]
    (folder / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = TrialLines("val_acc", "max", total=2, experiment_dir=str(tmp_path))
    for row in ({"epoch": 3.0, "val_acc": 0.6}, {"epoch": 4.0, "val_acc": 0.7, "val_chip_acc": 0.7}):
        lines.on_trial_result(iteration=0, trials=[trial], trial=trial, result=row)
    lines.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    assert capsys.readouterr().out == "[1/2] trial_abc_00001 TERMINATED after 4 epochs: best val_acc 0.9 at epoch 2\n"


def test_without_a_local_folder_the_line_covers_what_this_process_saw(capsys):
    trial = SimpleNamespace(trial_id="abc_00002")
    lines = TrialLines("val_loss", "min", total=1)
    for epoch, loss in ((1.0, 0.5), (2.0, 0.25)):
        lines.on_trial_result(iteration=0, trials=[trial], trial=trial, result={"epoch": epoch, "val_loss": loss, "val_chip_loss": loss + 0.1})
    lines.on_trial_error(iteration=0, trials=[trial], trial=trial)
    assert capsys.readouterr().out == ("[1/1] trial_abc_00002 ERROR after 2 epochs: best val_loss 0.25 at epoch 2 "
                                       "(val_chip_loss 0.35); its error is in ResultGrid.errors\n")


def test_a_failed_trial_line_names_its_error_and_traceback_and_a_retry_says_so(tmp_path, capsys):
    # Ray's error file: each failure appended, the traceback ending in the exception (process names in colour).
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1\n\x1b[36mray::ImplicitFunc.train()\x1b[39m\n  File ...\nRuntimeError: disk full\n")
    trial = SimpleNamespace(trial_id="abc_00004", error_file=str(error_file), path="/exp/trial_abc_00004")
    lines = TrialLines("val_acc", "max", total=3)
    lines.on_trial_recover(iteration=0, trials=[trial], trial=trial)
    with error_file.open("a") as handle:  # a chain: the root cause first, then a message over several lines
        handle.write("Failure # 2\n  File ...\nValueError: bad batch\n\nThe above exception was the direct cause of the "
                     "following exception:\n\n  File ...\nValueError: Does not validate\nGiven value: Namespace(...)\n")
    lines.on_trial_error(iteration=0, trials=[trial], trial=trial)
    assert capsys.readouterr().out == (
        "trial_abc_00004 failed, retrying it: RuntimeError: disk full (traceback: /exp/trial_abc_00004/error.txt)\n"
        "[1/3] trial_abc_00004 ERROR after 0 epochs: ValueError: bad batch (traceback: /exp/trial_abc_00004/error.txt)\n"
    )


def test_a_trial_stopped_by_a_non_finite_value_says_why(tmp_path, capsys):
    trial = SimpleNamespace(trial_id="abc_00005")
    folder = tmp_path / trial_dirname(trial)
    folder.mkdir()
    write_outcome(str(folder), "non-finite: NonFiniteGuard: 1 NaN in the loss")
    lines = TrialLines("val_acc", "max", total=1, experiment_dir=str(tmp_path))
    lines.on_trial_result(iteration=0, trials=[trial], trial=trial, result={"epoch": 1.0, "val_acc": 0.5})
    lines.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    assert capsys.readouterr().out == ("[1/1] trial_abc_00005 STOPPED after 1 epochs: best val_acc 0.5 at epoch 1; "
                                       "non-finite: NonFiniteGuard: 1 NaN in the loss\n")


def test_a_train_fn_without_epochs_gets_its_reports_numbered(capsys):
    trial = SimpleNamespace(trial_id="abc_00003")
    lines = TrialLines("val_acc", "max", total=1)
    for acc in (0.25, 0.75, 0.5):
        lines.on_trial_result(iteration=0, trials=[trial], trial=trial, result={"val_acc": acc})
    lines.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    assert capsys.readouterr().out == "[1/1] trial_abc_00003 TERMINATED after 3 epochs: best val_acc 0.75 at epoch 2\n"


def _result(folder, accs):
    frame = pd.DataFrame({"epoch": [float(e) for e in range(1, len(accs) + 1)], "val_acc": accs})
    return SimpleNamespace(path=f"/exp/{folder}", metrics_dataframe=frame, metrics={"val_acc": accs[-1]}, error=None)


def test_best_result_scores_best_or_last_epoch_and_breaks_ties_by_folder():
    nan = float("nan")
    results = [_result("trial_c", [0.9, 0.5]), _result("trial_b", [0.5, 0.9, 0.7]), _result("trial_a", [nan, 0.8])]
    # scope="all": trial_b and trial_c tie at 0.9 (first epoch holding it: 2 and 1); the first folder name wins.
    assert best_result(results, "val_acc", "max").path == "/exp/trial_b"
    assert best_epoch_metrics(results[1], "val_acc", "max") == {"epoch": 2.0, "val_acc": 0.9}
    # scope="last": 0.5, 0.7, 0.8; "min" never picks trial_a's NaN.
    assert best_result(results, "val_acc", "max", scope="last").path == "/exp/trial_a"
    assert best_result(results, "val_acc", "min").path == "/exp/trial_b"
    assert best_result(results, "val_acc", "min", scope="last").path == "/exp/trial_c"
    with pytest.raises(MetricNotReportedError, match=r"'val_loss' not reported \(finite\) by any trial.*\['val_acc'\]"):
        best_result(results, "val_loss", "max")
    with pytest.raises(ValueError, match="scope='best'"):
        best_result(results, "val_acc", "max", scope="best")


def test_a_trial_checkpointed_by_an_earlier_version_gets_its_random_streams_back():
    """Before RandomStateCheckpoint, TuneEpochReport kept the streams under 'rng': a trial resumed across the upgrade
    lost them (its checkpoint has no RandomStateCheckpoint state) and shuffled its next epochs anew."""
    import random

    import numpy as np
    import torch

    earlier = {"metric": "val_acc", "rng": RandomStateCheckpoint().state_dict()}  # what that version saved
    expected = torch.rand(3), np.random.rand(3), random.random()
    TuneEpochReport("val_acc", "best_model.pt", report_fn=lambda *a, **k: None).load_state_dict(earlier)
    got = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
