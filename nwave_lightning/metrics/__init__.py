"""Metrics: population-vote accuracy / recall and per-layer activity.

Each metric is a :class:`torchmetrics.Metric` (accumulates over batches,
reduces over DDP ranks) with a functional twin for one batch, usable as a
metric function in the vendor SDK's style.

Example:
    >>> import torch
    >>> from nwave_lightning.metrics import PopulationAccuracy, accuracy_population
    >>> spk = torch.zeros(2, 4, 6)
    >>> spk[0, :, 3:] = 1.0                      # 2 classes x 3 neurons; sample 0 votes 1, sample 1 votes 0
    >>> float(accuracy_population(spk, torch.tensor([1, 0]), num_classes=2))
    1.0
    >>> metric = PopulationAccuracy(num_classes=2)
    >>> metric.update(spk, torch.tensor([0, 0]))
    >>> float(metric.compute())
    0.5
"""

from ._population import population_predictions, population_votes
from .accuracy import PopulationAccuracy, accuracy_population
from .activity import ActivityMetric, layer_activity
from .recall import PopulationRecall, population_recall

__all__ = [
    "ActivityMetric",
    "PopulationAccuracy",
    "PopulationRecall",
    "accuracy_population",
    "layer_activity",
    "population_predictions",
    "population_recall",
    "population_votes",
]
