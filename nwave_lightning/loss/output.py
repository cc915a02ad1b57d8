"""``LossOutput``: what every loss in the framework returns, and the normaliser.

A loss callable may return a scalar tensor, a ``dict[str, Tensor]`` of
components, or a :class:`LossOutput`. :func:`as_loss_output` turns any of them
into a ``LossOutput`` whose ``components`` always contain ``"total"``; the
LightningModule and the HPO engine log each component under
``train/<key>`` / ``val/<key>``.

Example:
    >>> import torch
    >>> out = as_loss_output({"mse": torch.tensor(0.5), "reg": torch.tensor(0.25)})
    >>> float(out.total), sorted(out.components)
    (0.75, ['mse', 'reg', 'total'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

__all__ = ["LossOutput", "as_loss_output"]


@dataclass
class LossOutput:
    """A total loss and its named components (``components["total"]`` included).

    Attributes:
        total: Scalar tensor to back-propagate.
        components: Named scalar tensors, e.g. ``population/mse`` and ``total``.
    """

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.total = _scalar("total", self.total)
        self.components = {key: _scalar(key, value) for key, value in self.components.items()}
        self.components.setdefault("total", self.total)


def _scalar(name: str, value) -> torch.Tensor:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"loss component {name!r} must be a scalar tensor or number, got {type(value).__name__}.")
    if value.numel() != 1:
        raise ValueError(f"loss component {name!r} must be a scalar, got shape {tuple(value.shape)}; reduce it (e.g. .mean()).")
    return value.reshape(())


def as_loss_output(result) -> LossOutput:
    """Normalise a loss result (tensor, dict of components, or ``LossOutput``).

    A dict's total is the sum of its components unless it has a ``"total"`` key.

    Raises:
        TypeError: for any other type, naming it.
    """
    if isinstance(result, LossOutput):
        return result
    if isinstance(result, torch.Tensor):
        return LossOutput(total=result, components={})
    if isinstance(result, Mapping):
        if not result:
            raise ValueError("a loss returned an empty dict; return at least one component.")
        components = {str(k): _scalar(str(k), v) for k, v in result.items()}
        total = components.pop("total", None)
        if total is None:
            total = torch.stack([v.to(torch.float32) if not v.is_floating_point() else v for v in components.values()]).sum()
        return LossOutput(total=total, components=components)
    raise TypeError(
        f"a loss must return a scalar torch.Tensor, a dict[str, Tensor] or a LossOutput, got {type(result).__name__}."
    )
