"""Population-vote decoding shared by the accuracy and recall metrics.

The readout ``(B, T, N)`` is split into ``num_classes`` consecutive groups of
``N // num_classes`` neurons (the layout of
:func:`nwave_lightning.loss.balanced_population_mse`); a sample's prediction
is the group with the most spikes over all steps (over the real steps when a
padding mask is given), ties going to the lowest class index (``argmax``).
"""

from __future__ import annotations

import torch

from ..loss._checks import check_class_labels, check_positive_int, check_step_mask

__all__ = ["population_predictions", "population_votes"]


def population_votes(
    spk_out: torch.Tensor, num_classes: int, owner: str = "population_votes", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Spike count of each class's neuron group, shape ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> spk = torch.tensor([[[1.0, 0.0, 1.0, 1.0]]])        # B=1, T=1, 2 classes x 2 neurons
        >>> population_votes(spk, 2).tolist()
        [[1.0, 2.0]]
    """
    num_classes = check_positive_int(owner, "num_classes", num_classes)
    if not isinstance(spk_out, torch.Tensor) or spk_out.dim() != 3:
        shape = tuple(spk_out.shape) if isinstance(spk_out, torch.Tensor) else type(spk_out).__name__
        raise ValueError(f"{owner}: spk_out must be a (B, T, N) tensor of readout spikes, got {shape}.")
    width = spk_out.shape[-1]
    if width % num_classes:
        raise ValueError(
            f"{owner}: the readout has {width} neurons, not a multiple of num_classes={num_classes}; "
            "the readout must hold num_classes groups of neurons_per_class neurons."
        )
    spikes = spk_out.detach()
    spikes = spikes if spikes.is_floating_point() else spikes.float()
    weights = check_step_mask(owner, mask, spikes)
    if weights is not None:
        spikes = spikes * weights.unsqueeze(-1)
    return spikes.sum(dim=1).reshape(spk_out.shape[0], num_classes, width // num_classes).sum(dim=2)


def population_predictions(
    spk_out: torch.Tensor,
    y: torch.Tensor | None,
    num_classes: int,
    owner: str = "population_predictions",
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Predicted classes ``(B,)`` and the validated labels (int64, on the same device)."""
    predictions = population_votes(spk_out, num_classes, owner, mask).argmax(dim=1)
    if y is None:
        return predictions, None
    return predictions, check_class_labels(owner, y, spk_out.shape[0], num_classes).to(predictions.device)


def resolve_num_classes(owner: str, num_classes, model) -> int:
    """``num_classes`` if given, else the ``num_classes`` of the model being scored (one place in a config).

    Example:
        >>> from nwave_lightning.models import H1Classifier
        >>> resolve_num_classes("demo", None, H1Classifier(in_ch=2, num_classes=3, hidden=[4]))
        3
    """
    if num_classes is not None:
        return num_classes
    found = getattr(model, "num_classes", None)
    if found is None:
        raise ValueError(
            f"{owner}: num_classes is not given and the model ({type(model).__name__ if model is not None else 'none passed'}) "
            "has no num_classes attribute; pass num_classes=... or use a model that has it (e.g. H1Classifier)."
        )
    return check_positive_int(owner, "the model's num_classes", found)
