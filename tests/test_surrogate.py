import math

import pytest
import torch

from nwave_lightning.surrogate import SURROGATES, atan, fast_sigmoid, sigmoid, triangle

X = torch.linspace(-2.0, 2.0, 81, dtype=torch.float64)

# Textbook derivatives written out independently of the library.
ANALYTIC = {
    "fast_sigmoid": (fast_sigmoid(7.0), lambda x: 1.0 / (7.0 * abs(x) + 1.0) ** 2),
    "atan": (atan(3.0), lambda x: 1.5 / (1.0 + (math.pi / 2 * 3.0 * x) ** 2)),
    "sigmoid": (sigmoid(4.0), lambda x: 4.0 * math.exp(-4.0 * x) / (1.0 + math.exp(-4.0 * x)) ** 2),
    "triangle": (triangle(0.8), lambda x: max(0.0, 1.0 - abs(x) / 0.8) / 0.8),
}


@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_forward_is_heaviside_and_backward_is_the_analytic_derivative(name):
    surrogate, derivative = ANALYTIC[name]
    x = X.clone().requires_grad_(True)
    out = surrogate(x)
    assert torch.equal(out.detach(), (X >= 0).to(X.dtype))
    upstream = torch.rand_like(X)
    out.backward(upstream)
    expected = torch.tensor([derivative(v) for v in X.tolist()], dtype=torch.float64) * upstream
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize(
    "surrogate, area",
    # atan, sigmoid and triangle integrate to 1 (a smoothed step of height 1); fast sigmoid to 2 / slope.
    [(atan(3.0), 1.0), (sigmoid(4.0), 1.0), (triangle(0.8), 1.0), (fast_sigmoid(7.0), 2.0 / 7.0)],
)
def test_surrogate_derivative_total_area(surrogate, area):
    x = torch.linspace(-2000.0, 2000.0, 4_000_001, dtype=torch.float64)
    assert float(torch.trapezoid(surrogate.derivative(x), x)) == pytest.approx(area, rel=2e-3)


def test_shape_value_is_mutable_without_rebuilding():
    sg = fast_sigmoid(25.0)
    x = torch.tensor([0.1], requires_grad=True)
    sg(x).backward()
    first = x.grad.clone()
    sg.slope = 5.0
    assert sg.value == 5.0
    x.grad = None
    sg(x).backward()
    assert x.grad.item() == pytest.approx(1 / (5 * 0.1 + 1) ** 2)
    assert first.item() == pytest.approx(1 / (25 * 0.1 + 1) ** 2)


def test_value_captured_at_forward_time():
    sg = atan(2.0)
    x = torch.tensor([0.2], requires_grad=True)
    y = sg(x)
    sg.alpha = 50.0  # a scheduler step between forward and backward must not leak in
    y.backward()
    assert x.grad.item() == pytest.approx(1.0 / (1 + (math.pi / 2 * 2.0 * 0.2) ** 2))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "x", True])
def test_invalid_shape_value_is_rejected_with_the_parameter_name(bad):
    with pytest.raises(ValueError, match="slope="):
        fast_sigmoid(bad)


def test_registry_and_repr():
    assert set(SURROGATES) == {"fast_sigmoid", "atan", "sigmoid", "triangle"}
    assert repr(fast_sigmoid(25.0)) == "FastSigmoid(slope=25.0)"
