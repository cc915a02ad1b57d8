import math

import pytest
import torch

from nwave_lightning.encode import Population


def test_gaussian_fields_by_hand():
    enc = Population(n_fields=3, low=-1.0, high=1.0)  # centres -1, 0, 1; width = spacing = 1
    out = enc(torch.tensor([[[0.5, -1.0]]]))
    g = lambda d: math.exp(-0.5 * d * d)  # noqa: E731
    expected = [g(1.5), g(0.5), g(0.5), g(0.0), g(1.0), g(2.0)]  # channel 0's three fields, then channel 1's
    assert out.shape == (1, 1, 6)
    assert torch.allclose(out.flatten(), torch.tensor(expected))


def test_triangular_fields_by_hand_and_custom_width():
    enc = Population(n_fields=4, low=0.0, high=3.0, shape="triangular", width=2.0)  # centres 0, 1, 2, 3
    out = enc(torch.tensor([[[0.5]]])).flatten()
    assert torch.allclose(out, torch.tensor([0.75, 0.75, 0.25, 0.0]))
    assert enc.out_features(5) == 20


def test_bad_settings():
    with pytest.raises(ValueError, match="n_fields=1 must be an integer >= 2"):
        Population(n_fields=1)
    with pytest.raises(ValueError, match="shape='box' is unknown"):
        Population(n_fields=3, shape="box")
    with pytest.raises(ValueError, match="high=0.0 must be above low=1.0"):
        Population(n_fields=3, low=1.0, high=0.0)
