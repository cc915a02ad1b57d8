"""Namespaced configs and plain-YAML search spaces."""

import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from nwave_lightning.hpo.space import (
    domain_values,
    flatten_params,
    is_tunable,
    namespaced_key,
    parse_domain,
    parse_search_space,
    split_config,
    upper_bound,
)


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
    with pytest.raises(ValueError, match="does not start with a namespace"):
        flatten_params({"hidden": 3})


@pytest.mark.parametrize(
    "spec, cls, check",
    [
        ({"choice": [32, 64]}, Categorical, lambda d: d.categories == [32, 64]),
        ({"uniform": [0.1, 0.5]}, Float, lambda d: (d.lower, d.upper) == (0.1, 0.5)),
        ({"loguniform": [1e-4, 1e-2]}, Float, lambda d: type(d.sampler).__name__ == "_LogUniform"),
        ({"randint": [1, 5]}, Integer, lambda d: (d.lower, d.upper) == (1, 5)),
        ({"quniform": {"lower": 0.0, "upper": 1.0, "q": 0.25}}, Float, lambda d: d.sampler.q == 0.25),
    ],
)
def test_yaml_domains_become_ray_domains(spec, cls, check):
    domain = parse_domain(spec, "k")
    assert isinstance(domain, cls) and check(domain)
    for _ in range(20):  # samples stay inside the declared domain
        value = domain.sample()
        if hasattr(domain, "categories"):
            assert value in domain.categories
        else:
            assert domain.lower <= value <= domain.upper


def test_grid_and_fixed_values():
    space = parse_search_space({
        "model.hidden": {"grid": [8, 16]},
        "sched.cfg": {"name": "step", "gamma": 0.5},  # a dict that is not a domain stays fixed
        "trainer.epochs": 3,
    })
    assert space["model.hidden"] == tune.grid_search([8, 16])
    assert space["sched.cfg"] == {"name": "step", "gamma": 0.5} and space["trainer.epochs"] == 3
    assert is_tunable(space["model.hidden"]) and not is_tunable(space["sched.cfg"])


def test_bad_domain_arguments_name_the_key():
    with pytest.raises(ValueError, match=r"search_space\['optim.lr'\].*loguniform"):
        parse_domain({"loguniform": "big"}, "optim.lr")
    with pytest.raises(ValueError, match="non-empty list"):
        parse_domain({"choice": []}, "model.x")


def test_domain_values_and_upper_bound():
    assert domain_values(tune.choice([1, 2])) == [1, 2]
    assert domain_values(tune.uniform(0, 1)) is None
    assert domain_values(7) == [7]
    assert upper_bound(tune.choice([3, 10, 5])) == 10
    assert upper_bound(tune.randint(2, 9)) == 9
    assert upper_bound(12) == 12 and upper_bound("x") is None
