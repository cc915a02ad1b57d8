"""Per-value analog encoders: ``OnOff`` (signed values) and ``MinMax`` (a known range)."""

from __future__ import annotations

from typing import Sequence, Union

import torch

from ._base import Encoder, check_number, check_sequence

__all__ = ["MinMax", "OnOff"]


class OnOff(Encoder):
    """A signed value into two non-negative rate channels: ``on = relu(x) / scale``, ``off = relu(-x) / scale``.

    The output holds the ``C`` "on" channels first, then the ``C`` "off"
    channels: ``(B, T, C) -> (B, T, 2 C)``. This is the encoder for standardised
    (zero-mean) signals: the chip's frontend clips its input to ``[0, x_max]``
    (``x_max = 1`` on H1v1 and H1v2), so a signed signal fed to it directly loses
    its negative half.

    What the frontend then does: each channel's value ``v`` charges a
    non-leaky integrator by ``gain * min(v, 1)`` per step (gain 1 on both chips),
    which fires a spike each time it reaches 1, so a channel fires at ``min(v, 1)``
    spikes per step. Values beyond ``scale`` saturate: with standardised data,
    ``scale = 2`` keeps 95 % of a Gaussian signal's range distinct.

    Args:
        scale: The magnitude that maps to one spike per step (> 0).

    Example:
        >>> import torch
        >>> OnOff(scale=2.0)(torch.tensor([[[1.0, -3.0]]])).tolist()
        [[[0.5, 0.0, 0.0, 1.5]]]
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = check_number("OnOff", "scale", scale, 0.0, strict=True)

    def out_features(self, in_features: int) -> int:
        return 2 * in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_sequence("OnOff", x)
        return torch.cat([torch.relu(x), torch.relu(-x)], dim=-1) / self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


def _per_channel(owner: str, name: str, value) -> torch.Tensor:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError(f"{owner}: {name}=[] must be a number or one number per channel.")
    return torch.tensor([check_number(owner, f"{name}[{i}]" if len(values) > 1 else name, v) for i, v in enumerate(values)])


class MinMax(Encoder):
    """``(x - low) / (high - low)`` clipped to ``[0, 1]``: a known signal range onto the frontend's.

    What the frontend then does: a value ``v`` in ``[0, 1]`` becomes a spike train
    of ``v`` spikes per step (non-leaky integrate-and-fire, gain 1, threshold 1),
    so ``low`` is silence and ``high`` is one spike every step. The channel count
    is unchanged.

    Args:
        low: Value mapped to 0: one number, or one per channel.
        high: Value mapped to 1 (``> low``): one number, or one per channel.

    Example:
        >>> import torch
        >>> MinMax(low=-1.0, high=3.0)(torch.tensor([[[-2.0], [0.0], [1.0], [5.0]]])).flatten().tolist()
        [0.0, 0.25, 0.5, 1.0]
    """

    def __init__(self, low: Union[float, Sequence[float]] = 0.0, high: Union[float, Sequence[float]] = 1.0) -> None:
        super().__init__()
        low_t, high_t = _per_channel("MinMax", "low", low), _per_channel("MinMax", "high", high)
        if len(low_t) > 1 and len(high_t) > 1 and len(low_t) != len(high_t):
            raise ValueError(f"MinMax: low has {len(low_t)} entries but high has {len(high_t)}; give one per channel for both.")
        if not bool((high_t > low_t).all()):
            raise ValueError(f"MinMax: high={high!r} must be above low={low!r} for every channel.")
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_sequence("MinMax", x)
        width = max(len(self.low), len(self.high))
        if width > 1 and x.shape[-1] != width:
            raise ValueError(f"MinMax: input has {x.shape[-1]} channels but low/high give {width}; give one value per channel.")
        low, high = self.low.to(x.dtype), self.high.to(x.dtype)
        return ((x - low) / (high - low)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"low={self.low.tolist()}, high={self.high.tolist()}"
