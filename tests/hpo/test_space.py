"""Plain-YAML search spaces and Ray Tune domains."""

import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from nwave_lightning.hpo.space import domain_values, is_domain, parse_domain, parse_search_space, upper_bound


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
    assert is_domain(space["model.hidden"]) and not is_domain(space["sched.cfg"])
    assert is_domain({"choice": [1]}) and not is_domain({"choice": [1], "seed": 0})


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
