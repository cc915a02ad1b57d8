"""Optimizer / LR-scheduler specs, Trainer keywords and unused-binding notes."""

import pytest
from ray import tune

from nwave_lightning.hpo.builders import (
    SUPPORTED_LR_SCHEDULERS,
    SUPPORTED_OPTIMIZERS,
    check_named_choices,
    lr_scheduler_spec,
    optimizer_spec,
    trainer_kwargs,
    unused_bindings,
)


def test_optimizer_and_scheduler_specs():
    assert optimizer_spec({}) == {"name": "adam"}
    assert optimizer_spec({"name": "AdaMax", "lr": 0.1}) == {"name": "adamax", "lr": 0.1}
    assert lr_scheduler_spec({}) is None
    assert lr_scheduler_spec({"cfg": {"name": "none"}}) is None
    assert lr_scheduler_spec({"cfg": "cosine", "T_max": 5}) == {"name": "cosine", "T_max": 5}
    assert lr_scheduler_spec({"name": "step", "step_size": 2}) == {"name": "step", "step_size": 2}
    with pytest.raises(ValueError, match="has no 'name'"):
        lr_scheduler_spec({"gamma": 0.5})


def test_unsupported_names_list_the_supported_ones():
    with pytest.raises(ValueError, match=r"optim.name='sgd'.*\['adam', 'adamax'\].*optimizer_builder"):
        check_named_choices({"optim.name": tune.choice(["adam", "sgd"])}, custom_optimizer=False, custom_scheduler=False)
    with pytest.raises(ValueError, match=r"onecycle.*'multistep'.*scheduler_builder"):
        check_named_choices(
            {"sched.cfg": tune.choice([{"name": "step", "step_size": 2}, {"name": "onecycle"}])},
            custom_optimizer=False, custom_scheduler=False,
        )
    # custom builders own their names
    check_named_choices({"optim.name": "sgd", "sched.name": "onecycle"}, custom_optimizer=True, custom_scheduler=True)
    check_named_choices({"optim.name": tune.choice(list(SUPPORTED_OPTIMIZERS)),
                         "sched.cfg": tune.choice([{"name": n} for n in SUPPORTED_LR_SCHEDULERS])},
                        custom_optimizer=False, custom_scheduler=False)


def test_trainer_kwargs():
    kwargs, unknown = trainer_kwargs({"epochs": 4, "device": "cuda", "seed": 1, "precision": "bf16-mixed", "bogus": 1})
    assert kwargs == {"max_epochs": 4, "accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    assert unknown == ["bogus"]
    with pytest.raises(ValueError, match="trainer.device='tpu9'"):
        trainer_kwargs({"device": "tpu9"})


def test_unused_bindings_are_named():
    notes = unused_bindings(
        ["loss.main.w", "loss.aux.w", "metric.f1.beta", "metric.acc.num_classes", "nwave.surrogate.policy",
         "nwave.annealing.x", "trainer.bogus", "trainer.logger", "trainer.gradient_clip_val"],
        loss_builders={"main": None, "extra": None}, metric_builders={"acc": None}, default_train_fn=True,
    )
    text = "\n".join(notes)
    assert "loss.aux.w: no loss builder named 'aux'" in text
    assert "metric.f1.beta: no metric builder named 'f1'" in text
    assert "nwave.annealing.x" in text and "trainer.bogus" in text and "trainer.logger: ignored" in text
    assert "loss builder 'extra': built but unused" in text
    assert len(notes) == 6
