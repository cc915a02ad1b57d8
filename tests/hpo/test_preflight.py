"""Checks before launch: every problem in one error, before Ray or any trial starts."""

import os

import pytest
from ray import tune

from nwave_lightning.hpo import HPOWrapper
from nwave_lightning.hpo.preflight import PreflightError, metric_problems, search_space_problems

from ._toys import build_toy_acc, build_toy_data, build_toy_loss, build_toy_model


@pytest.mark.parametrize(("entry", "expected"), [
    ({"unifrom": [0.1, 0.2]}, "unknown domain 'unifrom' (did you mean 'uniform'?)"),
    ({"uniform": [0.2, 0.1]}, "lower=0.2 must be < upper=0.1"),
    ({"loguniform": [1e-2, 1e-2]}, "lower=0.01 must be < upper=0.01"),
    ({"randint": [1, 4.5]}, "randint bounds must be integers"),
    ({"choice": []}, "choice must be a non-empty list"),
    ({"grid": []}, "grid must be a non-empty list"),
    (tune.uniform(3.0, 1.0), "lower=3.0 must be < upper=1.0"),
])
def test_each_bad_entry_is_named(entry, expected):
    problems = search_space_problems({"model.x": entry})
    assert len(problems) == 1 and "'model.x'" in problems[0] and expected in problems[0]


@pytest.mark.parametrize("entry", [{"uniform": [0.1, 0.2]}, {"randint": [1, 4]}, {"choice": [[8], [16]]}, 0.5,
                                   {"name": "step", "gamma": 0.5}, {"cfg": {"name": "cosine"}}, tune.loguniform(1e-4, 1e-2)])
def test_good_entries_and_fixed_values_pass(entry):
    assert search_space_problems({"model.x": entry}) == []


def test_callback_monitors_are_checked_with_the_metric():
    assert metric_problems("val_acc", ["val_acc"], {"NWaveEarlyStopping": "val_acc"}) == []
    assert metric_problems("best_selected_metric", ["val_acc"]) == []  # added by the trial's reporter


def test_hpo_wrapper_lists_every_problem_before_launch(tmp_path):
    """No Ray session is needed: run() raises before connecting, and no experiment folder appears."""
    hpo = HPOWrapper(
        model_builder=build_toy_model, dataset_builder=build_toy_data, loss_builders={"main": build_toy_loss},
        metric_builders={"acc": build_toy_acc}, metric="val_accc", mode="max", experiment_name="typos",
        storage_path=str(tmp_path / "results"),
    )
    hpo.bind_optimizer_param("lr", {"loguniform": [1e-1, 1e-3]})
    hpo.bind_model_param("gain", {"unifrom": [0.5, 2.0]})
    hpo.bind_loss_param("mian", "correct_rate", 0.3)
    hpo.set_max_failures(-1)
    with pytest.raises(PreflightError) as error:
        hpo.run()
    message = str(error.value)
    for expected in ("5 problem(s)", "['optim.lr']: lower=0.1 must be < upper=0.001", "unknown domain 'unifrom'",
                     "loss.mian.correct_rate: no loss builder named 'mian'", "max_failures=-1",
                     "metric='val_accc' is not a logged key (did you mean 'val_acc'?)"):
        assert expected in message
    assert not os.path.exists(tmp_path / "results")
