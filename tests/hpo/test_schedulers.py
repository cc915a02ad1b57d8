"""Tune trial schedulers and search algorithms by name."""

import pytest
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

from nwave_lightning.hpo.schedulers import TUNE_SCHEDULERS, build_search_alg, build_tune_scheduler


@pytest.mark.parametrize(
    "name, cls",
    [("asha", AsyncHyperBandScheduler), ("hyperband", HyperBandScheduler), ("median", MedianStoppingRule),
     ("fifo", FIFOScheduler), ("none", FIFOScheduler)],
)
def test_each_name_builds_its_scheduler(name, cls):
    assert name in TUNE_SCHEDULERS
    assert type(build_tune_scheduler({"name": name}, max_t=7)) is cls
    assert type(build_tune_scheduler(name.upper())) is cls


def test_default_is_asha_counting_epochs():
    scheduler = build_tune_scheduler(None, max_t=12)
    assert isinstance(scheduler, AsyncHyperBandScheduler)
    assert scheduler._max_t == 12 and scheduler._time_attr == "training_iteration"


def test_options_reach_the_scheduler():
    asha = build_tune_scheduler({"name": "asha", "grace_period": 2, "reduction_factor": 3}, max_t=9)
    assert [rung for rung, _ in asha._brackets[0]._rungs] == [6, 2] and asha._reduction_factor == 3
    median = build_tune_scheduler({"name": "median", "min_samples_required": 2})
    assert median._grace_period == 1 and median._min_samples_required == 2


def test_median_never_pauses_a_trial_to_yield_its_slot():
    # Ray's default pauses a trial at every epoch while others wait and samples are too few; a paused
    # trial restarts from its checkpoint, so a train_fn that ignores ctx.checkpoint never finished.
    from ray.tune.experiment import Trial

    class Controller:
        def __init__(self, trials):
            self.trials = trials

        def get_live_trials(self):
            return self.trials

    running, waiting = Trial("f", stub=True, trial_id="a"), Trial("f", stub=True, trial_id="b")
    running.set_status(Trial.RUNNING)
    controller = Controller([running, waiting])  # `waiting` is PENDING: no free slot for it
    median = build_tune_scheduler("median")
    median.set_search_properties("val_acc", "max")
    for epoch in (1, 2, 3):
        action = median.on_trial_result(controller, running, {"training_iteration": epoch, "val_acc": 0.5})
        assert action == median.CONTINUE
    ray_default = MedianStoppingRule(time_attr="training_iteration", metric="val_acc", mode="max", grace_period=1)
    assert ray_default.on_trial_result(controller, running, {"training_iteration": 1, "val_acc": 0.5}) == "PAUSE"


def test_grace_period_longer_than_training_extends_max_t():
    # the vendor SDK's grace_period=5 with 3 epochs: no rung is reached, nothing stops early
    assert build_tune_scheduler({"name": "asha", "grace_period": 5}, max_t=3)._max_t == 5


def test_errors_list_supported_names():
    with pytest.raises(ValueError, match=r"'pbt' is not supported.*asha"):
        build_tune_scheduler("pbt")
    with pytest.raises(ValueError, match="takes no options"):
        build_tune_scheduler({"name": "fifo", "grace_period": 1})
    with pytest.raises(ValueError, match="invalid options"):
        build_tune_scheduler({"name": "asha", "bogus": 1})


def test_search_algorithms():
    assert build_search_alg(None) is None and build_search_alg("random") is None
    assert type(build_search_alg({"name": "random", "seed": 3})).__name__ == "BasicVariantGenerator"
    assert type(build_search_alg("optuna")).__name__ == "OptunaSearch"
    with pytest.raises(ValueError, match="cannot expand grid"):
        build_search_alg("optuna", param_space={"model.x": tune.grid_search([1, 2])})
    with pytest.raises(ValueError, match="not supported"):
        build_search_alg("bayes")


def test_hyperopt_needs_its_package():
    try:
        import hyperopt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install hyperopt"):
            build_search_alg("hyperopt")
    else:
        assert type(build_search_alg("hyperopt")).__name__ == "HyperOptSearch"
