"""Which experiment a run continues or starts (``choose_experiment``), and how many trials it holds."""

import numpy as np
import pytest
import yaml
from ray import tune

from nwave_lightning.hpo.engine import (
    LAUNCH_SETTINGS, ExperimentSettings, check_same_experiment, choose_experiment, experiment_path, save_launch_settings,
    trial_count,
)
from nwave_lightning.hpo.space import describe_space


def _settings(tmp_path):
    return ExperimentSettings(metric="val_acc", mode="max", experiment_name="kws", storage_path=str(tmp_path))


def _leave_experiment(folder):
    folder.mkdir(parents=True)
    (folder / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for


def test_auto_resumes_an_unfinished_experiment_and_says_so(tmp_path, capsys):
    settings = _settings(tmp_path)
    assert choose_experiment(settings, "auto") is False  # nothing there yet: a new experiment, silently
    assert capsys.readouterr().out == ""
    _leave_experiment(tmp_path / "kws")
    assert choose_experiment(settings, "auto") is True and settings.experiment_name == "kws"
    assert f"Resuming the experiment in {tmp_path / 'kws'}" in capsys.readouterr().out


def test_resume_false_starts_a_new_experiment_in_a_new_folder(tmp_path, capsys):
    """It used to start the new experiment in the same folder, beside the old one."""
    _leave_experiment(tmp_path / "kws")
    _leave_experiment(tmp_path / "kws_2")
    settings = _settings(tmp_path)
    assert choose_experiment(settings, False) is False
    assert experiment_path(settings) == str(tmp_path / "kws_3")
    assert f"starting a new one in {tmp_path / 'kws_3'}" in capsys.readouterr().out


def test_resume_true_needs_an_experiment(tmp_path):
    with pytest.raises(ValueError, match="holds no experiment to restore"):
        choose_experiment(_settings(tmp_path), True)
    with pytest.raises(ValueError, match="resume='yes'"):
        choose_experiment(_settings(tmp_path), "yes")


def test_grids_multiply_the_trials():
    assert trial_count({"a": {"grid_search": [1, 2, 3]}, "b": 4}, num_samples=2) == 6


def _launched(space, **settings):
    """What HPOWrapper.run keeps of a launch: its search space and settings in plain types."""
    return {"search_space": describe_space(space), "num_samples": 2, **settings}


def test_a_launch_with_numpy_numbers_is_kept_and_the_same_launch_resumes(tmp_path):
    """np.logspace values are np.float64, a float YAML's safe dumper refused: HPOWrapper.run failed to start."""
    def space():
        return {"optim.lr": tune.choice(list(np.logspace(-4, -2, 3))), "model.h": tune.grid_search([np.int64(8), 16]),
                "model.tau": tune.uniform(np.float64(0.1), 0.5), "model.gain": np.float32(0.5),
                "model.bias": float("nan"), "model.pads": tune.choice([[0, float("nan")], [1, 2]])}

    settings = _settings(tmp_path)
    save_launch_settings(settings, _launched(space()))
    stored = yaml.safe_load((tmp_path / "kws" / LAUNCH_SETTINGS).read_text())
    assert stored["search_space"]["optim.lr"] == {"choice": [1e-4, 1e-3, 1e-2]}
    assert stored["search_space"]["model.gain"] == 0.5
    (tmp_path / "kws" / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    check_same_experiment(str(tmp_path / "kws"), _launched(space()), start_new="-")  # the same launch (NaN too): no refusal


def test_a_domain_changed_from_randint_to_uniform_is_refused(tmp_path):
    """randint(1, 10) and uniform(1, 10) were described alike, so the change went unnoticed."""
    save_launch_settings(_settings(tmp_path), _launched({"model.h": tune.randint(1, 10), "model.k": tune.qrandint(2, 8, 2)}))
    (tmp_path / "kws" / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    with pytest.raises(ValueError) as refused:
        check_same_experiment(str(tmp_path / "kws"), _launched({"model.h": tune.uniform(1, 10), "model.k": tune.qrandint(2, 8, 2)}),
                              start_new="-")
    assert ("search_space['model.h']: {'randint': {'lower': 1, 'upper': 10}} -> "
            "{'uniform': {'lower': 1, 'upper': 10}}") in str(refused.value)
    assert "model.k" not in str(refused.value)


def test_a_resume_at_another_verbosity_is_refused(tmp_path):
    """Ray resumes with the launched console settings: an experiment launched at verbose 0 has no TrialLines, and
    resumed at verbose 1 the engine left its failures to them, so a failed trial went unreported."""
    save_launch_settings(_settings(tmp_path), _launched({}, verbose=0, storage_path="/a"))
    (tmp_path / "kws" / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    check_same_experiment(str(tmp_path / "kws"), _launched({}, verbose=0, storage_path="/b"), start_new="-")
    with pytest.raises(ValueError, match="verbose: 0 -> 1"):
        check_same_experiment(str(tmp_path / "kws"), _launched({}, verbose=1, storage_path="/a"), start_new="-")
