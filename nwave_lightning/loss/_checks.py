"""Argument checks shared by the loss functions (one message style everywhere)."""

from __future__ import annotations

import math
import numbers

import torch


def check_positive_int(owner: str, name: str, value) -> int:
    """A positive integer (``True`` is rejected: it is almost always a typo)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer.")
    return int(value)


def check_finite(owner: str, name: str, value, minimum: float | None = None) -> float:
    """A finite real number (a 0-d tensor is accepted), optionally ``>= minimum``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{owner}: {name}={value!r} must be a finite number.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name}={value!r} must be >= {minimum}.")
    return float(value)


def check_rate(owner: str, name: str, value) -> float:
    """A spike probability per step: a finite number in ``[0, 1]``."""
    value = check_finite(owner, name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{owner}: {name}={value!r} must be in [0, 1]: it is a spike probability per step (0.35 = fires on "
            "35 % of the steps), which no neuron can exceed."
        )
    return value


def check_class_labels(owner: str, y, batch: int, num_classes: int) -> torch.Tensor:
    """``y`` as a ``(B,)`` int64 tensor of class indices in ``[0, num_classes)``.

    Float labels holding whole numbers are accepted (datasets stored as float
    tensors are common); anything else is rejected with the fix.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{owner}: y must be a torch.Tensor of class indices, got {type(y).__name__}.")
    if y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(
            f"{owner}: y has shape {tuple(y.shape)} but the spikes have batch size {batch}; "
            f"y must be ({batch},) class indices (not one-hot)."
        )
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise ValueError(f"{owner}: y holds non-integer values; it must be class indices (call y.long()).")
    elif y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{owner}: y has dtype {y.dtype}; it must hold integer class indices.")
    y = y.long()
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{owner}: y contains class {int(y.min()) if int(y.min()) < 0 else int(y.max())}, outside "
            f"[0, {num_classes - 1}] for num_classes={num_classes}."
        )
    return y


def check_step_mask(owner: str, mask, spikes: torch.Tensor) -> torch.Tensor | None:
    """A padding mask as float weights ``(B, T)`` matching ``spikes (B, T, N)``; ``None`` stays ``None``.

    ``mask[b, t]`` is true on sample ``b``'s real steps and false on padding. A
    mask of ``T / k`` steps for an output of ``T`` steps is held ``k`` times (an
    encoder such as ``Hold(k)`` in the model repeats every input step). Every
    sample needs at least one real step.

    Example:
        >>> import torch
        >>> check_step_mask("demo", torch.tensor([[True, False]]), torch.zeros(1, 4, 3)).tolist()
        [[1.0, 1.0, 0.0, 0.0]]
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{owner}: mask must be a (B, T) tensor marking real steps (true) and padding (false), got {shape}.")
    batch, steps = spikes.shape[0], spikes.shape[1]
    if mask.shape[0] != batch or mask.shape[1] == 0 or steps % mask.shape[1]:
        raise ValueError(
            f"{owner}: mask has shape {tuple(mask.shape)} but the spikes have shape {tuple(spikes.shape)}; the mask needs "
            "one row per sample and the spikes' steps, or a divisor of them (an encoder holding each step k times)."
        )
    weights = mask.to(device=spikes.device, dtype=spikes.dtype if spikes.is_floating_point() else torch.float32)
    if steps != mask.shape[1]:
        weights = weights.repeat_interleave(steps // mask.shape[1], dim=1)
    return weights


def masked_time_mean(spikes: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``spikes (B, T, N)`` averaged over each sample's real steps -> ``(B, N)``.

    Example:
        >>> import torch
        >>> spikes = torch.tensor([[[1.0], [1.0], [0.0], [0.0]]])
        >>> masked_time_mean(spikes, None).tolist(), masked_time_mean(spikes, torch.tensor([[1.0, 1.0, 0.0, 0.0]])).tolist()
        ([[0.5]], [[1.0]])
    """
    spikes = spikes if spikes.is_floating_point() else spikes.float()
    if weights is None:
        return spikes.mean(dim=1)
    real = weights.sum(dim=1, keepdim=True)
    if bool((real == 0).any()):
        raise ValueError("masked_time_mean: a sample's mask has no real step; every sample needs at least one.")
    return (spikes * weights.unsqueeze(-1)).sum(dim=1) / real
