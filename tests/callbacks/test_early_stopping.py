import math

import pytest

from nwave_lightning.callbacks import NWaveEarlyStopping
from nwave_lightning.callbacks.examples import MovingAverageEarlyStopping

from ._tiny import TinyModule, loaders, make_trainer, scalars

EARLY_KEYS = ("early_stop_metric_value", "early_stop_target_value", "early_stop_bad_epochs", "early_stop_best_metric", "early_stop_triggered")


def run(tmp_path, callback, scores, max_epochs=None, **trainer_kwargs):
    module = TinyModule(scores=scores)
    trainer = make_trainer(tmp_path, max_epochs or len(scores), [callback], **trainer_kwargs)
    trainer.fit(module, *loaders())
    return trainer


@pytest.mark.parametrize("alias", ["patience", "plateau", "no_improve", "no-improve", "PLATEAU"])
def test_aliases(alias):
    assert NWaveEarlyStopping(policy=alias).policy == "patience"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"policy": "sometimes"}, r"policy='sometimes' is unknown"),
        ({"policy": "threshold"}, r"policy='threshold' needs value"),
        ({"mode": "maximum"}, r"mode='maximum' is unknown"),
        ({"patience": 0}, r"patience=0 must be an integer >= 1"),
        ({"min_delta": -1e-3}, r"min_delta=-0.001 must be a finite number >= 0.0"),
        ({"metric": ""}, r"metric='' must be the name of a logged key"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NWaveEarlyStopping(**kwargs)


def test_decisions_by_hand():
    low = NWaveEarlyStopping("threshold", metric="val_loss", mode="min", value=0.2)
    assert [low.should_stop(v, 1) for v in (0.5, 0.2, 0.1, math.nan)] == [False, True, True, False]
    high = NWaveEarlyStopping("threshold", metric="val_acc", mode="max", value=0.9)
    assert [high.should_stop(v, 1) for v in (0.5, 0.9)] == [False, True]
    pat = NWaveEarlyStopping("patience", mode="min", patience=2, min_delta=0.1)
    # 1.0 best; 0.95 is not better by > 0.1 (bad 1); 0.85 is (reset); nan, 0.8 bad (2) -> stop
    verdicts = [pat.should_stop(v, e) for e, v in enumerate([1.0, 0.95, 0.85, math.nan, 0.8], start=1)]
    assert verdicts == [False, False, False, False, True]
    assert (pat.best, pat.bad_epochs) == (0.85, 2)


def test_threshold_stops_at_the_first_epoch_reaching_the_target(tmp_path):
    stop = NWaveEarlyStopping("threshold", metric="val_score", mode="max", value=0.8)
    trainer = run(tmp_path, stop, [0.1, 0.5, 0.85, 0.9, 0.95, 0.99])
    assert trainer.current_epoch == 3 and stop.stopped_epoch == 3
    logged = scalars(trainer.log_dir)
    assert [v for _, v in logged["early_stop_triggered"]] == [0.0, 0.0, 1.0]
    assert [v for _, v in logged["early_stop_metric_value"]] == pytest.approx([0.1, 0.5, 0.85])
    assert [v for _, v in logged["early_stop_target_value"]] == pytest.approx([0.8] * 3)
    assert "early_stop_bad_epochs" not in logged and "early_stop_best_metric" not in logged


def test_min_epoch_delays_the_stop(tmp_path):
    stop = NWaveEarlyStopping("threshold", metric="val_score", mode="max", value=0.8, min_epoch=5)
    trainer = run(tmp_path, stop, [0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], logger=False)
    assert trainer.current_epoch == 5 and stop.stopped_epoch == 5


def test_patience_stops_after_patience_bad_epochs(tmp_path):
    stop = NWaveEarlyStopping("no-improve", metric="val_score", mode="min", patience=2)
    trainer = run(tmp_path, stop, [1.0, 0.9, 0.95, 0.92, 0.5, 0.4, 0.3])
    assert trainer.current_epoch == 4 and stop.stopped_epoch == 4
    logged = scalars(trainer.log_dir)
    assert [v for _, v in logged["early_stop_bad_epochs"]] == [0, 0, 1, 2]
    assert [v for _, v in logged["early_stop_best_metric"]] == pytest.approx([1.0, 0.9, 0.9, 0.9])
    assert [v for _, v in logged["early_stop_triggered"]] == [0, 0, 0, 1]
    assert "early_stop_target_value" not in logged


def test_none_policy_runs_to_the_end_and_logs_nothing(tmp_path):
    trainer = run(tmp_path, NWaveEarlyStopping("none", metric="val_score"), [0.1, 0.2, 0.3])
    assert trainer.current_epoch == 3
    logged = scalars(trainer.log_dir)
    assert not any(key in logged for key in EARLY_KEYS)
    assert "val_score" in logged


def test_missing_metric_lists_the_available_keys(tmp_path):
    with pytest.raises(ValueError, match=r"metric='val_recall' was not logged; available keys: \[.*'val_loss'.*\]"):
        run(tmp_path, NWaveEarlyStopping("patience", metric="val_recall"), [0.1, 0.2], logger=False)


def test_decision_is_reduced_across_ranks(tmp_path, monkeypatch):
    calls = []

    def another_rank_wants_to_stop(decision, all=True):
        calls.append((decision, all))
        return True

    stop = NWaveEarlyStopping("patience", metric="val_score", mode="max", patience=5)
    module = TinyModule(scores=[0.1, 0.2, 0.3])
    trainer = make_trainer(tmp_path, 3, [stop], logger=False)
    monkeypatch.setattr(trainer.strategy, "reduce_boolean_decision", another_rank_wants_to_stop)
    trainer.fit(module, *loaders())
    assert calls == [(False, False)]  # local verdict False, "any rank" reduction
    assert trainer.current_epoch == 1 and stop.triggered


def test_only_epochs_with_validation_count(tmp_path):
    stop = NWaveEarlyStopping("patience", metric="val_score", mode="max", patience=2)
    # validation every 2nd epoch: scores of epochs 2, 4, 6 are read; 4 and 6 do not improve on 2
    trainer = run(tmp_path, stop, [0.0, 0.5, 0.0, 0.4, 0.0, 0.3, 0.0, 0.0], check_val_every_n_epoch=2, logger=False)
    assert stop.stopped_epoch == 6 and trainer.current_epoch == 6


def test_custom_decision_subclass_in_training(tmp_path):
    stop = MovingAverageEarlyStopping(window=2, metric="val_score", mode="max", patience=1)
    # moving averages: 0.2, 0.5, 0.7, 0.6 -> the 4th epoch does not improve -> stop
    trainer = run(tmp_path, stop, [0.2, 0.8, 0.6, 0.6, 0.9, 0.9], logger=False)
    assert stop.stopped_epoch == 4 and stop.history == pytest.approx([0.6, 0.6])
    restored = MovingAverageEarlyStopping(window=2, metric="val_score", mode="max", patience=1)
    restored.load_state_dict(stop.state_dict())
    assert restored.state_dict() == stop.state_dict()


def test_state_dict_round_trip_and_from_config():
    stop = NWaveEarlyStopping.from_config(
        {"policy": "plateau", "metric": "val_acc", "mode": "max", "min_epoch": 8, "value": 0.9, "patience": 4, "min_delta": 1e-3}
    )
    assert (stop.policy, stop.patience, stop.min_epoch) == ("patience", 4, 8)
    stop.should_stop(0.5, 1), stop.should_stop(0.4, 2)
    other = NWaveEarlyStopping("patience", metric="val_acc", mode="max")
    other.load_state_dict(stop.state_dict())
    assert (other.best, other.bad_epochs) == (0.5, 1)
    assert NWaveEarlyStopping.from_config(None) is None
    assert NWaveEarlyStopping.from_config({"policy": "none", "metric": "val_acc"}) is None
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['wait'\]"):
        NWaveEarlyStopping.from_config({"policy": "patience", "wait": 3})
