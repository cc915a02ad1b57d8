"""HPOWrapper's namespaced config: keys, splitting, LR-scheduler specs, Trainer keywords, unused-binding notes."""

import re

import pytest
from ray import tune

from nwave_lightning.hpo.namespaced import (
    DEFAULT_EPOCHS,
    named_choice_problems,
    flatten_params,
    lr_scheduler_spec,
    namespaced_key,
    split_config,
    trainer_kwargs,
    unused_bindings,
)
from nwave_lightning.training.optim import LR_SCHEDULERS, OPTIMIZERS


def test_scheduler_specs():
    assert lr_scheduler_spec({}) is None
    assert lr_scheduler_spec({"cfg": {"name": "none"}}) is None
    assert lr_scheduler_spec({"cfg": "cosine", "T_max": 5}) == {"name": "cosine", "T_max": 5}
    assert lr_scheduler_spec({"name": "step", "step_size": 2}) == {"name": "step", "step_size": 2}
    with pytest.raises(ValueError, match="has no 'name'"):
        lr_scheduler_spec({"gamma": 0.5})


def test_unsupported_names_list_the_supported_ones():
    problems = named_choice_problems({"optim.name": tune.choice(["adam", "sgd"])}, custom_optimizer=False,
                                     custom_scheduler=False)
    assert len(problems) == 1 and re.search(r"optim.name='sgd'.*\['adam', 'adamax'\].*optimizer_builder", problems[0])
    problems = named_choice_problems({"sched.cfg": tune.choice([{"name": "step", "step_size": 2}, {"name": "onecycle"}])},
                                     custom_optimizer=False, custom_scheduler=False)
    assert len(problems) == 1 and re.search(r"onecycle.*'multistep'.*scheduler_builder", problems[0])
    problems = named_choice_problems({"sched.cfg": tune.choice([{"step_size": 5}])}, custom_optimizer=False,
                                     custom_scheduler=False)
    assert len(problems) == 1 and "has no 'name'" in problems[0] and "'step'" in problems[0]
    # custom builders own their names; every name training/optim builds passes
    assert named_choice_problems({"optim.name": "sgd", "sched.name": "onecycle"}, custom_optimizer=True,
                                 custom_scheduler=True) == []
    assert named_choice_problems({"optim.name": tune.choice(list(OPTIMIZERS)), "optim.lr": tune.uniform(0.1, 0.2),
                                  "sched.cfg": tune.choice([{"name": n} for n in LR_SCHEDULERS])},
                                 custom_optimizer=False, custom_scheduler=False) == []


def test_trainer_kwargs():
    kwargs, unknown = trainer_kwargs({"epochs": 4, "device": "cuda", "seed": 1, "precision": "bf16-mixed", "bogus": 1})
    assert kwargs == {"max_epochs": 4, "accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    assert unknown == ["bogus"]
    assert trainer_kwargs({})[0] == {"max_epochs": DEFAULT_EPOCHS} and DEFAULT_EPOCHS == 10  # the vendor SDK's default
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


def test_split_config_groups_every_namespace():
    cfg = split_config({
        "model.hidden_1": 32,
        "loss.main.correct_rate": 0.3,
        "loss.aux.w": 2.0,
        "metric.recall.positive_class": 1,
        "optim.lr": 1e-3,
        "sched.cfg": {"name": "step", "step_size": 5},
        "nwave.surrogate.policy": "linear",
        "nwave.sign_annealing.alpha_end": 10.0,
        "trainer.epochs": 3,
        "data.train_file": "train.pt",
        "early_stop.policy": "patience",
        "unrelated": 1,
    })
    assert cfg.model == {"hidden_1": 32}
    assert cfg.loss == {"main": {"correct_rate": 0.3}, "aux": {"w": 2.0}}
    assert cfg.metric == {"recall": {"positive_class": 1}}
    assert cfg.optim == {"lr": 1e-3}
    assert cfg.sched == {"cfg": {"name": "step", "step_size": 5}}
    assert cfg.nwave == {"surrogate": {"policy": "linear"}, "sign_annealing": {"alpha_end": 10.0}}
    assert cfg.trainer == {"epochs": 3} and cfg.data == {"train_file": "train.pt"}
    assert cfg.early_stop == {"policy": "patience"} and cfg.other == {"unrelated": 1}


def test_namespaced_key_rejects_unknown_namespace():
    assert namespaced_key("metric", "acc", "num_classes") == "metric.acc.num_classes"
    with pytest.raises(ValueError, match="namespace='modle'"):
        namespaced_key("modle", "x")


def test_flatten_params_accepts_dotted_and_nested_forms():
    flat = flatten_params(
        {"model": {"in_ch": 13}, "loss": {"main": {"w": 1.0}}, "nwave": {"surrogate": {"policy": "exp"}}},
        **{"sched.cfg": {"name": "none"}},
    )
    assert flat == {"model.in_ch": 13, "loss.main.w": 1.0, "nwave.surrogate.policy": "exp", "sched.cfg": {"name": "none"}}
    with pytest.raises(ValueError, match="does not start with a namespace.*e.g. 'model.hidden'"):
        flatten_params({"hidden": 3})
    with pytest.raises(ValueError, match="did you mean 'optim.lr'"):
        flatten_params({"optm.lr": 0.01})
