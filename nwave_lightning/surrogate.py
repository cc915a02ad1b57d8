"""Surrogate gradients for the spike non-linearity.

Forward is always the Heaviside step ``H(x)`` of ``x = V - theta``; backward
replaces ``dH/dx`` by a smooth derivative. Each surrogate is a small
``nn.Module`` whose shape parameter (``slope``, ``alpha`` or ``width``) is a
plain attribute: a scheduler changes it between steps without rebuilding the
model, and the Triton kernels receive it as a runtime argument (no recompile).
The generic name of that parameter is :attr:`SurrogateSpike.value`.

Example:
    >>> import torch
    >>> from nwave_lightning.surrogate import fast_sigmoid
    >>> sg = fast_sigmoid(slope=25.0)
    >>> x = torch.tensor([-0.1, 0.0, 0.2], requires_grad=True)
    >>> sg(x)
    tensor([0., 1., 1.], grad_fn=<SpikeFunctionBackward>)
    >>> sg.slope = 10.0   # what a scheduler does
    >>> sg.derivative(torch.tensor(0.0)).item()
    1.0
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "SurrogateSpike",
    "FastSigmoid",
    "ATan",
    "Sigmoid",
    "Triangle",
    "fast_sigmoid",
    "atan",
    "sigmoid",
    "triangle",
    "SURROGATES",
]


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``surrogate.derivative`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: "SurrogateSpike") -> torch.Tensor:
        ctx.save_for_backward(x)
        # The shape value is captured now so that a scheduler changing it
        # between forward and backward cannot mix two surrogates in one step.
        ctx.surrogate_kind = surrogate.kind
        ctx.surrogate_value = surrogate.value
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        derivative = surrogate_derivative(x, ctx.surrogate_kind, ctx.surrogate_value)
        return grad_output * derivative, None


def surrogate_derivative(x: torch.Tensor, kind: str, value: float) -> torch.Tensor:
    """The analytic surrogate derivative ``sg'(x)`` for a surrogate ``kind``.

    Shared by the autograd function, the fast CPU path and the tests, so that
    every backend uses the same formula.
    """
    if kind == "fast_sigmoid":
        return 1.0 / (value * x.abs() + 1.0) ** 2
    if kind == "atan":
        return (value / 2.0) / (1.0 + (math.pi / 2.0 * value * x) ** 2)
    if kind == "sigmoid":
        s = torch.sigmoid(value * x)
        return value * s * (1.0 - s)
    if kind == "triangle":
        return torch.clamp(1.0 - x.abs() / value, min=0.0) / value
    raise ValueError(f"surrogate kind={kind!r} is unknown; choose one of {sorted(SURROGATES)}.")


class SurrogateSpike(nn.Module):
    """Base class: Heaviside forward with a scheduled surrogate derivative.

    Subclasses set :attr:`kind` (a compile-time constant for the kernels) and
    :attr:`param_name` (the public name of the shape value).
    """

    kind: str = ""
    param_name: str = "value"

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    @property
    def value(self) -> float:
        """The shape parameter (slope, alpha or width) as a Python float."""
        return self._value

    @value.setter
    def value(self, new_value: float) -> None:
        if isinstance(new_value, torch.Tensor):
            new_value = float(new_value)
        if isinstance(new_value, bool) or not isinstance(new_value, (int, float)) or not math.isfinite(new_value) or new_value <= 0:
            raise ValueError(
                f"{type(self).__name__}: {self.param_name}={new_value!r} must be a finite number > 0."
            )
        self._value = float(new_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``H(x)``; ``x`` is the membrane minus the threshold."""
        return SpikeFunction.apply(x, self)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate derivative at ``x`` with the current shape value."""
        return surrogate_derivative(x, self.kind, self.value)

    def extra_repr(self) -> str:
        return f"{self.param_name}={self.value}"


class FastSigmoid(SurrogateSpike):
    """``sg'(x) = 1 / (slope * |x| + 1)^2`` (Zenke & Ganguli 2018)."""

    kind = "fast_sigmoid"
    param_name = "slope"

    def __init__(self, slope: float = 25.0) -> None:
        super().__init__(slope)

    @property
    def slope(self) -> float:
        return self.value

    @slope.setter
    def slope(self, new_value: float) -> None:
        self.value = new_value


class ATan(SurrogateSpike):
    """``sg'(x) = (alpha / 2) / (1 + (pi / 2 * alpha * x)^2)`` (Fang et al. 2021)."""

    kind = "atan"
    param_name = "alpha"

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    @property
    def alpha(self) -> float:
        return self.value

    @alpha.setter
    def alpha(self, new_value: float) -> None:
        self.value = new_value


class Sigmoid(SurrogateSpike):
    """``sg'(x) = slope * s * (1 - s)`` with ``s = sigmoid(slope * x)``."""

    kind = "sigmoid"
    param_name = "slope"

    def __init__(self, slope: float = 25.0) -> None:
        super().__init__(slope)

    @property
    def slope(self) -> float:
        return self.value

    @slope.setter
    def slope(self, new_value: float) -> None:
        self.value = new_value


class Triangle(SurrogateSpike):
    """``sg'(x) = max(0, 1 - |x| / width) / width`` (unit area, support ``|x| < width``)."""

    kind = "triangle"
    param_name = "width"

    def __init__(self, width: float = 0.5) -> None:
        super().__init__(width)

    @property
    def width(self) -> float:
        return self.value

    @width.setter
    def width(self, new_value: float) -> None:
        self.value = new_value


def fast_sigmoid(slope: float = 25.0) -> FastSigmoid:
    """Fast-sigmoid surrogate (snnTorch's ``fast_sigmoid``).

    Example:
        >>> fast_sigmoid(slope=25.0)
        FastSigmoid(slope=25.0)
    """
    return FastSigmoid(slope)


def atan(alpha: float = 2.0) -> ATan:
    """Arctangent surrogate (snnTorch's ``atan``, SpikingJelly's ``ATan``).

    Example:
        >>> atan(alpha=2.0)
        ATan(alpha=2.0)
    """
    return ATan(alpha)


def sigmoid(slope: float = 25.0) -> Sigmoid:
    """Logistic-sigmoid surrogate.

    Example:
        >>> sigmoid(slope=5.0)
        Sigmoid(slope=5.0)
    """
    return Sigmoid(slope)


def triangle(width: float = 0.5) -> Triangle:
    """Triangular (piecewise-linear) surrogate.

    Example:
        >>> triangle(width=0.5)
        Triangle(width=0.5)
    """
    return Triangle(width)


SURROGATES = {"fast_sigmoid": FastSigmoid, "atan": ATan, "sigmoid": Sigmoid, "triangle": Triangle}
