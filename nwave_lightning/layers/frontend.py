"""The fixed analog input stage of the H1 cores."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..hardware import H1V1, H1V2, ChipSpec
from ._common import SeedDeviceMixin, check_input, check_width, warn_non_finite_input, resolve_device

__all__ = ["H1v1Frontend", "H1v2Frontend"]


class _H1Frontend(SeedDeviceMixin, nn.Module):
    """Per-channel non-leaky integrate-and-fire encoder with subtractive reset.

    ``A[t] = A[t-1] + gain * clamp(x[t], 0, x_max)``, ``F[t] = H(A[t] - 1)``,
    ``A[t] -= F[t]``. A binary spike train passes through unchanged. The stage
    has no trainable weights and lets no gradient through (it is the input).

    Negative input is clipped to 0, so a signed (e.g. standardised) signal loses
    its negative half: the first negative value warns once per frontend and
    names :class:`~nwave_lightning.encode.OnOff`, the encoder that keeps it.
    """

    default_chip: ChipSpec

    def __init__(self, in_ch: int, device=None, chip: ChipSpec | None = None) -> None:
        super().__init__()
        self.in_ch = check_width(type(self).__name__, "in_ch", in_ch)
        self.chip = chip or self.default_chip
        self.device_flag = device
        self._accumulator: torch.Tensor | None = None
        self._negative_warned = False
        target = resolve_device(device)
        if target is not None:
            self.to(target)

    def prepare(self, collect_metrics: bool = False) -> None:
        """Start a new sequence (called by :func:`prepare_net`)."""
        self._accumulator = None

    def reset_state(self) -> None:
        self._accumulator = None

    def _warn_on_negative(self, x: torch.Tensor) -> None:
        # One check per call until it has warned: a device sync on GPU, cheap beside the layers after it.
        if self._negative_warned or not bool((x < 0).any()):
            return
        self._negative_warned = True
        warnings.warn(
            f"{type(self).__name__}: the input holds negative values (min {float(x.min()):.3g}); the frontend clips "
            f"to [0, {self.chip.frontend_x_max:g}], so the negative half of the signal is lost. For a signed "
            "(e.g. standardised) signal put nwave_lightning.encode.OnOff before it (H1Classifier(encoder=OnOff())), "
            "or map a known range with nwave_lightning.encode.MinMax.",
            stacklevel=4,  # the caller of the module (past nn.Module's call wrappers)
        )

    def _increment(self, x: torch.Tensor) -> torch.Tensor:
        # Float64 accumulation keeps the step and sequence paths bit-identical
        # and avoids drift over long sequences of fractional inputs.
        return self.chip.frontend_gain * x.detach().clamp(0.0, self.chip.frontend_x_max).to(torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, in_ch)`` (one step) or ``(B, T, in_ch)`` (sequence) into spikes."""
        rank = check_input(type(self).__name__, x, self.in_ch, "in_ch")
        warn_non_finite_input(self, x)
        self._warn_on_negative(x)
        if rank == 2:
            if self._accumulator is None or self._accumulator.shape != x.shape:
                self._accumulator = x.new_zeros(x.shape, dtype=torch.float64)
            spikes, self._accumulator = self._advance(self._accumulator, self._increment(x))
            return spikes.to(x.dtype)
        increments = self._increment(x)
        if self.chip.frontend_gain * self.chip.frontend_x_max <= 1.0:
            return self._closed_form(increments).to(x.dtype)
        accumulator = x.new_zeros((x.shape[0], x.shape[2]), dtype=torch.float64)
        out = torch.empty_like(x)
        for t in range(x.shape[1]):
            spikes, accumulator = self._advance(accumulator, increments[:, t])
            out[:, t] = spikes
        return out

    @staticmethod
    def _closed_form(increments: torch.Tensor) -> torch.Tensor:
        # With increments in [0, 1] at most one spike fits in a step, so the subtractive
        # reset keeps A[t] = C[t] - floor(C[t]) for the running sum C, and the spikes up
        # to t number floor(C[t]): F[t] = floor(C[t]) - floor(C[t-1]). Three tensor ops
        # instead of a Python loop over T (a fifth of a small network's training step).
        # Inputs on a grid of 2**-24 (binary spikes, 8-bit or 16-level pixels, torch.rand's
        # float32) make every partial sum exact in float64 for T < 2**29, so this equals the
        # step-by-step loop bit for bit; otherwise the two round differently, which moves a
        # spike by one step only where the running sum lands within ~1e-16 of an integer.
        counts = torch.floor(torch.cumsum(increments, dim=1))
        return torch.diff(counts, dim=1, prepend=counts.new_zeros(counts.shape[0], 1, counts.shape[2]))

    @staticmethod
    def _advance(accumulator: torch.Tensor, increment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        accumulator = accumulator + increment
        spikes = (accumulator >= 1.0).to(accumulator.dtype)
        return spikes, accumulator - spikes

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, chip={self.chip.name}"


class H1v1Frontend(_H1Frontend):
    """Analog input stage of the H1v1 core.

    Example:
        >>> import torch
        >>> f = H1v1Frontend(2)
        >>> f(torch.tensor([[[0.5, 1.0], [0.5, 0.0], [0.5, 1.0]]]))[0].tolist()
        [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    """

    default_chip = H1V1


class H1v2Frontend(_H1Frontend):
    """Analog input stage of the H1v2 core.

    Example:
        >>> import torch
        >>> spikes = (torch.rand(4, 10, 13) < 0.3).float()
        >>> bool((H1v2Frontend(13)(spikes) == spikes).all())
        True
    """

    default_chip = H1V2
