"""Population-vote recall of one class: ``population_recall`` and ``PopulationRecall``."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torchmetrics import Metric

from ..loss._checks import check_positive_int
from ._population import population_predictions, resolve_num_classes

__all__ = ["PopulationRecall", "population_recall"]


def _check_positive_class(owner: str, positive_class, num_classes: int) -> int:
    if isinstance(positive_class, bool) or not isinstance(positive_class, int) or not 0 <= positive_class < num_classes:
        raise ValueError(
            f"{owner}: positive_class={positive_class!r} must be a class index in [0, {num_classes - 1}] "
            f"for num_classes={num_classes}."
        )
    return positive_class


def _true_positives_and_false_negatives(spk_out, y, num_classes, positive_class, owner, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    predictions, labels = population_predictions(spk_out, y, num_classes, owner, mask)
    positives = labels == positive_class
    true_positives = (positives & (predictions == positive_class)).sum()
    return true_positives, positives.sum() - true_positives


def population_recall(
    spk_out: torch.Tensor, y: torch.Tensor, num_classes: int, positive_class: int = 1, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``TP / (TP + FN)`` of ``positive_class`` under the population vote.

    Same decoding as :func:`accuracy_population`; a batch without any sample of
    ``positive_class`` scores 0 (the vendor SDK's ``tp / max(1, tp + fn)``).

    Args:
        spk_out: Readout spikes ``(B, T, num_classes * neurons_per_class)``.
        y: Class indices ``(B,)``.
        num_classes: Number of neuron groups in the readout.
        positive_class: The class whose recall is measured.
        mask: Optional ``(B, T)`` padding mask: only real steps vote.

    Returns:
        A 0-d float tensor in ``[0, 1]``.

    Example:
        >>> import torch
        >>> spk = torch.zeros(3, 2, 2)
        >>> spk[0, :, 1] = 1.0; spk[1, :, 0] = 1.0; spk[2, :, 1] = 1.0   # votes: 1, 0, 1
        >>> float(population_recall(spk, torch.tensor([1, 1, 0]), num_classes=2, positive_class=1))
        0.5
    """
    owner = "population_recall"
    num_classes = check_positive_int(owner, "num_classes", num_classes)
    positive_class = _check_positive_class(owner, positive_class, num_classes)
    tp, fn = _true_positives_and_false_negatives(spk_out, y, num_classes, positive_class, owner, mask)
    return tp.float() / (tp + fn).clamp_min(1).float()


class PopulationRecall(Metric):
    """Recall of ``positive_class`` under the population vote, over batches and DDP ranks.

    States ``true_positives`` and ``false_negatives`` are int64 counts reduced by sum.

    Args:
        num_classes: Number of neuron groups in the readout; ``None``: the scored model's ``num_classes``.
        positive_class: The class whose recall is measured.
        **kwargs: Forwarded to :class:`torchmetrics.Metric`.

    Example:
        >>> import torch
        >>> metric = PopulationRecall(num_classes=2, positive_class=0)
        >>> spk = torch.zeros(2, 1, 2)
        >>> spk[:, :, 0] = 1.0                      # both samples vote for class 0
        >>> metric.update(spk, torch.tensor([0, 1]))
        >>> float(metric.compute())
        1.0
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: Optional[int] = None, positive_class: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_classes = None if num_classes is None else check_positive_int(owner, "num_classes", num_classes)
        if self.num_classes is not None:
            _check_positive_class(owner, positive_class, self.num_classes)
        elif isinstance(positive_class, bool) or not isinstance(positive_class, int) or positive_class < 0:
            raise ValueError(f"{owner}: positive_class={positive_class!r} must be a class index (an integer >= 0).")
        self.positive_class = positive_class
        self.add_state("true_positives", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("false_negatives", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, spk_out: torch.Tensor, y: torch.Tensor, model: Any = None, mask: Optional[torch.Tensor] = None, **unused: Any
    ) -> None:
        """Count true positives and false negatives of a batch (only real steps vote under a padding ``mask``).

        ``model`` supplies ``num_classes`` when the metric was built without it; other
        contract keywords are ignored.
        """
        owner = type(self).__name__
        num_classes = resolve_num_classes(owner, self.num_classes, model)
        _check_positive_class(owner, self.positive_class, num_classes)
        tp, fn = _true_positives_and_false_negatives(spk_out, y, num_classes, self.positive_class, owner, mask)
        self.true_positives += tp.to(self.true_positives.device)
        self.false_negatives += fn.to(self.false_negatives.device)

    def compute(self) -> torch.Tensor:
        """Recall over everything seen since the last reset (0 without positives)."""
        return self.true_positives.float() / (self.true_positives + self.false_negatives).clamp_min(1).float()
