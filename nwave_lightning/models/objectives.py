"""Ready-made losses for YAML configs (``class_path``), built on ``CompositeLoss``.

:class:`PopulationLoss` is the vendor SDK's HPO guide's ``build_main_loss``: a population
term plus optional activity and hardware terms. :class:`RateMSELoss` is
tutorial 7's loss. Both return a ``LossOutput`` whose components the
``SNNModule`` logs as ``train/<key>`` / ``val/<key>``.

Example:
    >>> import torch
    >>> loss = PopulationLoss(num_classes=2, neurons_per_class=2, offsets_fr=[0.1], multipliers_fr=[1.0])
    >>> spikes = (torch.rand(4, 10, 4) < 0.3).float()
    >>> out = loss(spk_out=spikes, y=torch.tensor([0, 1, 0, 1]), spikes_list=[spikes])
    >>> sorted(out.components)
    ['activity', 'population/mse', 'population/total', 'total']
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..loss._checks import check_rate
from ..loss import CompositeLoss, LossOutput, balanced_population_mse, firing_rate_target_mse_loss, topology_loss, weight_magnitude_loss

__all__ = ["PopulationLoss", "RateMSELoss"]


def _population_term(spk_out, y, config, model=None, mask=None):
    config = dict(config)
    for key in ("num_classes", "neurons_per_class"):  # None: the network's own value (one place in a config)
        if config[key] is None:
            config[key] = _from_model(key, model)
    return {"mse": balanced_population_mse(spk_out, y, mask=mask, **config)}


def _from_model(key, model):
    value = getattr(model, key, None)
    if value is None:
        raise ValueError(
            f"PopulationLoss: {key} is not given and the model ({type(model).__name__ if model is not None else 'none passed'}) "
            f"has no {key} attribute; pass {key}=... or use a model that has it (e.g. H1Classifier)."
        )
    return value


def _activity_term(spikes_list, config, mask=None):
    return firing_rate_target_mse_loss(spikes_list, config["offsets"], config["multipliers"], mask=mask)


def _hardware_term(model, config):
    terms = {}
    if config["limit"] is not None:
        terms["weight_mag"] = weight_magnitude_loss(model, limit=config["limit"])
    if config["lambda_topo"] is not None:
        terms["topology"] = topology_loss(model, lam=config["lambda_topo"])
    return terms


def _rate_term(spk_out, y):
    # The rate over the batch follows the target pattern (tutorial 7): a smooth,
    # differentiable proxy of the spike probability at each step.
    target = y.mean(dim=0) if y.dim() == 3 else y
    return torch.nn.functional.mse_loss(spk_out.mean(dim=0), target.to(spk_out.dtype))


def _weight_term(model, config):
    return weight_magnitude_loss(model, limit=config["limit"])


class PopulationLoss:
    """``w_population * population + w_activity * activity + w_hardware * hardware``.

    With ``num_classes`` / ``neurons_per_class`` left at ``None`` they are read from
    the network at each call (``H1Classifier`` has both), so a config states the
    class count once, in the net. A padding ``mask`` (``(B, T)``, true on real
    steps) reaches the population and activity terms, which then ignore padding.

    Args:
        num_classes: Classes of the population readout (``None``: the model's).
        neurons_per_class: Readout neurons per class (``None``: the model's).
        correct_rate: Target spike probability per step of the true class's neurons.
        incorrect_rate: Target of the other readout neurons.
        w_population: Weight of the ``population`` term.
        offsets_fr: Target rate per layer; with ``multipliers_fr`` enables the ``activity`` term.
        multipliers_fr: Penalty weight per layer.
        w_activity: Weight of the ``activity`` term.
        weight_limit: Soft weight range of ``weight_magnitude_loss`` (``hardware/weight_mag``).
        lambda_topology: ``topology_loss`` strength (``hardware/topology``).
        w_hardware: Weight of the ``hardware`` term (present when either option above is set).
    """

    def __init__(
        self,
        num_classes: Optional[int] = None,
        neurons_per_class: Optional[int] = None,
        correct_rate: float = 0.35,
        incorrect_rate: float = 0.05,
        w_population: float = 1.0,
        offsets_fr: Optional[Sequence[float]] = None,
        multipliers_fr: Optional[Sequence[float]] = None,
        w_activity: float = 1.0,
        weight_limit: Optional[float] = None,
        lambda_topology: Optional[float] = None,
        w_hardware: float = 1.0,
    ) -> None:
        if (offsets_fr is None) != (multipliers_fr is None):
            raise ValueError("PopulationLoss: give both offsets_fr and multipliers_fr (one per layer) or neither.")
        # Checked here, not at the first batch: a target rate outside [0, 1] can never be met.
        check_rate("PopulationLoss", "correct_rate", correct_rate)
        check_rate("PopulationLoss", "incorrect_rate", incorrect_rate)
        for index, value in enumerate(offsets_fr or []):
            check_rate("PopulationLoss", f"offsets_fr[{index}]", value)
        population = dict(num_classes=num_classes, neurons_per_class=neurons_per_class, correct_rate=correct_rate, incorrect_rate=incorrect_rate)
        self.composite = CompositeLoss().add_loss_term("population", _population_term, config=population, weight=w_population)
        if offsets_fr is not None:
            activity = {"offsets": list(offsets_fr), "multipliers": list(multipliers_fr)}
            self.composite.add_loss_term("activity", _activity_term, config=activity, weight=w_activity)
        if weight_limit is not None or lambda_topology is not None:
            hardware = {"limit": weight_limit, "lambda_topo": lambda_topology}
            self.composite.add_loss_term("hardware", _hardware_term, config=hardware, weight=w_hardware)

    def __call__(self, spk_out=None, y=None, spikes_list=None, membranes_list=None, model=None, mask=None) -> LossOutput:
        return self.composite(spk_out=spk_out, y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model, mask=mask)

    def __repr__(self) -> str:
        return f"PopulationLoss({self.composite!r})"


class RateMSELoss:
    """Tutorial 7: ``mse(mean over batch of spikes, target rates) + w_hardware * weight_magnitude_loss``.

    ``y`` is the target rate pattern, ``(T, N)`` or one copy per sample ``(B, T, N)``.

    Args:
        weight_limit: Soft range of ``weight_magnitude_loss``; ``None`` = each chip's limit (1.66 on H1v2).
        w_hardware: Weight of the range penalty (0 disables it).

    Example:
        >>> import torch
        >>> from nwave_lightning.models import PatternGenerator
        >>> net = PatternGenerator()
        >>> out = RateMSELoss()(spk_out=torch.zeros(2, 5, 8), y=torch.full((2, 5, 8), 0.5), model=net)
        >>> round(float(out.components["rate"]), 3), sorted(out.components)
        (0.25, ['rate', 'total', 'weight_mag'])
    """

    def __init__(self, weight_limit: Optional[float] = None, w_hardware: float = 1.0) -> None:
        self.composite = CompositeLoss().add_loss_term("rate", _rate_term)
        if w_hardware:
            self.composite.add_loss_term("weight_mag", _weight_term, config={"limit": weight_limit}, weight=w_hardware)

    def __call__(self, spk_out=None, y=None, model=None) -> LossOutput:
        return self.composite(spk_out=spk_out, y=y, model=model)

    def __repr__(self) -> str:
        return f"RateMSELoss({self.composite!r})"
