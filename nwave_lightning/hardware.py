"""Chip constants of the H1v1 / H1v2 cores and the checks that use them.

Every number of the hardware model (``docs/hardware-model.md``) lives in
one frozen :class:`ChipSpec` per chip. A user with a datasheet builds their own
spec with :func:`dataclasses.replace` and passes it to the layers; nothing else
in the framework hard-codes a chip number.

Example:
    >>> from nwave_lightning.hardware import H1V2
    >>> H1V2.weight_range
    (-1.66, 1.66)
    >>> import dataclasses
    >>> custom = dataclasses.replace(H1V2, synaptic_gain=0.3)
    >>> custom.synaptic_gain
    0.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "ChipSpec",
    "H1V1",
    "H1V2",
    "decay_factor",
    "efficacy",
    "validate_taus",
    "weights_out_of_range",
]


@dataclass(frozen=True)
class ChipSpec:
    """Constants of one neuromorphic core.

    Attributes:
        name: Chip name used in messages (``"H1v1"``, ``"H1v2"``).
        weight_range: Smallest and largest storable synaptic weight.
        synaptic_gain: ``g``: charge one unit weight injects per spike.
        efficacy: ``"linear"`` (current = g * w) or ``"exponential"``
            (current = g * sign(w) * (exp(kappa |w|) - 1) / (exp(kappa) - 1)).
        kappa: Curvature of the exponential efficacy map (``None`` if linear).
        tau_syn: Time constant of the first-order synaptic current in seconds;
            ``None`` for a delta synapse.
        threshold: Firing threshold ``theta`` of the neuron.
        tau_range: Smallest and largest membrane time constant in seconds.
        sign_block: Number of consecutive weight rows that share one sign.
        frontend_gain: Gain of the analog input encoder.
        frontend_x_max: Input value at which the encoder saturates.
    """

    name: str
    weight_range: tuple[float, float]
    synaptic_gain: float
    efficacy: Literal["linear", "exponential"]
    kappa: float | None
    tau_syn: float | None
    threshold: float
    tau_range: tuple[float, float]
    sign_block: int
    frontend_gain: float
    frontend_x_max: float = 1.0

    def __post_init__(self) -> None:
        low, high = self.weight_range
        if not low < high:
            raise ValueError(f"ChipSpec {self.name}: weight_range={self.weight_range} must be (low, high) with low < high.")
        if self.efficacy not in ("linear", "exponential"):
            raise ValueError(f"ChipSpec {self.name}: efficacy={self.efficacy!r} must be 'linear' or 'exponential'.")
        if self.efficacy == "exponential" and (self.kappa is None or self.kappa <= 0):
            raise ValueError(f"ChipSpec {self.name}: an exponential efficacy needs kappa > 0, got kappa={self.kappa}.")
        if self.tau_syn is not None and self.tau_syn <= 0:
            raise ValueError(f"ChipSpec {self.name}: tau_syn={self.tau_syn} must be > 0 seconds, or None for a delta synapse.")
        if not 0 < self.tau_range[0] < self.tau_range[1]:
            raise ValueError(f"ChipSpec {self.name}: tau_range={self.tau_range} must be (low, high) with 0 < low < high.")
        if self.sign_block < 1:
            raise ValueError(f"ChipSpec {self.name}: sign_block={self.sign_block} must be a positive number of rows.")
        if self.synaptic_gain <= 0 or self.threshold <= 0 or self.frontend_gain <= 0 or self.frontend_x_max <= 0:
            raise ValueError(
                f"ChipSpec {self.name}: synaptic_gain, threshold, frontend_gain and frontend_x_max must be > 0."
            )

    @property
    def weight_limit(self) -> float:
        """Largest weight magnitude storable with either sign."""
        return min(-self.weight_range[0], self.weight_range[1])


H1V1 = ChipSpec(
    name="H1v1",
    weight_range=(-1.0, 1.0),
    synaptic_gain=1.0,
    efficacy="exponential",
    kappa=2.0,
    tau_syn=5e-3,
    threshold=1.0,
    tau_range=(1e-3, 500e-3),
    sign_block=1,
    frontend_gain=1.0,
)

H1V2 = ChipSpec(
    name="H1v2",
    weight_range=(-1.66, 1.66),
    synaptic_gain=0.25,
    efficacy="linear",
    kappa=None,
    tau_syn=None,
    threshold=1.0,
    tau_range=(1e-3, 500e-3),
    sign_block=1,
    frontend_gain=1.0,
)


def decay_factor(tau: torch.Tensor | float, dt: float) -> torch.Tensor:
    """Per-step decay ``exp(-dt / tau)`` of a first-order filter.

    Example:
        >>> round(float(decay_factor(25e-3, 1e-3)), 6)
        0.960789
    """
    tau = torch.as_tensor(tau, dtype=torch.float64)
    return torch.exp(-dt / tau)


def validate_taus(taus, dt: float, n_neurons: int, chip: ChipSpec, owner: str) -> torch.Tensor:
    """Check membrane time constants and the time step against the chip.

    Args:
        taus: Scalar or ``(n_neurons,)`` tensor/sequence of time constants in seconds.
        dt: Simulation step in seconds.
        n_neurons: Width of the layer the taus belong to.
        chip: The chip whose ``tau_range`` applies.
        owner: Name of the module, used in error messages.

    Returns:
        A float32 tensor of shape ``(n_neurons,)``.

    Raises:
        ValueError: naming ``owner``, the offending value and the allowed range.

    Example:
        >>> validate_taus(20e-3, 1e-3, 3, H1V2, "H1v2Layer").shape
        torch.Size([3])
    """
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"{owner}: dt={dt!r} must be a positive number of seconds (e.g. dt=1e-3).")
    try:
        tau_tensor = torch.as_tensor(taus, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{owner}: taus={taus!r} must be a number or a sequence/tensor of numbers in seconds.") from err
    if tau_tensor.dim() == 0:
        tau_tensor = tau_tensor.expand(n_neurons).clone()
    if tau_tensor.shape != (n_neurons,):
        raise ValueError(
            f"{owner}: taus has shape {tuple(tau_tensor.shape)}, expected a scalar or shape ({n_neurons},) "
            f"(one time constant per neuron)."
        )
    low, high = chip.tau_range
    if not torch.isfinite(tau_tensor).all():
        raise ValueError(f"{owner}: taus contains non-finite values; allowed range on {chip.name} is [{low}, {high}] s.")
    bad = (tau_tensor < low) | (tau_tensor > high)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise ValueError(
            f"{owner}: taus[{index}]={float(tau_tensor[index]):.6g} s is outside the {chip.name} range "
            f"[{low}, {high}] s. Choose time constants inside the range (values are in seconds, e.g. 20e-3)."
        )
    if (tau_tensor <= dt).any():
        index = int((tau_tensor <= dt).nonzero()[0])
        raise ValueError(
            f"{owner}: dt={dt} s must be smaller than every tau, but taus[{index}]={float(tau_tensor[index]):.6g} s. "
            f"Use a smaller dt or larger taus (0 < dt < tau)."
        )
    return tau_tensor.to(torch.float32)


def efficacy(weight: torch.Tensor, chip: ChipSpec) -> torch.Tensor:
    """Current injected per presynaptic spike by a weight, ``g * f(w)``.

    Linear chips return ``g * w``; exponential chips
    ``g * sign(w) * (exp(kappa |w|) - 1) / (exp(kappa) - 1)``, which is 0 at 0,
    ``g`` at ``|w| = 1`` and differentiable everywhere.

    Example:
        >>> float(efficacy(torch.tensor(1.0), H1V1))
        1.0
        >>> float(efficacy(torch.tensor(2.0), H1V2))
        0.5
    """
    if chip.efficacy == "linear":
        return chip.synaptic_gain * weight
    kappa = chip.kappa
    return chip.synaptic_gain * torch.sign(weight) * torch.expm1(kappa * weight.abs()) / math.expm1(kappa)


def weights_out_of_range(weight: torch.Tensor, chip: ChipSpec) -> int:
    """Number of entries of ``weight`` outside ``chip.weight_range``.

    Example:
        >>> weights_out_of_range(torch.tensor([0.0, 1.5, -2.0]), H1V1)
        2
    """
    low, high = chip.weight_range
    w = weight.detach()
    return int(((w < low) | (w > high)).sum())
