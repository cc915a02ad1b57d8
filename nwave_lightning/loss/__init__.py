"""Composable losses: population, activity and hardware terms, ``CompositeLoss``.

Example:
    >>> import torch
    >>> from nwave_lightning.loss import CompositeLoss, balanced_population_mse, firing_rate_target_mse_loss
    >>> def population(spk_out, y, config, **kwargs):
    ...     return {"mse": balanced_population_mse(spk_out, y, **config)}
    >>> def activity(spikes_list, config, **kwargs):
    ...     return firing_rate_target_mse_loss(spikes_list, config["offsets"], config["multipliers"])
    >>> loss = (
    ...     CompositeLoss()
    ...     .add_loss_term("population", population, config=dict(num_classes=2, neurons_per_class=2,
    ...                                                           correct_rate=0.4, incorrect_rate=0.05))
    ...     .add_loss_term("activity", activity, config={"offsets": [0.1], "multipliers": [1.0]}, weight=0.5)
    ... )
    >>> spikes = (torch.rand(3, 10, 4) < 0.2).float()
    >>> sorted(loss(spikes_list=[spikes], membranes_list=[spikes], y=torch.tensor([0, 1, 1])).components)
    ['activity', 'population/mse', 'population/total', 'total']
"""

from .activity import firing_rate_target_mse_loss
from .composite import CompositeLoss, LossTerm
from .hardware import topology_loss, weight_magnitude_loss
from .output import LossOutput, as_loss_output
from .population import balanced_population_mse

__all__ = [
    "CompositeLoss",
    "LossOutput",
    "LossTerm",
    "as_loss_output",
    "balanced_population_mse",
    "firing_rate_target_mse_loss",
    "topology_loss",
    "weight_magnitude_loss",
]
