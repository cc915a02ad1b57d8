"""hpo.results.TrialLines: one console line per finished trial, covering a resumed trial's whole run."""

import json
from types import SimpleNamespace

from nwave_lightning.hpo.results import TrialLines, trial_dirname


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
    assert capsys.readouterr().out == "[1/1] trial_abc_00002 ERROR after 2 epochs: best val_loss 0.25 at epoch 2 (val_chip_loss 0.35)\n"
