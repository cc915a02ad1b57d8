"""Population-vote accuracy: functional ``accuracy_population`` and ``PopulationAccuracy``."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torchmetrics import Metric

from ..loss._checks import check_positive_int
from ._population import population_predictions, resolve_num_classes

__all__ = ["PopulationAccuracy", "accuracy_population"]


def _correct_and_total(spk_out, y, num_classes, owner, mask=None) -> tuple[torch.Tensor, int]:
    predictions, labels = population_predictions(spk_out, y, num_classes, owner, mask)
    return (predictions == labels).sum(), labels.numel()


def accuracy_population(spk_out: torch.Tensor, y: torch.Tensor, num_classes: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fraction of samples whose most active neuron group is the true class.

    Args:
        spk_out: Readout spikes ``(B, T, num_classes * neurons_per_class)``.
        y: Class indices ``(B,)``.
        num_classes: Number of neuron groups in the readout.
        mask: Optional ``(B, T)`` padding mask: only real steps vote.

    Returns:
        A 0-d float tensor in ``[0, 1]`` (no gradient).

    Raises:
        ValueError: on a readout width that is not a multiple of ``num_classes``,
            or labels of the wrong shape / out of range.

    Example:
        >>> import torch
        >>> spk = torch.zeros(2, 3, 4)
        >>> spk[0, :, 2:] = 1.0        # sample 0: class 1's neurons fire
        >>> spk[1, :, :2] = 1.0        # sample 1: class 0's neurons fire
        >>> float(accuracy_population(spk, torch.tensor([1, 1]), num_classes=2))
        0.5
    """
    correct, total = _correct_and_total(spk_out, y, num_classes, "accuracy_population", mask)
    if total == 0:
        raise ValueError("accuracy_population: empty batch (B=0); there is no sample to score.")
    return correct.float() / total


class PopulationAccuracy(Metric):
    """Population-vote accuracy accumulated over batches (and DDP ranks).

    States ``correct`` and ``total`` are int64 counts reduced by sum, so the
    result over several processes equals the result on the concatenated data.

    Args:
        num_classes: Number of neuron groups in the readout; ``None``: the scored
            model's ``num_classes`` (so a config states the class count once, in the net).
        **kwargs: Forwarded to :class:`torchmetrics.Metric` (e.g. ``dist_sync_on_step``).

    Example:
        >>> import torch
        >>> metric = PopulationAccuracy(num_classes=2)
        >>> spk = torch.zeros(2, 3, 4)
        >>> spk[0, :, 2:] = 1.0
        >>> metric.update(spk, torch.tensor([1, 1]))
        >>> metric.update(spk, torch.tensor([1, 0]))
        >>> float(metric.compute())
        0.75
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Validate here so a bad config fails at construction, not at the first batch.
        self.num_classes = None if num_classes is None else check_positive_int(type(self).__name__, "num_classes", num_classes)
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, spk_out: torch.Tensor, y: torch.Tensor, model: Any = None, mask: Optional[torch.Tensor] = None, **unused: Any
    ) -> None:
        """Count correct votes of a batch (only real steps vote when a padding ``mask`` is given).

        ``model`` supplies ``num_classes`` when the metric was built without it. Other
        keywords of the framework's metric contract (``spikes_list``, ``membranes_list``)
        are accepted and ignored.
        """
        owner = type(self).__name__
        num_classes = resolve_num_classes(owner, self.num_classes, model)
        correct, total = _correct_and_total(spk_out, y, num_classes, owner, mask)
        self.correct += correct.to(self.correct.device)
        self.total += total

    def compute(self) -> torch.Tensor:
        """Accuracy over everything seen since the last reset (0 before any sample)."""
        return self.correct.float() / self.total.clamp_min(1).float()
