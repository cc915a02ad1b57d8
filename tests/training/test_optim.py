"""Optimizers and LR schedulers: seed names, class paths, callables, and clear errors."""

from __future__ import annotations

import functools

import pytest
import torch

from nwave_lightning.training import LR_SCHEDULERS, OPTIMIZERS, build_lr_scheduler, build_optimizer

from ._tiny import fit_and_read, make_module

sched = torch.optim.lr_scheduler


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("Adamax", torch.optim.Adamax)])
def test_named_optimizers(name, cls):
    opt = build_optimizer(_params(), name, lr=0.02, weight_decay=0.1, optimizer_kwargs={"eps": 1e-6})
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["eps"]) == (0.02, 0.1, 1e-6)


def test_dict_keys_win_over_arguments():
    opt = build_optimizer(_params(), {"name": "adam", "lr": 3e-4, "amsgrad": True}, lr=1.0)
    assert opt.param_groups[0]["lr"] == 3e-4 and opt.param_groups[0]["amsgrad"] is True


def test_class_path_class_and_callable():
    opt = build_optimizer(_params(), {"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.9}}, lr=0.5)
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["lr"] == 0.5
    assert type(build_optimizer(_params(), torch.optim.RMSprop, lr=0.1)) is torch.optim.RMSprop
    opt = build_optimizer(_params(), functools.partial(torch.optim.SGD, lr=0.25))
    assert opt.param_groups[0]["lr"] == 0.25


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("sgd", "optimizer='sgd' is not supported; choose one of ['adam', 'adamax']"),
        ({"lr": 1.0}, "needs a 'name' or a 'class_path'"),
        ({"class_path": "torch.optim.NoSuch"}, "cannot be imported"),
        ({"class_path": "torch.nn.Linear"}, "not a torch.optim.Optimizer"),
        ({"name": "adam", "bogus": 1}, "rejected its arguments"),
        (lambda params: "nope", "not a torch.optim.Optimizer"),
        (3, "is not supported"),
    ],
)
def test_optimizer_errors(spec, fragment):
    with pytest.raises(ValueError) as info:
        build_optimizer(_params(), spec, lr=0.1)
    assert fragment in str(info.value)


def _opt():
    return torch.optim.SGD(_params(), lr=1.0)


@pytest.mark.parametrize("spec", [None, "none", {"name": "none"}, {"name": "NONE"}])
def test_no_scheduler(spec):
    assert build_lr_scheduler(_opt(), spec) is None


def test_seed_scheduler_configs_build_the_torch_classes_with_their_parameters():
    plateau = build_lr_scheduler(_opt(), {"name": "plateau", "mode": "min", "factor": 0.3, "patience": 8, "threshold": 1e-3, "min_lr": 1e-6})
    assert isinstance(plateau["scheduler"], sched.ReduceLROnPlateau) and plateau["monitor"] == "val_loss"
    assert (plateau["scheduler"].factor, plateau["scheduler"].patience, plateau["scheduler"].threshold) == (0.3, 8, 1e-3)
    assert plateau["scheduler"].min_lrs == [1e-6]
    step = build_lr_scheduler(_opt(), {"name": "step", "step_size": 10, "gamma": 0.5})["scheduler"]
    assert isinstance(step, sched.StepLR) and (step.step_size, step.gamma) == (10, 0.5)
    cosine = build_lr_scheduler(_opt(), {"name": "cosine", "T_max": 60, "eta_min": 1e-6})["scheduler"]
    assert isinstance(cosine, sched.CosineAnnealingLR) and (cosine.T_max, cosine.eta_min) == (60, 1e-6)
    multi = build_lr_scheduler(_opt(), {"name": "multistep", "milestones": [20, 40], "gamma": 0.3})["scheduler"]
    assert isinstance(multi, sched.MultiStepLR) and sorted(multi.milestones) == [20, 40] and multi.gamma == 0.3
    assert sorted(LR_SCHEDULERS) == ["cosine", "multistep", "none", "plateau", "step"]
    assert sorted(OPTIMIZERS) == ["adam", "adamax"]


def test_cosine_defaults_t_max_to_max_epochs_and_monitor_can_change():
    assert build_lr_scheduler(_opt(), "cosine", max_epochs=7)["scheduler"].T_max == 7
    assert build_lr_scheduler(_opt(), {"name": "plateau", "monitor": "val_acc", "mode": "max"})["monitor"] == "val_acc"


def test_class_path_and_callable_schedulers():
    config = build_lr_scheduler(_opt(), {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.9}})
    assert isinstance(config["scheduler"], sched.ExponentialLR) and config["interval"] == "epoch"
    config = build_lr_scheduler(_opt(), lambda opt: sched.LambdaLR(opt, lambda epoch: 1.0))
    assert isinstance(config["scheduler"], sched.LambdaLR)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("warmup", "not supported; choose one of ['cosine', 'multistep', 'none', 'plateau', 'step']"),
        ({"name": "step", "gamma": 0.5}, "needs ['step_size']"),
        ({"name": "multistep"}, "needs ['milestones']"),
        ("cosine", "needs T_max"),
        ({"gamma": 0.5}, "needs a 'name' or a 'class_path'"),
        ({"name": "step", "step_size": 1, "bogus": 2}, "rejected its arguments"),
    ],
)
def test_scheduler_errors(spec, fragment):
    with pytest.raises(ValueError) as info:
        build_lr_scheduler(_opt(), spec)
    assert fragment in str(info.value)


def test_logged_lr_follows_the_step_schedule(tmp_path):
    module = make_module(lr=0.04, lr_scheduler={"name": "step", "step_size": 1, "gamma": 0.5}, optimizer="adamax")
    fitter, scalars = fit_and_read(tmp_path, module, epochs=3)
    assert scalars["lr"] == pytest.approx({1: 0.04, 2: 0.02, 3: 0.01})
    assert type(fitter.optimizers[0]) is torch.optim.Adamax


def test_plateau_scheduler_steps_on_val_loss(tmp_path):
    module = make_module(lr=0.04, lr_scheduler={"name": "plateau", "factor": 0.5, "patience": 0, "threshold": 10.0})
    _, scalars = fit_and_read(tmp_path, module, epochs=3)
    # threshold=10 (relative) means no epoch counts as an improvement: the lr halves after every epoch but the first
    assert scalars["lr"] == pytest.approx({1: 0.04, 2: 0.02, 3: 0.01})
