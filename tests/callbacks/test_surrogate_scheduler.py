import math

import pytest

from nwave_lightning.callbacks import SurrogateScheduler
from nwave_lightning.callbacks.examples import WarmupCosineSurrogate

from ._tiny import TinyModule, loaders, make_trainer, scalars


def values(sched, n):
    return [sched.scheduled_value(step) for step in range(n)]


def test_constant_and_linear_by_hand():
    assert values(SurrogateScheduler(start_value=7.0), 3) == [7.0, 7.0, 7.0]
    linear = SurrogateScheduler("linear", start_value=10.0, end_value=20.0, total_steps=4)
    assert values(linear, 6) == pytest.approx([10.0, 12.5, 15.0, 17.5, 20.0, 20.0])
    down = SurrogateScheduler("linear", start_value=20.0, end_value=10.0, total_steps=2)
    assert values(down, 3) == pytest.approx([20.0, 15.0, 10.0])


def test_cosine_is_a_half_cosine_then_holds():
    sched = SurrogateScheduler("cosine", start_value=10.0, end_value=30.0, total_steps=4)
    # end + (start - end) * (1 + cos(pi s / 4)) / 2 for s = 0..4
    expected = [10.0, 20.0 - 10.0 * math.cos(math.pi / 4), 20.0, 20.0 + 10.0 * math.cos(math.pi / 4), 30.0, 30.0]
    assert values(sched, 6) == pytest.approx(expected)


def test_exp_and_step_powers_of_gamma():
    assert values(SurrogateScheduler("exp", start_value=8.0, gamma=0.5), 4) == [8.0, 4.0, 2.0, 1.0]
    step = SurrogateScheduler("step", start_value=8.0, gamma=0.5, step_size=3)
    assert values(step, 7) == [8.0, 8.0, 8.0, 4.0, 4.0, 4.0, 2.0]
    # the schedule holds after total_steps
    assert values(SurrogateScheduler("exp", start_value=1.0, gamma=2.0, total_steps=2), 4) == [1.0, 2.0, 4.0, 4.0]


def test_exp_stops_at_end_value_only_in_its_direction():
    grow = SurrogateScheduler("exp", start_value=10.0, gamma=2.0, end_value=30.0)
    assert values(grow, 4) == [10.0, 20.0, 30.0, 30.0]
    decay = SurrogateScheduler("step", start_value=10.0, gamma=0.5, step_size=1, end_value=3.0)
    assert values(decay, 4) == [10.0, 5.0, 3.0, 3.0]
    # the vendor SDK's HPO grid mixes gamma=0.5 with end_value=20 > start: end_value is never reached
    away = SurrogateScheduler("exp", start_value=10.0, gamma=0.5, end_value=20.0)
    assert values(away, 3) == [10.0, 5.0, 2.5]


def test_clip_to_min_and_max():
    sched = SurrogateScheduler("exp", start_value=8.0, gamma=0.5, min_value=3.0, max_value=6.0)
    assert values(sched, 4) == [6.0, 4.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"policy": "warp"}, r"policy='warp' is unknown"),
        ({"policy": "linear"}, r"policy='linear' needs end_value"),
        ({"start_value": -1.0}, r"start_value=-1.0 must be a finite number > 0"),
        ({"total_steps": 0}, r"total_steps=0 must be an integer >= 1"),
        ({"gamma": 0.0}, r"gamma=0.0 must be a finite number > 0"),
        ({"min_value": 5.0, "max_value": 2.0}, r"min_value=5.0 is larger than max_value=2.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SurrogateScheduler(**kwargs)


def test_non_positive_schedule_value_is_an_error():
    class Broken(SurrogateScheduler):
        def value_at(self, step):
            return 1.0 - step

    with pytest.raises(ValueError, match=r"gives 0.0 at step 1.*min_value"):
        Broken().scheduled_value(1)


def test_from_config_seed_dicts():
    assert SurrogateScheduler.from_config(None) is None
    assert SurrogateScheduler.from_config({}) is None
    assert SurrogateScheduler.from_config({"policy": "none"}) is None
    cfg = {"policy": "cosine", "start_value": 10.0, "end_value": 20.0, "total_steps": 60, "step_size": 5, "gamma": 0.8}
    sched = SurrogateScheduler.from_config(cfg)
    assert (sched.policy, sched.total_steps, sched.end_value) == ("cosine", 60, 20.0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['slope'\].*'start_value'"):
        SurrogateScheduler.from_config({"policy": "constant", "slope": 3})
    # a subclass's extra argument is accepted by the inherited from_config
    assert WarmupCosineSurrogate.from_config({"warmup_steps": 2, "end_value": 5.0}).warmup_steps == 2


def test_state_dict_round_trip():
    sched = SurrogateScheduler("linear", start_value=1.0, end_value=2.0)
    sched.step, sched.value = 3, 1.03
    other = SurrogateScheduler("linear", start_value=1.0, end_value=2.0)
    other.load_state_dict(sched.state_dict())
    assert (other.step, other.value) == (3, 1.03)


def test_training_sees_the_schedule_and_tensorboard_logs_it(tmp_path):
    module = TinyModule()
    sched = SurrogateScheduler("linear", start_value=10.0, end_value=20.0, total_steps=2)
    trainer = make_trainer(tmp_path, 3, [sched])
    trainer.fit(module, *loaders())
    # both layers' surrogates (fast_sigmoid and atan) got the value before the epoch's first step
    assert module.surrogate_seen == [(10.0, 10.0), (15.0, 15.0), (20.0, 20.0)]
    logged = scalars(trainer.log_dir)["surrogate_value"]
    assert [v for _, v in logged] == [10.0, 15.0, 20.0]


def test_custom_policy_subclass_in_training(tmp_path):
    module = TinyModule()
    sched = WarmupCosineSurrogate(warmup_steps=1, start_value=4.0, end_value=8.0, total_steps=2)
    trainer = make_trainer(tmp_path, 4, [sched], logger=False)
    trainer.fit(module, *loaders())
    assert [a for a, _ in module.surrogate_seen] == pytest.approx([4.0, 4.0, 6.0, 8.0])


def test_module_without_surrogates_is_refused(tmp_path):
    import lightning.pytorch as pl
    import torch

    class Plain(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

    with pytest.raises(ValueError, match="contains no surrogate"):
        SurrogateScheduler().setup(None, Plain(), "fit")
