"""Population-coded classification loss on the readout layer.

The readout has ``num_classes * neurons_per_class`` neurons; neurons
``[c * neurons_per_class, (c + 1) * neurons_per_class)`` vote for class ``c``
(the layout :func:`nwave_lightning.metrics.accuracy_population` decodes).
"""

from __future__ import annotations

import torch

from ._checks import check_class_labels, check_positive_int, check_rate, check_step_mask, masked_time_mean

__all__ = ["balanced_population_mse"]

_OWNER = "balanced_population_mse"


def balanced_population_mse(
    spk_out: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    neurons_per_class: int,
    correct_rate: float,
    incorrect_rate: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-balanced MSE between readout firing rates and per-group targets.

    Each readout neuron's rate is its spike probability per step,
    ``r = spk_out.mean(dim=1)``. Neurons of the true class should fire at
    ``correct_rate``, all others at ``incorrect_rate``. There are
    ``num_classes - 1`` times more wrong-class neurons than true-class ones, so
    the two groups are averaged separately and weigh one half each::

        loss = 0.5 * mean_true (r - correct_rate)^2 + 0.5 * mean_wrong (r - incorrect_rate)^2

    Args:
        spk_out: Readout spikes ``(B, T, num_classes * neurons_per_class)``.
        y: Class indices ``(B,)`` in ``[0, num_classes)``.
        num_classes: Number of classes (at least 2).
        neurons_per_class: Readout neurons per class.
        correct_rate: Target spike probability per step of the true class's neurons.
        incorrect_rate: Target of every other readout neuron.
        mask: Optional ``(B, T)`` padding mask (true on real steps): rates are then
            spikes per real step, and padded steps do not count.

    Returns:
        A differentiable 0-d tensor.

    Raises:
        ValueError: on a readout width that is not ``num_classes * neurons_per_class``,
            labels out of range, or non-finite targets.

    Example:
        >>> import torch
        >>> spk = torch.zeros(1, 4, 4)
        >>> spk[0, :, :2] = 1.0               # class 0's two neurons fire every step
        >>> float(balanced_population_mse(spk, torch.tensor([0]), 2, 2, 1.0, 0.0))
        0.0
        >>> float(balanced_population_mse(spk, torch.tensor([1]), 2, 2, 1.0, 0.0))
        1.0
        >>> spk[0, 2:] = 0.0                  # padding: silent steps the mask excludes
        >>> float(balanced_population_mse(spk, torch.tensor([0]), 2, 2, 1.0, 0.0, mask=torch.tensor([[1, 1, 0, 0]])))
        0.0
    """
    num_classes = check_positive_int(_OWNER, "num_classes", num_classes)
    neurons_per_class = check_positive_int(_OWNER, "neurons_per_class", neurons_per_class)
    if num_classes < 2:
        raise ValueError(f"{_OWNER}: num_classes={num_classes} must be at least 2 for a population vote.")
    correct_rate = check_rate(_OWNER, "correct_rate", correct_rate)
    incorrect_rate = check_rate(_OWNER, "incorrect_rate", incorrect_rate)
    if not isinstance(spk_out, torch.Tensor) or spk_out.dim() != 3:
        shape = tuple(spk_out.shape) if isinstance(spk_out, torch.Tensor) else type(spk_out).__name__
        raise ValueError(f"{_OWNER}: spk_out must be a (B, T, N) tensor of readout spikes, got {shape}.")
    batch, steps, width = spk_out.shape
    if width != num_classes * neurons_per_class:
        raise ValueError(
            f"{_OWNER}: the readout has {width} neurons but num_classes * neurons_per_class = "
            f"{num_classes} * {neurons_per_class} = {num_classes * neurons_per_class}; make the last layer "
            "that wide or fix num_classes / neurons_per_class."
        )
    if batch == 0 or steps == 0:
        raise ValueError(f"{_OWNER}: spk_out has shape {tuple(spk_out.shape)}; it needs at least one sample and one step.")
    y = check_class_labels(_OWNER, y, batch, num_classes).to(spk_out.device)

    weights = check_step_mask(_OWNER, mask, spk_out)
    rates = masked_time_mean(spk_out, weights).reshape(batch, num_classes, neurons_per_class)
    is_true = torch.nn.functional.one_hot(y, num_classes).to(rates.dtype).unsqueeze(-1)
    # Masked sums over fixed counts (no boolean indexing: no host sync on GPU).
    true_mse = ((rates - correct_rate).pow(2) * is_true).sum() / (batch * neurons_per_class)
    wrong_mse = ((rates - incorrect_rate).pow(2) * (1 - is_true)).sum() / (batch * (num_classes - 1) * neurons_per_class)
    return 0.5 * (true_mse + wrong_mse)
