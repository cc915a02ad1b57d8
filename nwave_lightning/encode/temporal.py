"""Encoders that work along time: ``DeltaModulation`` (level-crossing events) and ``Hold``."""

from __future__ import annotations

import torch

from ._base import Encoder, check_number, check_sequence

__all__ = ["DeltaModulation", "Hold"]


class DeltaModulation(Encoder):
    """Level-crossing events: an "up" or a "down" spike each time the signal moves ``threshold`` from its reference.

    The usual sensor front end of event-driven chips (a delta modulator): the
    reference ``r`` starts at the first sample; at every step ``t``

    * ``x[t] - r >= threshold``: an "up" spike, ``r += threshold``;
    * ``r - x[t] >= threshold``: a "down" spike, ``r -= threshold``;

    at most one event per channel and step (a faster change is followed over
    the next steps, as a 1-bit delta modulator does). The output holds the ``C``
    "up" channels, then the ``C`` "down" channels: ``(B, T, C) -> (B, T, 2 C)``,
    binary. A constant signal is silent, so only changes cost spikes.

    What the frontend then does: nothing: a binary spike train passes the
    non-leaky integrate-and-fire frontend unchanged (gain 1, threshold 1).

    Args:
        threshold: The level step (> 0), in the signal's units.

    Example:
        >>> import torch
        >>> x = torch.tensor([[[0.0], [0.6], [1.3], [1.2], [0.1]]])
        >>> DeltaModulation(threshold=0.5)(x)[0].tolist()
        [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = check_number("DeltaModulation", "threshold", threshold, 0.0, strict=True)

    def out_features(self, in_features: int) -> int:
        return 2 * in_features

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_sequence("DeltaModulation", x)
        # The reference depends on every earlier event, so the steps run in order (T small tensor ops).
        reference = x[:, 0].clone()
        up, down = torch.zeros_like(x), torch.zeros_like(x)
        for t in range(1, x.shape[1]):
            rise = (x[:, t] - reference >= self.threshold).to(x.dtype)
            fall = (reference - x[:, t] >= self.threshold).to(x.dtype)
            reference = reference + self.threshold * (rise - fall)
            up[:, t], down[:, t] = rise, fall
        return torch.cat([up, down], dim=-1)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:g}"


class Hold(Encoder):
    """Repeat every step ``k`` times: ``(B, T, C) -> (B, k T, C)``.

    Slow signals sampled coarsely give the network few steps to integrate; holding
    each sample ``k`` steps (as the digits datamodule holds each image row) gives
    its layers time to respond, at ``k`` times the compute. A padding mask of
    ``T`` steps is held the same way by the losses and metrics (they expand a
    ``(B, T)`` mask to ``(B, k T)``).

    What the frontend then does: it integrates the same value ``v`` for ``k``
    steps, so an analog ``v`` in ``[0, 1]`` gives about ``k v`` spikes per input
    sample instead of ``v``.

    Args:
        k: Steps per input step (>= 1).

    Example:
        >>> import torch
        >>> Hold(2)(torch.tensor([[[1.0], [2.0]]])).flatten().tolist()
        [1.0, 1.0, 2.0, 2.0]
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"Hold: k={k!r} must be a positive integer (steps per input step).")
        self.k = self.steps_factor = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return check_sequence("Hold", x).repeat_interleave(self.k, dim=1)

    def extra_repr(self) -> str:
        return f"k={self.k}"
