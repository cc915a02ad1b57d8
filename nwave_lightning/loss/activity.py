"""Activity regulariser: keep each layer's mean firing rate near a target."""

from __future__ import annotations

from typing import Sequence

import torch

from ._checks import check_finite, check_rate, check_step_mask, masked_time_mean

__all__ = ["firing_rate_target_mse_loss"]

_OWNER = "firing_rate_target_mse_loss"


def _per_layer(name: str, values, n_layers: int) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.detach().flatten().tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(
            f"{_OWNER}: {name}={values!r} must be a list with one number per layer of spikes_list "
            f"({n_layers} layers)."
        )
    if len(values) != n_layers:
        raise ValueError(
            f"{_OWNER}: {name} has {len(values)} entries but spikes_list has {n_layers} layers; "
            f"give one {name[:-1] if name.endswith('s') else name} per layer."
        )
    return [check_finite(_OWNER, f"{name}[{i}]", value) for i, value in enumerate(values)]


def firing_rate_target_mse_loss(
    spikes_list: Sequence[torch.Tensor],
    offsets: Sequence[float],
    multipliers: Sequence[float],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``sum_i multipliers[i] * (mean rate of layer i - offsets[i])^2``.

    The mean rate of a layer is its spike probability per neuron and step,
    ``spikes_list[i].mean()`` over batch, time and neurons. Penalising its
    squared distance to a target keeps layers from going silent (no gradient
    through dead neurons) or saturating (no information, high power).

    Args:
        spikes_list: The model's spikes, one ``(B, T, N_i)`` tensor per layer.
        offsets: Target rate of each layer, one entry per layer.
        multipliers: Weight of each layer's penalty, one entry per layer.
        mask: Optional ``(B, T)`` padding mask: the rate is then taken over real steps only.

    Returns:
        A differentiable 0-d tensor.

    Raises:
        ValueError: when ``offsets`` / ``multipliers`` do not have one entry per
            layer (naming both lengths), or on an empty ``spikes_list``.

    Example:
        >>> import torch
        >>> layers = [torch.ones(2, 5, 3), torch.zeros(2, 5, 4)]
        >>> round(float(firing_rate_target_mse_loss(layers, offsets=[0.5, 0.1], multipliers=[1.0, 10.0])), 6)
        0.35
    """
    if isinstance(spikes_list, torch.Tensor) or not isinstance(spikes_list, Sequence) or len(spikes_list) == 0:
        raise ValueError(
            f"{_OWNER}: spikes_list must be a non-empty list of (B, T, N) spike tensors (the model's first output), "
            f"got {type(spikes_list).__name__}."
        )
    n_layers = len(spikes_list)
    offsets = [check_rate(_OWNER, f"offsets[{i}]", value) for i, value in enumerate(_per_layer("offsets", offsets, n_layers))]
    multipliers = _per_layer("multipliers", multipliers, n_layers)
    total = None
    for index, (spikes, offset, multiplier) in enumerate(zip(spikes_list, offsets, multipliers)):
        if not isinstance(spikes, torch.Tensor) or spikes.numel() == 0:
            raise ValueError(f"{_OWNER}: spikes_list[{index}] must be a non-empty tensor of spikes.")
        spikes = spikes if spikes.is_floating_point() else spikes.float()
        # With a mask: each sample's rate over its real steps, averaged over the batch.
        rate = spikes.mean() if mask is None else masked_time_mean(spikes, check_step_mask(_OWNER, mask, spikes)).mean()
        term = multiplier * (rate - offset) ** 2
        total = term if total is None else total + term.to(total.device)
    return total
