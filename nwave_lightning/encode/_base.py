"""The encoder contract: ``(B, T, C)`` analog input to what the chip's frontend reads."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
from torch import nn

__all__ = ["Compose", "Encoder", "check_number", "check_sequence"]


def check_number(owner: str, name: str, value, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number (``> minimum`` with ``strict``, else ``>= minimum``); a ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{owner}: {name}={value!r} must be a finite number.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{owner}: {name}={value!r} must be {'>' if strict else '>='} {minimum}.")
    return float(value)


def check_sequence(owner: str, x) -> torch.Tensor:
    """``x`` if it is a floating ``(B, T, C)`` tensor; a ValueError saying what it is otherwise."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{owner}: input must be a torch.Tensor (B, T, C), got {type(x).__name__}.")
    if x.dim() != 3:
        raise ValueError(f"{owner}: input has shape {tuple(x.shape)} (rank {x.dim()}); expected (B, T, C).")
    if not x.is_floating_point():
        raise ValueError(f"{owner}: input dtype {x.dtype} must be floating point; call x.float() first.")
    return x


class Encoder(nn.Module):
    """Base of the encoders: a fixed map ``(B, T, C) -> (B, T * steps_factor, out_features(C))``.

    Encoders hold no trainable weights; their settings are buffers, so they are
    saved with the model that holds them and move to its device. They run before
    the chip (on the host or in the sensor's front end), which is why
    :func:`~nwave_lightning.deploy.check_chip` accepts them.
    """

    #: Output steps per input step (only :class:`~nwave_lightning.encode.Hold` changes it).
    steps_factor: int = 1

    def out_features(self, in_features: int) -> int:
        """Channels of the output for ``in_features`` input channels."""
        return in_features


class Compose(Encoder):
    """Encoders applied one after another (a ``Sequential`` that knows its output width).

    Args:
        encoders: The encoders, first applied first.

    Example:
        >>> import torch
        >>> from nwave_lightning.encode import Compose, Hold, OnOff
        >>> enc = Compose([OnOff(scale=2.0), Hold(3)])
        >>> enc.out_features(4), enc.steps_factor, tuple(enc(torch.randn(2, 5, 4)).shape)
        (8, 3, (2, 15, 8))
    """

    def __init__(self, encoders: Sequence[Encoder]) -> None:
        super().__init__()
        encoders = list(encoders)
        bad = [type(e).__name__ for e in encoders if not isinstance(e, Encoder)]
        if not encoders or bad:
            raise ValueError(
                f"Compose: encoders must be a non-empty list of nwave_lightning.encode encoders, got {bad or 'an empty list'}."
            )
        self.encoders = nn.ModuleList(encoders)
        self.steps_factor = math.prod(e.steps_factor for e in encoders)

    def out_features(self, in_features: int) -> int:
        for encoder in self.encoders:
            in_features = encoder.out_features(in_features)
        return in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for encoder in self.encoders:
            x = encoder(x)
        return x
