"""Hardware regularisers: soft weight range and row-block sign coherence.

Both act on the model's dense H1 matrices, i.e. every synapse ``weight`` and
every RC layer's ``recurrent_weights`` (:func:`nwave_lightning.layers.walk.dense_weights`).
Weights are read with ``getattr(module, attr)``, so a matrix under a
``torch.nn.utils.parametrize`` parametrisation (sign annealing) is penalised
as the network actually uses it.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..layers.frontend import _H1Frontend
from ..layers.walk import DenseWeight, dense_weights, frontends
from ..layers.sign import minority_sign_mass
from ._checks import check_finite

__all__ = ["topology_loss", "weight_magnitude_loss"]


def _modules(owner: str, model) -> list[nn.Module]:
    if isinstance(model, nn.Module):
        return [model]
    if isinstance(model, Iterable) and not isinstance(model, (str, bytes, torch.Tensor)):
        modules = list(model)
        if modules and all(isinstance(m, nn.Module) for m in modules):
            return modules
    raise ValueError(
        f"{owner}: model must be a torch.nn.Module (or a list of modules) containing H1 synapses / RC layers, "
        f"got {type(model).__name__}."
    )


def _matrices(owner: str, model) -> list[DenseWeight]:
    """Dense matrices of ``model`` (each once), or a ValueError saying what to pass instead."""
    found, seen = [], set()
    for module in _modules(owner, model):
        if isinstance(module, _H1Frontend):
            raise ValueError(
                f"{owner}: got a {type(module).__name__}; the frontend is a fixed analog encoder without trainable "
                f"weights. Apply {owner} to dense synapses / recurrent matrices only (the model, or its synapses)."
            )
        for entry in dense_weights(module):
            key = (id(entry.module), entry.attr)
            if key not in seen:
                seen.add(key)
                found.append(entry)
    if not found:
        only_frontends = any(frontends(m) for m in _modules(owner, model))
        what = "only frontends" if only_frontends else "no H1 synapse or RC layer"
        raise ValueError(
            f"{owner}: the model has {what}, so there is no dense matrix to regularise. Apply {owner} to dense "
            "synapses / recurrent matrices only: a model containing H1v1/H1v2 Synapse or RC Layer modules."
        )
    return found


def weight_magnitude_loss(model, limit: float | None = None) -> torch.Tensor:
    """Soft weight range: ``sum over matrices of sum relu(|w| - limit)^2``.

    Zero while every weight is inside ``[-limit, limit]``, quadratic outside,
    so training is pulled back into the range the chip can store.

    Args:
        model: A module (or list of modules) containing H1 synapses and/or RC
            layers; frontends inside it are ignored (they have no weights).
        limit: Allowed magnitude (>= 0). ``None`` uses each matrix's chip limit
            (``module.chip.weight_limit``, e.g. 1.66 on H1v2).

    Returns:
        A differentiable 0-d tensor.

    Raises:
        ValueError: when the model has no dense H1 matrix, or on a bad ``limit``.

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import H1v2Synapse
        >>> syn = H1v2Synapse(1, 3)
        >>> with torch.no_grad():
        ...     _ = syn.weight.copy_(torch.tensor([[0.5, 1.5, -2.0]]))
        >>> weight_magnitude_loss(syn, limit=1.0).item()   # 0.5^2 + 1.0^2
        1.25
    """
    owner = "weight_magnitude_loss"
    if limit is not None:
        limit = check_finite(owner, "limit", limit, minimum=0.0)
    total = None
    for entry in _matrices(owner, model):
        weight = getattr(entry.module, entry.attr)
        bound = entry.module.chip.weight_limit if limit is None else limit
        term = torch.relu(weight.abs() - bound).pow(2).sum()
        total = term if total is None else total + term.to(total.device)
    return total


def topology_loss(model, lam: float = 1e-3) -> torch.Tensor:
    """Row-block sign coherence: ``lam * sum over matrices of minority_sign_mass(W, sign_block)``.

    The minority-sign mass of a matrix is ``sum relu(-s_b * W)``, with ``s_b``
    the (detached) sign of each block of ``chip.sign_block`` rows; it is zero
    when every block already carries a single sign, as the chip requires.

    Frontends inside a model are skipped; passing a frontend itself, or a model
    with no dense matrix, raises.

    Args:
        model: A module (or list of modules) containing H1 synapses and/or RC layers.
        lam: Strength of the penalty (>= 0).

    Returns:
        A differentiable 0-d tensor.

    Raises:
        ValueError: for a frontend, a model without dense H1 matrices, or a bad ``lam``.

    Example:
        >>> import torch
        >>> from nwave_lightning.layers import H1v2Synapse
        >>> syn = H1v2Synapse(2, 2)
        >>> with torch.no_grad():
        ...     _ = syn.weight.copy_(torch.tensor([[1.0, -0.25], [-1.0, 0.5]]))
        >>> topology_loss(syn, lam=2.0).item()   # 2 * (0.25 + 0.5)
        1.5
    """
    owner = "topology_loss"
    lam = check_finite(owner, "lam", lam, minimum=0.0)
    total = None
    for entry in _matrices(owner, model):
        weight = getattr(entry.module, entry.attr)
        term = minority_sign_mass(weight, entry.module.chip.sign_block)
        total = term if total is None else total + term.to(total.device)
    return lam * total
